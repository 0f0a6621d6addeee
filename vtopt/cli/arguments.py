"""What several commands share: a config file with its ``--set`` overrides (``run``, ``validate``, ``sweep``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config.checks import load_config
from ..config.schema import LoadedConfig
from ..plugin.manager import PluginManager


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="YAML config file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a config value (YAML syntax), e.g. --set run.timesteps=512")


def load(args: argparse.Namespace, pm: PluginManager, overrides: list[str] = ()) -> LoadedConfig:
    """The config ``args`` name, with their ``--set`` overrides and then ``overrides``, checked; its
    warnings printed."""
    loaded = load_config(args.config, [*args.overrides, *overrides], pm)
    for line in loaded.warnings:
        print(line, file=sys.stderr)
    return loaded
