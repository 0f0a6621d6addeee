"""``vtopt run``: train as a config says, and print the summary."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ...errors import EXIT_OK, Interrupted, VtoptError
from ...plugin.manager import PluginManager
from ..arguments import add_config_arguments, load

name = "run"
help = "train an agent as the config says"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", type=Path, help="run directory (default: runs/<run.name>)")
    parser.add_argument("--force", action="store_true", help="overwrite a finished run in --out")
    parser.add_argument("--executor", help="where the training environments run: local (subprocesses, the default) "
                                           "or ray (actors anywhere on a cluster); sets resources.executor")
    parser.add_argument("--address", help="the cluster's address (ray: 'auto' or ray://HOST:PORT); "
                                          "sets resources.address")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its newest checkpoint to the configured total "
                             "(--set run.timesteps=N trains a run further)")


def run(args: argparse.Namespace, pm: PluginManager) -> int:
    from ...training.run import train

    # --executor/--address are the config's resources.executor/address
    loaded = load(args, pm, [f"resources.{k}={json.dumps(v)}" for k in ("executor", "address")
                             if (v := getattr(args, k)) is not None])
    out = args.out or Path("runs") / loaded.config.run.name
    if args.resume and args.force:
        raise VtoptError("--resume and --force exclude each other")
    try:
        summary = train(loaded, out, pm, argv=args.argv, force=args.force, resume=args.resume)
    except Interrupted as exc:
        print(f"vtopt: {exc}", file=sys.stderr)
        return exc.exit_code
    print_summary(summary, out)
    return EXIT_OK


def print_summary(summary: dict, out: Path) -> None:
    ev = summary["evaluation"]

    def f(v, fmt):
        return format(v, fmt) if v is not None else "-"

    if summary["total_timesteps"]:
        print(f"\ntrained {summary['total_timesteps']} timesteps in {summary['wall_seconds']:.1f} s "
              f"({summary['env_steps_per_second']:.1f} env steps/s, {summary['n_envs']} env(s)); run directory: {out}")
    else:  # search and label-fitted algorithms learn without stepping the environment
        print(f"\nalgorithm {summary['algorithm']!r} learned without stepping the environment (run.timesteps has "
              f"no effect on it) in {summary['wall_seconds']:.1f} s; run directory: {out}")
    if ev.get("images"):
        print(f"evaluation on {ev['images']} held-out images, {summary['conversions_per_episode']} conversions each:")
        rows = {summary["algorithm"]: ev}  # a baseline labelled as the algorithm is marked, not dropped
        rows.update({(k if k not in rows else f"{k} (baseline)"): v for k, v in ev.get("baselines", {}).items()})
        w = max(10, *map(len, rows))
        print(f"  {'':<{w}} {'mean SSIM':>10} {'mean bytes':>11} {'mean score':>11}")
        print(f"  {'defaults':<{w}} {f(ev['default_mean_ssim'], '.4f'):>10} {f(ev['default_mean_bytes'], '.0f'):>11} "
              f"{f(ev['default_mean_score'], '.4f'):>11}")
        for label, r in rows.items():
            print(f"  {label:<{w}} {f(r['mean_ssim'], '.4f'):>10} {f(r['mean_bytes'], '.0f'):>11} "
                  f"{f(r['mean_score'], '.4f'):>11}   bytes x{f(r['bytes_ratio'], '.3f')} (geometric mean)")
        print(f"  (each row: the best of the defaults and {summary['conversions_per_episode'] - 1} more conversions)")
