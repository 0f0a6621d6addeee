"""``vtopt sweep``: many ``vtopt run`` trials over search spaces declared in the YAML.

    sweep:
      metric: mean_score              # from each trial's evaluation (higher is better)
      scheduler: fifo                 # or asha: early stopping on evaluation scores (Ray)
      space:
        algorithm.params.learning_rate: loguniform(1e-4, 1e-3)
        algorithm.params.n_epochs: choice([4, 10])

Distributions: ``uniform(a, b)``, ``loguniform(a, b)``, ``randint(a, b)``
(a <= x < b), ``choice([v, ...])``; arguments are YAML, never evaluated as
code. Each trial is a run with its own directory; the executor plugin
(``local``: one trial after another; ``ray``: Ray Tune) schedules them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import attrs

from ..config.checks import load_config
from ..config.distributions import Distribution, parse_distribution
from ..config.schema import LoadedConfig
from ..errors import VtoptError
from ..files import atomic_write_text
from .runfiles import SWEEP_ROWS, SWEEP_TABLE


def sweep_space(loaded: LoadedConfig) -> dict[str, Distribution]:
    sweep = loaded.config.sweep
    if sweep is None or not sweep.space:
        raise VtoptError(f"{loaded.path}: no sweep section with a space to search (see `vtopt sweep --help`)")
    return {key: parse_distribution(text) for key, text in sweep.space.items()}


@attrs.frozen
class Trial:
    """What an executor runs for a sweep: picklable; ``trial(values, trial_dir)`` trains one run.

    ``values`` maps config key paths to the values drawn for this trial; the
    result is the trial's row (trial, score, the values, timesteps, seconds,
    stopped, run_dir). ``on_evaluated`` receives each periodic evaluation's
    figures (mean_score, ..., timesteps), e.g. for a scheduler that stops weak
    trials early. Plugins registered from code travel with it.
    """

    config_path: str
    overrides: tuple[str, ...]
    total_timesteps: int  # each trial's run.timesteps
    plugins: Any = None  # a vtopt.plugin.manager.PluginSet (PluginManager.portable()); None: a fresh manager

    def __call__(self, values: dict[str, Any], trial_dir: str,
                 on_evaluated: Callable[[dict], None] | None = None) -> dict[str, Any]:
        return run_trial(self, values, trial_dir, on_evaluated)


def run_trial(trial: Trial, values: dict[str, Any], trial_dir: str,
              on_evaluated: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """One trial: the config with ``values`` set, trained into ``trial_dir``; returns its row."""
    from ..plugin.manager import PluginManager, hookimpl
    from .run import train

    pm = trial.plugins.manager() if trial.plugins is not None else PluginManager()
    config_path, overrides = trial.config_path, trial.overrides
    if on_evaluated is not None:
        class Reporter:
            @hookimpl
            def vtopt_evaluated(self, evaluation, timesteps):
                keys = ("mean_score", "mean_ssim", "mean_improvement", "bytes_ratio")
                on_evaluated({**{k: evaluation[k] for k in keys}, "timesteps": timesteps})

        pm.register(Reporter(), name="sweep-reporter", portable=False)
    sets = [f"{k}={json.dumps(v)}" for k, v in values.items()]
    loaded = load_config(config_path, list(overrides) + sets, pm)
    start = time.perf_counter()
    summary = train(loaded, Path(trial_dir), pm)
    metric = loaded.config.sweep.metric if loaded.config.sweep else "mean_score"
    return {"trial": Path(trial_dir).name, "score": summary["evaluation"].get(metric), **values,
            "timesteps": summary["total_timesteps"], "seconds": round(time.perf_counter() - start, 2),
            "stopped": summary["stopped"], "run_dir": str(trial_dir)}


def write_results(rows: list[dict[str, Any]], out_dir: Path, metric: str) -> str:
    rows = sorted(rows, key=lambda r: -math.inf if r.get("score") is None else r["score"], reverse=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / SWEEP_ROWS, json.dumps(rows, indent=1))
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, keys)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_dir / SWEEP_TABLE, buf.getvalue())
    params = [k for k in keys if k not in ("trial", "score", "timesteps", "seconds", "stopped", "run_dir", "error")]
    head = f"{'trial':<10} {metric:>11} " + " ".join(f"{p.split('.')[-1]:>14}" for p in params) + f" {'timesteps':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        score = _fmt(float(r["score"])) if r.get("score") is not None else "failed"
        vals = " ".join(f"{_fmt(r.get(p)):>14}" for p in params)
        lines.append(f"{r['trial']:<10} {score:>11} {vals} {r.get('timesteps') or '-':>9}"
                     + (f"  {r['error']}" if r.get("error") else ""))
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4f}" if abs(v) >= 0.01 else f"{v:.4g}"
    return str(v)
