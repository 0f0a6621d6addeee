"""The learning curve of the portfolio and the chooser: more training logos, how much better?

    python benchmarks/learning_curve.py CONFIG [--sizes 250,500,1000,all] [--test 300] [--ablate] [--split 0]
                                               [--emoji DIR,DIR...]

Loads the training images of CONFIG (configs/chooser.yaml: the logos' training
part) and their cached labels (no conversion when the cache holds them: run the
config once first), sets a fixed, seeded ``--test`` of them aside, and fits the
portfolio and the chooser on the first N of the others (seeded order), for each
size. Prints, per size, the held-out mean best-of at budgets 2, 4 and 8: of the
greedy portfolio and of the chooser (picking from the labels, so exactly what
converting would give), and of the per-image best of the whole pool.
``--ablate`` also fits, at each size, a chooser that does not observe the
diagnostics (where conversions differ from the image: ``vtopt.DIAGNOSTICS``).
``--emoji`` (folders of ``vtopt corpus``'s emoji sets, never Fluent Emoji)
labels those images too and fits each size again with them added to the
training logos (the held-out images stay logos only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from vtopt_portfolio import Chooser
from vtopt_portfolio import chooser as net

from vtopt import PluginManager, image_kind, label, load_config, make_pool
from vtopt.env.data import load_dataset, load_folder
from vtopt.env.scoring import build_scorer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--sizes", default="250,500,1000,all")
    ap.add_argument("--test", type=int, default=300)
    ap.add_argument("--ablate", action="store_true")
    ap.add_argument("--split", type=int, default=0, help="seed of the held-out draw (repeat with others for noise)")
    ap.add_argument("--emoji", default="", help="comma-separated folders of emoji to add to the training logos")
    args = ap.parse_args()
    pm = PluginManager()
    loaded = load_config(args.config, pm=pm)
    cfg = loaded.config
    p = cfg.algorithm.params
    scorer = build_scorer(pm, cfg)
    images = load_dataset(loaded, scorer).train
    logos = len(images)
    for folder in filter(None, args.emoji.split(",")):
        extra, _ = load_folder(Path(folder).expanduser(), None, cfg.data.image_size)
        images = images + extra
    pool = make_pool(p["pool"], p.get("seed", 0), p.get("extra", []))
    labels = label(images, scorer, pool, Path(p["labels"]).expanduser())
    variants = {"chooser": True, **({"no diagnostics": False} if args.ablate else {})}
    observed = {name: Chooser(diagnostics=diag).observations(images, labels) for name, diag in variants.items()}
    S, D = labels.scores, labels.default_score
    kinds = np.array([image_kind(im) for im in images])
    order = np.random.default_rng(args.split).permutation(logos)
    test, rest = order[: args.test], order[args.test:]
    emoji = np.arange(logos, len(images))
    print(f"{len(images)} labelled training images, {len(pool)} candidates; {len(test)} held out")
    print(f"held-out per-image best of the pool: {float(np.maximum(S[test].max(1), D[test]).mean()):.5f}; "
          f"defaults: {float(D[test].mean()):.5f}")
    print("   images  portfolio b2/b4/b8        " + "".join(f"{name + ' b2/b4/b8':<27}" for name in variants))
    for size in args.sizes.split(","):
        base = rest if size == "all" else rest[: int(size)]
        for train in [base] + ([np.concatenate([base, emoji])] if len(emoji) else []):
            folio = net.greedy_portfolio(S[train], D[train], 7)
            orders = np.tile(np.array(folio), (len(test), 1))
            pf = [net.best_of(S[test], D[test], orders, b - 1) for b in (2, 4, 8)]
            name = f"{len(base)}" + (f"+{len(emoji)}e" if len(train) > len(base) else "")
            row = f"{name:>9}  {pf[0]:.5f} {pf[1]:.5f} {pf[2]:.5f}   "
            for heads, sigs in observed.values():
                policy, _ = net.fit(heads[train], sigs[train], S[train], D[train], hidden=p.get("hidden", 256),
                                    rounds=p.get("rounds", 3), epochs=p.get("epochs", 20), steps=7, seed=0,
                                    families=kinds[train])
                own = net.policy_orders(policy, heads[test], sigs[test], S[test], D[test], 7)
                ch = [net.best_of(S[test], D[test], own, b - 1) for b in (2, 4, 8)]
                row += f"{ch[0]:.5f} {ch[1]:.5f} {ch[2]:.5f}    "
            print(row, flush=True)


if __name__ == "__main__":
    main()
