"""The orchestrator: a config and a plugin manager in, a trained run directory out.

A run directory holds ``config.yaml`` (the resolved config), ``run.json``
(command line, versions), ``model.zip``, ``checkpoints/``, ``summary.json``
and whatever the monitors write (the structlog monitor: ``events.jsonl``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import attrs
import numpy as np
import structlog

from .components import TrainContext
from .config import Config, LoadedConfig
from .data import load_dataset
from .env import VTracerEnv
from .errors import VtoptError
from .images import LogoImage
from .model import save_model
from .plugin_manager import PluginManager
from .scoring import REPORTED, Scorer
from .search import search_image

log = structlog.get_logger(__name__)
ROLLOUT_MIN_SECONDS, ROLLOUT_MIN_STEPS = 2.0, 32


@attrs.define
class RunInfo:
    """What monitors receive as ``run`` with every event."""

    name: str
    out_dir: Path
    config: Config
    total_timesteps: int
    n_envs: int
    kinds: list[str]
    started: float = attrs.field(factory=time.time)


# -- building blocks -------------------------------------------------------------------


def build_scorer(pm: PluginManager, config: Config) -> Scorer:
    """The metrics of the reward (plus the reported ones, where provided)."""
    available = pm.components("metric")
    names = list(config.reward.weights) + [n for n in REPORTED if n in available and n not in config.reward.weights]
    return Scorer({n: pm.create("metric", n) for n in names}, config.reward.weights)


def make_vec_env(images: Sequence[LogoImage], scorer: Scorer, conversions: int, n_envs: int, seed: int):
    """n_envs environments, in subprocesses when more than one; never a silent fallback."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    fns = [partial(VTracerEnv, list(images), scorer, conversions) for _ in range(n_envs)]
    if n_envs == 1:
        env = DummyVecEnv(fns)
    else:
        try:
            env = SubprocVecEnv(fns, start_method="forkserver")
        except Exception as exc:
            raise VtoptError(f"could not start {n_envs} subprocess environments: {type(exc).__name__}: {exc}") from exc
    env.seed(seed)
    return env


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


#: Simple strategies every evaluation also runs at the same budget, where their plugins are present,
#: so that a summary shows what the policy adds: (label, algorithm name, params).
BASELINES = (("polygon", "preset", {"preset": "polygon"}), ("random", "random", {}))


def evaluate(algorithm, images: Sequence[LogoImage], scorer: Scorer, conversions: int,
             baselines: dict[str, Any] | None = None) -> dict[str, Any]:
    """The deterministic policy on each image, against VTracer's defaults (and baselines)."""
    if not images:
        return {"images": 0, "rows": []}

    def run_all(algo):
        env = VTracerEnv(images, scorer, conversions)
        rows = [search_image(algo, env, i) for i in range(len(images))]
        for row in rows:
            row.pop("svg")
        return rows

    rows = run_all(algorithm)
    result = summarise(rows)
    kinds = sorted({r["kind"] for r in rows})
    result["per_kind"] = {k: {key: v for key, v in summarise([r for r in rows if r["kind"] == k]).items()}
                          for k in kinds}
    result["baselines"] = {label: summarise(run_all(algo)) for label, algo in (baselines or {}).items()}
    result["rows"] = rows
    return result


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means over episode rows; bytes as a geometric-mean ratio to the defaults."""
    def mean(key):
        values = [r[key] for r in rows if r.get(key) is not None and not math.isnan(r[key])]
        return float(np.mean(values)) if values else None

    ratios = [r["bytes"] / r["default_bytes"] for r in rows if r.get("default_bytes")]
    return {
        "images": len(rows),
        "mean_ssim": mean("ssim"),
        "default_mean_ssim": mean("default_ssim"),
        "mean_bytes": mean("bytes"),
        "default_mean_bytes": mean("default_bytes"),
        "bytes_ratio": float(np.exp(np.mean(np.log(ratios)))) if ratios else None,
        "mean_score": mean("score"),
        "default_mean_score": mean("default_score"),
        "mean_improvement": mean("improvement"),
    }


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("vtopt", "vtracer", "stable-baselines3", "torch", "gymnasium", "pluggy", "skia-python"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


# -- training -------------------------------------------------------------------------


class _Driver:
    """Receives every vector step: episodes, curriculum, checkpoints, events."""

    def __init__(self, run: RunInfo, pm: PluginManager, env, curriculum, algorithm, checkpoint_every: int):
        self.run, self.pm, self.env = run, pm, env
        self.curriculum, self.algorithm = curriculum, algorithm
        self.checkpoint_every = checkpoint_every
        self.next_checkpoint = checkpoint_every or math.inf
        self.episodes: list[dict] = []
        self.pending: list[dict] = []
        self.checkpoints: list[str] = []
        self.timesteps = 0
        self.last_rollout = (time.perf_counter(), 0)
        self.weights: dict[str, float] = {}
        self.stage: str | None = None
        self._sync_curriculum(0, first=True)

    def _sync_curriculum(self, timesteps: int, first: bool = False) -> None:
        weights = dict(self.curriculum.weights())
        if weights != self.weights:
            if not any(w > 0 for k, w in weights.items() if k in self.run.kinds):
                raise VtoptError(f"curriculum gives no weight to any kind in the data: {weights}")
            self.env.env_method("set_kind_weights", weights)
            self.weights = weights
        stage = self.curriculum.stage()
        if first or stage != self.stage:
            self.pm.stage_changed(self.run, None if first else self.stage, stage, timesteps)
            self.stage = stage

    def on_step(self, infos, dones, timesteps: int) -> bool:
        self.timesteps = timesteps
        for info in infos:
            episode = info.get("vtopt_episode")
            if episode is None:
                continue
            for error in episode["errors"]:
                log.warning("conversion_failed", image=episode["image"], error=error, timesteps=timesteps)
            self.episodes.append(episode)
            self.pending.append(episode)
            self.pm.episode_finished(self.run, episode, timesteps)
            self.curriculum.record(episode["kind"], episode["improvement"], timesteps)
            self._sync_curriculum(timesteps)
        if timesteps >= self.next_checkpoint:
            self.checkpoint(timesteps)
            while self.next_checkpoint <= timesteps:
                self.next_checkpoint += self.checkpoint_every
        return True

    def on_rollout_end(self, timesteps: int) -> None:
        now = time.perf_counter()
        t0, steps0 = self.last_rollout
        if now - t0 < ROLLOUT_MIN_SECONDS and timesteps - steps0 < ROLLOUT_MIN_STEPS:
            return  # off-policy learners end a "rollout" every step
        stats = summarise(self.pending) if self.pending else {"images": 0}
        stats = {k: v for k, v in stats.items() if v is not None}
        stats["steps_per_s"] = (timesteps - steps0) / max(now - t0, 1e-9)
        stats["failures"] = float(sum(e["failures"] for e in self.pending))
        self.pm.rollout_finished(self.run, timesteps, stats)
        self.pending = []
        self.last_rollout = (now, timesteps)

    def save(self, path: Path) -> Path:
        cfg = self.run.config
        return save_model(self.algorithm, path, cfg.algorithm.name, cfg.algorithm.params,
                          cfg.env.conversions_per_episode, cfg.reward.weights, {"timesteps": self.timesteps})

    def checkpoint(self, timesteps: int) -> Path:
        folder = self.run.out_dir / "checkpoints"
        folder.mkdir(exist_ok=True)
        path = self.save(folder / f"step_{timesteps:09d}.zip")
        state = {"timesteps": timesteps, "curriculum": self.curriculum.state_dict(), "stage": self.stage}
        atomic_write_text(path.with_suffix(".json"), json.dumps(state, indent=1))
        self.checkpoints.append(str(path.relative_to(self.run.out_dir)))
        self.pm.checkpoint_saved(self.run, path, timesteps)
        return path


def prepare_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise VtoptError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any((out_dir / f).exists() for f in ("summary.json", "model.zip", "events.jsonl")):
        if not force:
            raise VtoptError(f"{out_dir}: already holds a run; choose another --out or pass --force to overwrite it")
        for f in ("summary.json", "model.zip", "events.jsonl"):
            (out_dir / f).unlink(missing_ok=True)
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def train(loaded: LoadedConfig, out_dir: Path, pm: PluginManager, argv: Sequence[str] = (), force: bool = False) -> dict:
    """Train as configured; write the run directory; return the summary."""
    cfg = loaded.config
    prepare_out_dir(out_dir, force)
    atomic_write_text(out_dir / "config.yaml", loaded.dump())
    atomic_write_text(out_dir / "run.json", json.dumps(
        {"argv": list(argv) or sys.argv, "config_file": str(loaded.path), "overrides": loaded.overrides,
         "versions": versions(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1))

    algorithm = pm.create("algorithm", cfg.algorithm.name, cfg.algorithm.params)
    curriculum = pm.create("curriculum", cfg.curriculum.name, cfg.curriculum.params)
    monitors = [pm.create("monitor", m.name, m.params) for m in cfg.monitors]
    scorer = build_scorer(pm, cfg)
    data = load_dataset(loaded, scorer)
    kinds = data.kinds()
    if not data.train:
        raise VtoptError(f"{loaded.path}: no training images after the validation split")
    if not data.validation:
        raise VtoptError(f"{loaded.path}: no validation images (data.validation_split is "
                         f"{cfg.data.validation_split}; each kind needs two images or more)")
    log.info("data", train=len(data.train), validation=len(data.validation), kinds=kinds,
             rejected=len(data.rejected))
    try:
        curriculum.start(kinds)
    except (ValueError, TypeError) as exc:
        raise VtoptError(f"{loaded.path}: curriculum {cfg.curriculum.name!r}: {exc}") from None

    run = RunInfo(cfg.run.name, out_dir, cfg, cfg.run.timesteps, cfg.env.parallel_envs, kinds)
    registered = [pm.register(m, name=f"monitor:{spec.name}:{i}") for i, (m, spec) in enumerate(zip(monitors, cfg.monitors))]
    env = None
    start = time.perf_counter()
    try:
        env = make_vec_env(data.train, scorer, cfg.env.conversions_per_episode, cfg.env.parallel_envs, cfg.run.seed)
        pm.run_started(run)
        driver = _Driver(run, pm, env, curriculum, algorithm, cfg.run.checkpoint_every)
        ctx = TrainContext(env=env, images=data.train, scorer=scorer, total_timesteps=cfg.run.timesteps, seed=cfg.run.seed,
                           device=cfg.resources.device, threads=cfg.resources.threads, run_dir=out_dir,
                           on_step=driver.on_step, on_rollout_end=driver.on_rollout_end)
        algorithm.learn(ctx)
        train_seconds = time.perf_counter() - start
        driver.save(out_dir / "model.zip")
        if cfg.run.checkpoint_every and driver.timesteps not in {int(Path(c).stem.split("_")[1]) for c in driver.checkpoints}:
            driver.checkpoint(driver.timesteps)
        available = pm.components("algorithm")
        baselines = {label: pm.create("algorithm", name, params) for label, name, params in BASELINES
                     if name in available}
        evaluation = evaluate(algorithm, data.validation, scorer, cfg.env.conversions_per_episode, baselines)
        pm.evaluated(run, evaluation, driver.timesteps)
        recent = driver.episodes[-100:]
        summary = {
            "name": cfg.run.name,
            "algorithm": cfg.algorithm.name,
            "total_timesteps": driver.timesteps,
            "episodes": len(driver.episodes),
            "wall_seconds": round(time.perf_counter() - start, 3),
            "train_seconds": round(train_seconds, 3),
            "env_steps_per_second": round(driver.timesteps / train_seconds, 2),
            "n_envs": cfg.env.parallel_envs,
            "conversions_per_episode": cfg.env.conversions_per_episode,
            "images": {"train": len(data.train), "validation": len(data.validation), "rejected": data.rejected},
            "final_stage": driver.stage,
            "training_recent": {k: v for k, v in summarise(recent).items() if v is not None},
            "evaluation": {k: v for k, v in evaluation.items() if k != "rows"},
            "evaluation_rows": evaluation.get("rows", []),
            "model": "model.zip",
            "checkpoints": driver.checkpoints,
        }
        atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=1, default=_json_default))
        pm.run_finished(run, summary)
        return summary
    finally:
        if env is not None:
            env.close()
        for name in registered:
            plugin = pm.pm.get_plugin(name)
            if plugin is not None:
                pm.unregister(plugin)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
