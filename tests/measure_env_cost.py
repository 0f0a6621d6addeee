"""What local subprocess envs cost to start: seconds and resident memory, for README's "When something
goes wrong": ``python tests/measure_env_cost.py 2 8``."""

import sys
import time
from pathlib import Path

import vtopt
from vtopt.config.checks import load_config
from vtopt.env.data import load_dataset
from vtopt.env.scoring import build_scorer
from vtopt.env.vecenv import make_vec_env
from vtopt.training.memory import MB, process_tree


def main() -> None:
    pm = vtopt.PluginManager()
    loaded = load_config(Path(__file__).parents[1] / "configs" / "debug.yaml", pm=pm)
    scorer = build_scorer(pm, loaded.config)
    data = load_dataset(loaded, scorer)
    for n in [int(a) for a in sys.argv[1:]]:
        before, start = sum(r for _, r in process_tree()) / MB, time.perf_counter()
        env = make_vec_env(data.train, scorer, 4, n, 0)
        env.reset()
        seconds, mb = time.perf_counter() - start, sum(r for _, r in process_tree()) / MB - before
        print(f"envs {n}: start {seconds:.1f} s, memory +{mb:.0f} MB ({mb / n:.0f} MB per env)", flush=True)
        env.close()


if __name__ == "__main__":
    main()
