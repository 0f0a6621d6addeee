"""Choose a candidate pool by coverage over cached labels (how configs/portfolio.yaml's pool was chosen).

    python benchmarks/select_pool.py LABELS.npz --pool 128 --keep 48 [--check 0.5]

Reads a labels cache (``~/.cache/vtopt/labels/labels-<key>.npz``), takes the
images labelled for every candidate of ``make_pool(--pool, --seed, [tuned preset])``
and picks, greedily, the ``--keep`` candidates that most raise the mean per-image
best (VTracer's defaults included). ``--check F`` first repeats the choice on a
seeded share F of those images and reports the per-image best on the rest, for
every size, against the whole pool and against the pool's first ``--keep``
(held-out coverage). Prints the chosen sets as a YAML flow list for ``extra``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from vtopt_portfolio.chooser import greedy_portfolio

from vtopt import make_pool

TUNED = {"mode": "polygon", "hierarchical": "stacked", "filter_speckle": 8, "color_precision": 6, "layer_difference": 45,
         "corner_threshold": 141, "length_threshold": 4.0, "splice_threshold": 49, "path_precision": 5}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("labels")
    ap.add_argument("--pool", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=int, default=48)
    ap.add_argument("--check", type=float, default=0.0)
    args = ap.parse_args()
    with np.load(args.labels) as z:
        cands, cells, defaults = z["candidates"].tolist(), z["cells"], z["defaults"]
    pool = make_pool(args.pool, args.seed, [TUNED])
    index = [cands.index(json.dumps(p, sort_keys=True)) for p in pool]
    scores = cells[:, index, 0]
    full = ~np.isnan(scores).any(axis=1)
    scores, default = scores[full], defaults[full, 0]
    print(f"# {int(full.sum())} images labelled for all {len(pool)} candidates")

    def best(rows, cols) -> float:
        return float(np.maximum(scores[rows][:, cols].max(axis=1), default[rows]).mean())

    if args.check:
        perm = np.random.default_rng(args.seed).permutation(len(scores))
        cut = int(len(perm) * args.check)
        a, b = perm[:cut], perm[cut:]
        order = greedy_portfolio(scores[a], default[a], len(pool))
        for n in sorted({8, 16, 24, 32, 48, 64, args.keep, len(pool)}):
            if n <= len(pool):
                print(f"# held-out per-image best, {n} chosen by coverage: {best(b, order[:n]):.5f}")
        print(f"# held-out per-image best, the pool's first {args.keep}: {best(b, list(range(args.keep))):.5f}")
    order = greedy_portfolio(scores, default, args.keep)
    print(f"# all {len(scores)} images: {args.keep} chosen {best(np.arange(len(scores)), order):.5f}, "
          f"whole pool {best(np.arange(len(scores)), list(range(len(pool)))):.5f}")
    print("extra:")
    for c in order:
        print("  - " + json.dumps(pool[c], sort_keys=True).replace('"', ""))


if __name__ == "__main__":
    main()
