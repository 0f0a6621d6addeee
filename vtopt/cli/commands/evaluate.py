"""``vtopt evaluate``: the policy against baselines at the same budget."""

from __future__ import annotations

import argparse

from ...plugin.manager import PluginManager
from ..images import add_image_arguments, run_images

name = "evaluate"
help = "compare the policy with baselines at the same budget"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_image_arguments(parser)
    parser.add_argument("--methods",
                        help="comma-separated: policy, defaults, a baseline that a plugin offers (`vtopt plugins` "
                             "lists them), any registered algorithm name (run at the policy's budget), or "
                             "NAME=MODEL.zip (default: policy, defaults and the plugins' default baselines)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --report")


def run(args: argparse.Namespace, pm: PluginManager) -> int:
    return run_images(args, pm)
