"""``vtopt bench``: measure where an environment step's time goes (:mod:`vtopt.cli.bench`)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ...errors import EXIT_OK, VtoptError
from ...plugin.manager import PluginManager

name = "bench"
help = "measure the inner loop against VTracer alone; print the figures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=Path, help="a folder of real images to measure on")
    parser.add_argument("--samples", action="store_true", help="measure on the sample icons shipped with vtopt")
    parser.add_argument("--sizes", default="256,512", help="image sizes in pixels (default 256,512)")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per env-stepping measurement")
    parser.add_argument("--per-kind", type=int, default=6, help="synthetic images per kind")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="optimize workers")
    parser.add_argument("--model", type=Path, help="policy for the optimize figure (default: the shipped one)")
    parser.add_argument("--candidates", type=int, default=16,
                        help="candidates per image for the labelling figure (default 16)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--executor", help="also measure env steps/s with training's environments on this "
                                           "executor (ray: actors), beside local subprocesses")
    parser.add_argument("--address", help="the executor's cluster address (ray: 'auto' or ray://HOST:PORT)")


def run(args: argparse.Namespace, pm: PluginManager) -> int:
    from ...vtracer.images import SAMPLES
    from ..bench import run_bench

    if args.samples and args.images:
        raise VtoptError("bench: --images and --samples exclude each other")
    if args.candidates < 1:
        raise VtoptError(f"bench: --candidates {args.candidates}: must be at least 1")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = run_bench(SAMPLES if args.samples else args.images, sizes, args.seconds, args.per_kind,
                        args.workers, args.model, executor=args.executor, address=args.address,
                        candidates=args.candidates)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return EXIT_OK
