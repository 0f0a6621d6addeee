"""``vtopt validate``: check a config without running it."""

from __future__ import annotations

import argparse

from ...errors import EXIT_OK
from ...plugin.manager import PluginManager
from ..arguments import add_config_arguments, load

name = "validate"
help = "check a config without running it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace, pm: PluginManager) -> int:
    loaded = load(args, pm)
    pool = loaded.config.env.pool
    if loaded.config.env.actions == "pool" and pool is not None and pool.advisor is not None:
        from ...apply.model import load_advisor
        from ...env.poolenv import config_pool

        load_advisor(pm, pool.advisor, loaded.path, pool=config_pool(loaded.config))
    print(f"{args.config}: OK" + (f" ({len(loaded.warnings)} warning(s))" if loaded.warnings else ""))
    return EXIT_OK
