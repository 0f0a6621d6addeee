"""What ``optimize`` and ``evaluate`` share: their arguments, and their plan
(:mod:`vtopt.apply.plan`) run and printed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import EXIT_FAILED, EXIT_OK
from ..plugin.manager import PluginManager
from ..vtracer.images import MAX_PIXELS


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument("paths", type=Path, nargs="*", metavar="PATH", help="an image or a folder of images")
    p.add_argument("--samples", action="store_true",
                   help="also take the sample icons shipped with vtopt (24 flat-colour emoji, MIT)")
    p.add_argument("--model", type=Path, help="a model file (default: the policy shipped with vtopt)")
    p.add_argument("--budget", type=int, help="VTracer conversions per image, the defaults' included "
                   "(default: what the model was trained for)")
    p.add_argument("--report", type=Path, help="write the per-image rows as JSON here")
    p.add_argument("--workers", type=int, help="worker processes (default: this machine's cores; "
                   "ray: the cluster's CPUs)")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                   help=f"refuse larger images (default {MAX_PIXELS:,}), unless --downscale")
    p.add_argument("--downscale", action="store_true", help="downscale images over --max-pixels (or over "
                                                             "the memory one image may take) instead")
    p.add_argument("--memory-limit-mb", type=int, default=None,
                   help="MB the workers may take together: each image may take this over --workers, estimated "
                        "from its pixel count before converting (default, local executor: the memory available "
                        "at the start)")
    p.add_argument("--executor", help="where images run: local, ray, or a plugin's (default: the plugins' "
                                      "default, local)")
    p.add_argument("--address", help="cluster address for the executor (ray: 'auto' or ray://HOST:PORT)")
    p.add_argument("--conversion-timeout", type=float, default=60.0,
                   help="seconds one VTracer conversion may take before it is abandoned (default 60; 0: no limit)")
    p.add_argument("--max-ssim-loss", type=float, default=None,
                   help="the quality floor: a result more than this below the defaults' SSIM never wins "
                        "(default: the model's reward.max_ssim_loss, else 0.005)")
    p.add_argument("--postprocess", metavar="NAMES|none",
                   help="comma-separated post-processors every method's final SVG goes through, each result "
                        "rendered and kept only if it draws the same; 'none' turns the pass off (default: "
                        "the model's postprocess, else the plugins' default: lossless)")


def run_images(args: argparse.Namespace, pm: PluginManager) -> int:
    """Plan what ``args`` ask, run it, and print the table and what it needs said."""
    from ..apply.apply import BLOAT_NOTE, format_table, print_progress
    from ..apply.plan import Request, make_plan
    from ..vtracer.images import SAMPLES

    plan = make_plan(pm, Request.from_options(vars(args), [*args.paths, *([SAMPLES] if args.samples else [])]))
    r = plan.request
    to_stdout = r.output is not None and str(r.output) == "-"
    console = sys.stderr if to_stdout else sys.stdout  # stdout carries the SVG alone
    for line in plan.left_out:
        print(f"note: {line}", file=sys.stderr)
    if plan.skipped and r.out is not None:
        print(f"skipping {plan.skipped} image(s) whose SVG exists in {r.out}", file=sys.stderr)
    if not plan.files:
        print(f"every image's SVG exists already ({r.out or r.output}); nothing to do", file=console)
        return EXIT_OK
    rows = plan.run(pm, progress=None if args.quiet else print_progress)
    summaries = plan.summaries(rows)
    print(format_table(summaries), file=console)
    reward = ", ".join(f"{k} {v:g}" for k, v in plan.reward.weights.items())
    print(f"(score: {reward}, relative to the defaults; quality floor: SSIM loss <= {plan.reward.max_ssim_loss:g}"
          + (f"; policy: {plan.policy}" if plan.policy else "") + ")", file=console)
    if plan.postprocess:
        dropped = sum(1 for row in rows if row["error"] is None and set(row["postprocess"]) != set(plan.postprocess))
        print(f"(every row's SVG post-processed by {', '.join(plan.postprocess)}; bytes and scores are the "
              f"post-processed SVG's, against VTracer's raw defaults; --postprocess none turns it off"
              + (f"; {dropped} result(s) kept unprocessed where a post-processor's SVG did not render the same"
                 if dropped else "") + ")", file=console)
    for label, note in plan.notes.items():
        if label in summaries:
            print(f"({label}: {note})", file=console)
    first = plan.methods[0].label  # the row each image's failure and note is said for
    failed = sorted({row["input"] for row in rows if row["error"]})
    for row in rows:
        if row["error"] and row["method"] == first:
            print(f"failed: {row['error']}", file=sys.stderr)
    bloated = [row for row in rows if row["method"] == first and any("input file's size" in n for n in row["notes"])]
    if bloated:
        print(f"note: {len(bloated)} SVG(s) over {BLOAT_NOTE:g}x their input file's size, e.g. "
              f"{bloated[0]['input']}: vector output suits flat-colour art, not photo-like images", file=sys.stderr)
    where = ""
    if r.command == "optimize" and len(failed) < len(plan.files):
        where = "; SVG on stdout" if to_stdout else f"; SVGs in {r.out}" if r.out else f"; SVG in {r.output}"
    print(f"{len(plan.files) - len(failed)} of {len(plan.files)} images done"
          + (f", {len(failed)} failed" if failed else "") + where, file=console)
    return EXIT_FAILED if failed else EXIT_OK
