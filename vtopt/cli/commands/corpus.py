"""``vtopt corpus``: a training corpus of real icons (:mod:`vtopt.cli.corpus`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...errors import EXIT_OK, VtoptError
from ...plugin.manager import PluginManager

name = "corpus"
help = "build a training corpus of real icons from npm's @iconify-json sets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="folder for OUT/<set>/<icon>.png (one kind per set)")
    parser.add_argument("--sets", default=None,
                        help="comma-separated icon sets (default: all of them: noto, twemoji, openmoji, "
                             "flat-color-icons, streamline-emojis, fxemoji, emojione, and logos: the allow-listed "
                             "1,854 of @iconify-json/logos, 300 of them as the validation split)")
    parser.add_argument("--per-set", type=int, default=None,
                        help="icons sampled per set (default 400; all allow-listed logos)")
    parser.add_argument("--validation", type=Path, default=None,
                        help="folder for the logo validation split (default: OUT-validation beside OUT)")
    parser.add_argument("--size", type=int, default=256, help="pixels on the long side (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")


def run(args: argparse.Namespace, pm: PluginManager) -> int:
    from ..corpus import DEFAULT_SETS, build_corpus

    if (args.per_set is not None and args.per_set < 1) or not 8 <= args.size <= 4096:
        raise VtoptError("--per-set must be >= 1 and --size in [8, 4096]")
    sets = [s.strip() for s in args.sets.split(",") if s.strip()] if args.sets else list(DEFAULT_SETS)
    counts = build_corpus(args.out, sets, args.per_set, args.size, args.seed, validation=args.validation)
    print(f"{sum(counts.values())} icons in {args.out} ({len(counts)} sets; licences in each set's LICENSE.txt)")
    return EXIT_OK
