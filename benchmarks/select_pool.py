"""Choose a candidate pool by coverage over training labels (how configs/portfolio.yaml's pool was chosen).

    python benchmarks/select_pool.py CONFIG --pool 512 --keep 48 [--limit 600] [--check 0.5]

Loads CONFIG's training images (configs/portfolio.yaml: the logos' training
part, never the validation split), takes a seeded ``--limit`` of them, labels
them against the wide pool ``make_pool(--pool, seed, [tuned preset])`` in
CONFIG's label cache (a second run converts nothing), and picks, greedily, the
``--keep`` candidates that most raise the mean per-image best (VTracer's
defaults included). ``--check F`` first repeats the choice on a seeded share F
of those images and reports the per-image best on the rest, for several sizes,
against the whole wide pool and against CONFIG's current pool (held-out
coverage). Prints the chosen sets as a YAML flow list for the configs' ``extra``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from pool_reach import TUNED  # the same wide pool as pool_reach's (benchmarks/ is on the path when run)
from vtopt_portfolio.chooser import greedy_portfolio

from vtopt import PluginManager, label, load_config, make_pool
from vtopt.env.data import load_dataset
from vtopt.env.scoring import build_scorer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--pool", type=int, default=512)
    ap.add_argument("--keep", type=int, default=48)
    ap.add_argument("--limit", type=int, default=600)
    ap.add_argument("--check", type=float, default=0.0)
    args = ap.parse_args()
    pm = PluginManager()
    loaded = load_config(args.config, pm=pm)
    cfg = loaded.config
    p = cfg.algorithm.params
    seed = p.get("seed", 0)
    scorer = build_scorer(pm, cfg)
    images = load_dataset(loaded, scorer).train
    images = [images[i] for i in np.random.default_rng(0).permutation(len(images))[: args.limit]]
    pool = make_pool(args.pool, seed, [TUNED])
    keys = [json.dumps(c, sort_keys=True) for c in pool]
    current = [keys.index(k) for k in (json.dumps(c, sort_keys=True) for c in
                                       make_pool(p["pool"], seed, p.get("extra", []))) if k in keys]
    labels = label(images, scorer, pool, Path(p["labels"]).expanduser())
    scores, default = labels.scores, labels.default_score
    print(f"# {len(images)} training images labelled for all {len(pool)} candidates; defaults {default.mean():.5f}")

    def best(rows, cols) -> float:
        return float(np.maximum(scores[rows][:, cols].max(axis=1), default[rows]).mean())

    if args.check:
        perm = np.random.default_rng(seed).permutation(len(scores))
        cut = int(len(perm) * args.check)
        a, b = perm[:cut], perm[cut:]
        order = greedy_portfolio(scores[a], default[a], len(pool))
        for n in sorted({8, 16, 24, 32, 48, 64, 96, 128, args.keep, len(pool)}):
            if n <= len(pool):
                print(f"# held-out per-image best, {n} chosen by coverage: {best(b, order[:n]):.5f}")
        print(f"# held-out per-image best, the config's pool ({len(current)} of these): {best(b, current):.5f}")
    order = greedy_portfolio(scores, default, args.keep)
    every = np.arange(len(scores))
    print(f"# all {len(scores)} images: {args.keep} chosen {best(every, order):.5f}, "
          f"whole pool {best(every, list(range(len(pool)))):.5f}, the config's pool {best(every, current):.5f}")
    print("extra:")
    for c in order:
        print("  - " + json.dumps(pool[c], sort_keys=True).replace('"', ""))


if __name__ == "__main__":
    main()
