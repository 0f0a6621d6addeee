"""Compare lossless SVG post-passes on VTracer's output: bytes, milliseconds and render identity per image.

    python benchmarks/postprocessors.py FOLDER [FOLDER ...] [--limit 48] [--json out.json]

Each image is converted with VTracer's defaults (splines, path_precision 2) and with ``mode=polygon``;
each output goes through each candidate; the candidate's SVG and the original are both rendered with
vtopt's renderer and scored with the default reward's quality metric (colour SSIM) against the image.
Printed per (output, candidate): bytes after/before (geometric mean), mean and worst ms per SVG (wall
clock) and mean CPU ms (the process's own time, less inflated when other jobs load the machine), the
worst SSIM change, how many images moved by more than 1e-4, and how many failed to parse or render.
scour's row needs ``pip install scour`` (not a vtopt dependency). Measure only; never train or tune on
the logo or Fluent sets.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import time
from pathlib import Path

import numpy as np

import vtopt
from vtopt import Sample
from vtopt.vtracer.images import list_images, load_image

TOLERANCE = 1e-4


def svgo_candidate(config: dict | None):
    import svgo

    def run(svg: str) -> str:
        return svgo.optimize(svg, config)["data"] if config else svgo.optimize(svg)["data"]
    return run


def scour_candidate(digits: int):
    from scour import scour

    options = scour.sanitizeOptions(None)
    options.digits = digits
    options.enable_viewboxing = False
    options.remove_metadata = True
    options.strip_comments = True
    options.strip_xml_prolog = True
    options.shorten_ids = True
    options.indent_type = "none"
    options.newlines = False
    options.quiet = True

    def run(svg: str) -> str:
        return scour.scourString(svg, options)
    return run


def candidates() -> dict:
    exact_paths = {"name": "preset-default", "params": {"overrides": {
        "convertPathData": {"makeArcs": False, "straightCurves": False, "convertToQ": False}}}}
    return {
        "svgo default": svgo_candidate(None),
        "svgo floatPrecision 4": svgo_candidate({"floatPrecision": 4}),
        "svgo fp4, exact curves": svgo_candidate({"floatPrecision": 4, "plugins": [exact_paths]}),
        **({"scour 5 digits": scour_candidate(5)} if importlib.util.find_spec("scour") else {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--limit", type=int, default=48, help="images per folder (the first N by name)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    pm = vtopt.PluginManager()
    scorer = vtopt.make_scorer(pm)
    metric = scorer.metrics[scorer.quality]
    outputs = {"defaults": dict(vtopt.DEFAULT_PARAMS), "polygon": {**vtopt.DEFAULT_PARAMS, "mode": "polygon"}}
    cands = candidates()
    figures = []
    for folder in args.folders:
        files = list_images(folder)[: args.limit]
        rows: dict[tuple[str, str], list[dict]] = {}
        for f in files:
            image = load_image(f, "input")
            state = metric.prepare(image)
            for out_name, params in outputs.items():
                svg = vtopt.convert(image, params)
                base = metric.compute(Sample(image, svg, vtopt.render(svg, *image.size), None), state)
                for cand_name, run in cands.items():
                    row = {"image": f.name}
                    try:
                        start, cpu = time.perf_counter(), time.process_time()
                        small = run(svg)
                        row["ms"] = (time.perf_counter() - start) * 1000
                        row["cpu_ms"] = (time.process_time() - cpu) * 1000  # less inflated by other load
                        value = metric.compute(Sample(image, small, vtopt.render(small, *image.size), None), state)
                        row.update(ratio=len(small.encode()) / len(svg.encode()), change=value - base)
                    except Exception as exc:  # noqa: BLE001 - a candidate's failure is a figure too
                        row["error"] = f"{type(exc).__name__}: {exc}"
                    rows.setdefault((out_name, cand_name), []).append(row)
        print(f"\n{folder} ({len(files)} images)")
        print(f"{'VTracer output':<15} {'candidate':<24} {'bytes after/before':>18} {'ms mean':>8} {'ms max':>7} "
              f"{'cpu ms':>7} "
              f"{'worst dSSIM':>12} {'>1e-4':>6} {'failed':>6}")
        for (out_name, cand_name), rs in rows.items():
            ok = [r for r in rs if "error" not in r]
            worst = min((r["change"] for r in ok), key=lambda v: -abs(v), default=math.nan)
            fig = {"folder": str(folder), "output": out_name, "candidate": cand_name, "images": len(rs),
                   "ratio": float(np.exp(np.mean(np.log([r["ratio"] for r in ok])))) if ok else None,
                   "ms_mean": float(np.mean([r["ms"] for r in ok])) if ok else None,
                   "ms_max": float(np.max([r["ms"] for r in ok])) if ok else None,
                   "cpu_ms_mean": float(np.mean([r["cpu_ms"] for r in ok])) if ok else None,
                   "worst_change": worst, "over_tolerance": sum(abs(r["change"]) > TOLERANCE for r in ok),
                   "failed": len(rs) - len(ok), "rows": rs}
            figures.append(fig)
            print(f"{out_name:<15} {cand_name:<24} {fig['ratio']:>18.3f} {fig['ms_mean']:>8.1f} {fig['ms_max']:>7.1f} "
                  f"{fig['cpu_ms_mean']:>7.1f} "
                  f"{worst:>12.2e} {fig['over_tolerance']:>6} {fig['failed']:>6}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
