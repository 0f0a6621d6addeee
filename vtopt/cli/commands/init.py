"""``vtopt init``: write a commented config from a preset. It needs no plugins, so it works when one
cannot load."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...config.schema import PRESETS, preset_text
from ...errors import EXIT_OK, VtoptError

name = "init"
help = "write a commented config from a preset"
needs_plugins = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Write a commented config file from one of vtopt's presets; edit it, check it with "
                          "`vtopt validate`, train with `vtopt run`.")
    parser.add_argument("path", type=Path, help="the YAML file to write, e.g. my.yaml")
    parser.add_argument("--preset", choices=PRESETS, default="default",
                        help="debug: a minute on synthetic images; cpu: a laptop-sized run; "
                             "default: the full curriculum (default: default)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")


def run(args: argparse.Namespace, pm) -> int:
    if args.path.exists() and not args.force:
        raise VtoptError(f"{args.path}: exists; pass --force to overwrite it")
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(preset_text(args.preset), encoding="utf-8")
    print(f"wrote {args.path} (preset {args.preset}); check it with: vtopt validate {args.path}")
    return EXIT_OK
