"""``vtopt plugins``: every plugin, its package and version, and what it provides."""

from __future__ import annotations

import argparse

from ...errors import EXIT_OK
from ...plugin.manager import PluginManager

name = "plugins"
help = "list plugins and the components they provide"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("List every plugin vtopt found (built-in, installed packages, registered from code): its "
                          "package and version, and the components it registers by kind.")


def run(args: argparse.Namespace, pm: PluginManager) -> int:
    extra: dict[str, dict[str, list[str]]] = {}  # what a plugin offers besides components: baselines, commands
    for plugin, offered in pm.baselines_by_plugin(4, {}).items():
        extra.setdefault(plugin, {})["baseline"] = [b.name + ("" if b.evaluate else " (on request)") for b in offered]
    for plugin, command in pm.commands():
        extra.setdefault(plugin, {}).setdefault("command", []).append(command.name)
    for info in pm.plugins():
        where = f"{info.distribution} {info.version}" if info.distribution else "registered from code"
        provides = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in
                             {**info.provides, **extra.get(info.name, {})}.items() if names) or "event hooks only"
        print(f"{info.name:<12} {where:<20} {provides}")
    return EXIT_OK
