"""In the loop or at the end? Does scoring post-processed bytes change which candidate wins, and what is it worth?

    python benchmarks/postprocess_in_loop.py FOLDER [--limit 48] [--model policy.zip] [--budget 4]

For each image the policy (default: the shipped chooser) runs at the budget as ``optimize`` runs it, and
every conversion it makes is kept. *At the end* (what ``optimize`` does): the best raw score wins, then
its SVG is post-processed. *In the loop*: every candidate is post-processed and the best post-processed
score wins. Printed: mean final score of each, how many images change winner, and the post-pass time of
each (the policy's own choices are the same in both: it saw raw scores; in-the-loop scores could also
steer it, which this does not measure). Measure only; never train or tune on the logo or Fluent sets.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import vtopt
from vtopt.apply.apply import model_method
from vtopt.apply.postprocess import postprocess
from vtopt.env.episodes import ImageEpisodes
from vtopt.env.scoring import Scorer
from vtopt.env.search import search_image
from vtopt.vtracer.images import list_images, load_image


class Keeping(Scorer):
    """A scorer that keeps every outcome it returns (the candidates of one image)."""

    def evaluate(self, image, params, keep_svg=False):
        outcome = super().evaluate(image, params, keep_svg=True)
        if outcome.ok:
            self.seen.append(outcome)
        return outcome


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--limit", type=int, default=48)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--budget", type=int)
    ap.add_argument("--postprocess", default="lossless")
    args = ap.parse_args()
    pm = vtopt.PluginManager()
    method, meta = model_method(args.model, args.budget)
    base = vtopt.make_scorer(pm, meta.get("reward_weights"), quality=meta.get("reward_quality"))
    scorer = Keeping(base.metrics, base.weights, max_ssim_loss=meta.get("max_ssim_loss", base.max_ssim_loss),
                     quality=base.quality)
    algorithm, _ = vtopt.load_model(pm, Path(method.model))
    processors = [(n, pm.create("postprocessor", n)) for n in args.postprocess.split(",")]
    end, loop, changed, t_end, t_loop, candidates = [], [], 0, 0.0, 0.0, 0
    for path in list_images(args.folder)[: args.limit]:
        image = load_image(path, "input")
        scorer.seen = [scorer.defaults(image)]
        env = ImageEpisodes([image], scorer, method.budget, keep_svg=True)
        search_image(algorithm, env, 0)
        start = time.perf_counter()
        at_end = postprocess(env.best, image, scorer, processors, pm).outcome
        t_end += time.perf_counter() - start
        start = time.perf_counter()
        unique = {vtopt.params_key(o.params): o for o in scorer.seen}
        posted = [postprocess(o, image, scorer, processors, pm).outcome for o in unique.values()]
        t_loop += time.perf_counter() - start
        candidates += len(unique)
        in_loop = max(posted, key=lambda o: o.score)
        end.append(at_end.score)
        loop.append(in_loop.score)
        changed += vtopt.params_key(in_loop.params) != vtopt.params_key(at_end.params)
        scorer.forget(image)
    n = len(end)
    print(f"{args.folder}: {n} images, budget {method.budget}, policy {meta['algorithm']}, post-processors "
          f"{args.postprocess}; {candidates / n:.1f} distinct candidates per image")
    print(f"  at the end : mean score {np.mean(end):.5f}; post-pass {1000 * t_end / n:.1f} ms per image")
    print(f"  in the loop: mean score {np.mean(loop):.5f}; post-pass {1000 * t_loop / n:.1f} ms per image")
    print(f"  winner changed on {changed} of {n} images; in the loop minus at the end: "
          f"mean {np.mean(np.subtract(loop, end)):+.5f}, max {np.max(np.subtract(loop, end)):+.5f}")


if __name__ == "__main__":
    main()
