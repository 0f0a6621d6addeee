"""``vtopt sweep``: one training run per trial, with values drawn from the config's ``sweep:`` section."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ...config.checks import make_executor
from ...errors import EXIT_FAILED, EXIT_OK, Interrupted, VtoptError
from ...plugin.manager import PluginManager
from ..arguments import add_config_arguments, load

name = "sweep"
help = "run many trials over the search space in the config's sweep section"
DESCRIPTION = """\
Train one run per trial, with config values drawn from the config's `sweep:` section,
and rank the trials by the metric. The section:

  sweep:
    metric: mean_score   # of each trial's evaluation: mean_score, mean_ssim, mean_improvement
    scheduler: fifo      # or asha: stop weak trials early on their evaluations (ray)
    seed: 0              # for drawing the values
    space:               # config key path -> distribution
      algorithm.params.learning_rate: loguniform(1e-4, 1e-3)
      algorithm.params.n_epochs: choice([4, 10])

Distributions: uniform(a, b), loguniform(a, b), randint(a, b) (a <= x < b), choice([v, ...]).
Each trial is a run directory OUT/trial-NNN; the ranking goes to OUT/sweep.json and sweep.csv."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description, parser.formatter_class = DESCRIPTION, argparse.RawDescriptionHelpFormatter
    add_config_arguments(parser)
    parser.add_argument("--trials", "--samples", dest="trials", type=int, required=True,
                        help="number of trials (--samples: the former name)")
    parser.add_argument("--out", type=Path, help="folder for the trials and the results "
                                                 "(default: runs/<name>-sweep)")
    parser.add_argument("--executor", help="local (one trial after another), ray (Ray Tune), or a plugin's "
                                           "(default: the plugins' default, local)")
    parser.add_argument("--address", help="cluster address for the executor (ray: 'auto' or ray://HOST:PORT)")


def run(args: argparse.Namespace, pm: PluginManager) -> int:
    from ...training.runfiles import SWEEP_ROWS
    from ...training.sweep import Trial, sweep_space, write_results

    loaded = load(args, pm)
    if args.trials < 1:
        raise VtoptError(f"--trials {args.trials}: must be at least 1")
    space = sweep_space(loaded)
    out = args.out or Path("runs") / f"{loaded.config.run.name}-sweep"
    if (out / SWEEP_ROWS).exists() or list(out.glob("trial-*")):
        raise VtoptError(f"{out}: holds an earlier sweep; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    try:
        trial = Trial(str(loaded.path), tuple(args.overrides), loaded.config.run.timesteps)
        rows = make_executor(pm, args.executor, args.address).run_sweep(trial, space, args.trials, out,
                                                                         loaded.config.sweep)
    except Interrupted as exc:
        print(f"vtopt: sweep {exc}", file=sys.stderr)
        return exc.exit_code
    print(write_results(rows, out, loaded.config.sweep.metric))
    print(f"{len(rows)} trials; results in {out / 'sweep.json'} and {out / 'sweep.csv'}")
    return EXIT_OK if all(r.get("score") is not None for r in rows) else EXIT_FAILED
