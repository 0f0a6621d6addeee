"""How close a shipped pool comes to a wider one: the per-image best of each, on images it was not fitted on.

    python benchmarks/pool_reach.py IMAGES CONFIG --pool 512 [--limit 100] [--cache DIR]

Labels the first ``--limit`` images of IMAGES (seeded order) against
``make_pool(--pool, seed, extra)`` of CONFIG's algorithm params (its seeded
draws, of which CONFIG's own pool must be a part), and prints the mean
per-image best (VTracer's defaults included) of CONFIG's pool and of the wider
one. Labels go to ``--cache`` (default: none kept), never to the training
cache: these images are for measuring only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from vtopt import PluginManager, label, load_config, make_pool
from vtopt.env.data import load_folder
from vtopt.env.scoring import build_scorer

TUNED = {"mode": "polygon", "hierarchical": "stacked", "filter_speckle": 8, "color_precision": 6, "layer_difference": 45,
         "corner_threshold": 141, "length_threshold": 4.0, "splice_threshold": 49, "path_precision": 5}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("images", type=Path)
    ap.add_argument("config")
    ap.add_argument("--pool", type=int, default=512)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args()
    pm = PluginManager()
    cfg = load_config(args.config, pm=pm).config
    p = cfg.algorithm.params
    shipped = make_pool(p["pool"], p.get("seed", 0), p.get("extra", []))
    wide = make_pool(args.pool, p.get("seed", 0), [TUNED])
    keys = [json.dumps(c, sort_keys=True) for c in wide]
    missing = [c for c in shipped if json.dumps(c, sort_keys=True) not in keys]
    if missing:
        raise SystemExit(f"{len(missing)} of the config's candidates are not in the wider pool")
    images, _ = load_folder(args.images, None, cfg.data.image_size)
    images = [images[i] for i in np.random.default_rng(0).permutation(len(images))[: args.limit]]
    labels = label(images, build_scorer(pm, cfg), wide, args.cache)
    idx = [keys.index(json.dumps(c, sort_keys=True)) for c in shipped]
    d = labels.default_score
    print(f"{len(images)} images of {args.images}: defaults {d.mean():.5f}")
    print(f"per-image best, the config's {len(shipped)}: {np.maximum(labels.scores[:, idx].max(1), d).mean():.5f}")
    print(f"per-image best, {len(wide)} (presets, tuned, seeded draws): {np.maximum(labels.scores.max(1), d).mean():.5f}")


if __name__ == "__main__":
    main()
