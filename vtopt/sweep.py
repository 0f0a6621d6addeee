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
import re
import time
from pathlib import Path
from typing import Any, Callable

import attrs
import numpy as np
from ruamel.yaml import YAML

from .config import LoadedConfig, load_config
from .errors import VtoptError
from .files import atomic_write_text

_SPEC = re.compile(r"^\s*(uniform|loguniform|randint|choice)\s*\((.*)\)\s*$", re.S)


@attrs.frozen
class Distribution:
    kind: str
    args: tuple

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "uniform":
            return float(rng.uniform(*self.args))
        if self.kind == "loguniform":
            lo, hi = self.args
            return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        if self.kind == "randint":
            return int(rng.integers(*self.args))
        return self.args[int(rng.integers(len(self.args)))]


def parse_distribution(text: str) -> Distribution:
    """Parse ``loguniform(1e-4, 1e-3)`` and friends; raise ValueError with the problem."""
    m = _SPEC.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not one of uniform(a, b), loguniform(a, b), randint(a, b), choice([...])")
    kind, raw = m.groups()
    try:
        args = YAML(typ="safe", pure=True).load(f"[{raw}]")
    except Exception as exc:
        raise ValueError(f"{text!r}: arguments are not valid YAML ({str(exc).splitlines()[0]})") from None
    if kind == "choice":
        if len(args) != 1 or not isinstance(args[0], list) or not args[0]:
            raise ValueError(f"{text!r}: choice takes one non-empty list, e.g. choice([4, 10])")
        return Distribution(kind, tuple(args[0]))
    if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise ValueError(f"{text!r}: {kind} takes two numbers")
    lo, hi = args
    if not lo < hi or (kind == "loguniform" and lo <= 0):
        raise ValueError(f"{text!r}: needs low < high" + (" and low > 0" if kind == "loguniform" else ""))
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise ValueError(f"{text!r}: randint takes two integers")
    return Distribution(kind, (lo, hi))


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
    plugins: Any = None  # a vtopt.plugin_manager.PluginSet (PluginManager.portable()); None: a fresh manager

    def __call__(self, values: dict[str, Any], trial_dir: str,
                 on_evaluated: Callable[[dict], None] | None = None) -> dict[str, Any]:
        return run_trial(self, values, trial_dir, on_evaluated)


def run_trial(trial: Trial, values: dict[str, Any], trial_dir: str,
              on_evaluated: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """One trial: the config with ``values`` set, trained into ``trial_dir``; returns its row."""
    from . import hookimpl
    from .plugin_manager import PluginManager
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
    atomic_write_text(out_dir / "sweep.json", json.dumps(rows, indent=1))
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, keys)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_dir / "sweep.csv", buf.getvalue())
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
