"""``vtopt report``: a run directory's report page."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...errors import EXIT_OK
from ...plugin.manager import PluginManager

name = "report"
help = "write RUN_DIR/report.html: curves, stages, evaluation, gallery"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a run directory written by `vtopt run` (e.g. runs/debug)")


def run(args: argparse.Namespace, pm: PluginManager) -> int:
    from ...training.report import write_report  # matplotlib is imported only here
    from ...training.rundir import RunDirLock

    with RunDirLock(args.run_dir, create=False):  # not while a run writes there
        print(f"wrote {write_report(args.run_dir, pm)}")
    return EXIT_OK
