"""``vtopt optimize``: convert images with a trained policy, keeping the best SVG of each."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...plugin.manager import PluginManager
from ..images import add_image_arguments, run_images

name = "optimize"
help = "convert images with a trained policy, keeping the best SVG of each"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_image_arguments(parser)
    dest = parser.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", type=Path, help="folder for <image stem>.svg files")
    dest.add_argument("-o", "--output", type=Path, metavar="FILE",
                      help="the SVG file for a single input image; '-' writes it to stdout")
    kept = parser.add_mutually_exclusive_group()
    kept.add_argument("--force", action="store_true", help="overwrite existing SVGs (and an existing --report)")
    kept.add_argument("--skip-existing", action="store_true",
                      help="leave images whose SVG exists alone (for reruns over big folders); an existing "
                           "--report keeps their earlier rows")


def run(args: argparse.Namespace, pm: PluginManager) -> int:
    return run_images(args, pm)
