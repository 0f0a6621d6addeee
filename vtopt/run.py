"""The orchestrator: a config and a plugin manager in, a trained run directory out.

A run directory holds ``config.yaml`` (the resolved config), ``run.json``
(command line, versions), ``model.zip``, ``checkpoints/``, ``summary.json``
and whatever the monitors write (the structlog monitor: ``events.jsonl``).
"""

from __future__ import annotations

import json
import math
import pickle
import platform
import random
import signal
import sys
import threading
import time
from collections import deque
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import attrs
import numpy as np
import structlog

from . import envworker
from .components import RunInfo, TrainContext
from .config import Config, LoadedConfig
from .data import load_dataset
from .env import VTracerEnv
from .errors import Interrupted, VtoptError
from .files import atomic_write_bytes, atomic_write_text
from .images import LogoImage
from .model import save_model
from .plugin_manager import PluginManager
from .rundir import HISTORY, open_run_dir
from .scoring import Scorer, make_scorer, summarise
from .search import search_image, takes_keyword

log = structlog.get_logger(__name__)
ROLLOUT_MIN_SECONDS, ROLLOUT_MIN_STEPS = 2.0, 32


# -- building blocks -------------------------------------------------------------------


def build_scorer(pm: PluginManager, config: Config) -> Scorer:
    """The scorer of a config's reward."""
    return make_scorer(pm, config.reward.weights, config.env.conversion_timeout, config.reward.max_ssim_loss,
                       config.reward.params, config.reward.quality)


def make_vec_env(images: Sequence[LogoImage], scorer: Scorer, conversions: int, n_envs: int, seed: int,
                 reference: Sequence[dict] | None = None, on_replaced=None, executor=None):
    """n_envs environments wherever ``executor``'s ``make_vec_env`` puts them (None: on this machine,
    :func:`vtopt.vecenv.local_vec_env`, where a dead subprocess is replaced and ``on_replaced(slot,
    reason)`` told); never a silent fallback."""
    env_fn = partial(envworker.make_env, list(images), scorer, conversions, reference)
    if executor is not None:
        env = executor.make_vec_env(env_fn, n_envs, on_replaced)
    else:
        from .vecenv import local_vec_env

        env = local_vec_env(env_fn, n_envs, on_replaced)
    env.seed(seed)
    return env


def _core(fn):
    """``fn``, called from inside a plugin (``algorithm.learn``), marking what it raises as vtopt's own:
    a full disk at a checkpoint is not the algorithm's fault (see :meth:`PluginManager.blame`)."""
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            exc.vtopt_core = True
            raise
    return call


def env_executor(pm: PluginManager, cfg: Config):
    """The executor that runs the training environments (``resources.executor``)."""
    name = cfg.resources.executor
    executor = pm.create("executor", name, {"address": cfg.resources.address} if cfg.resources.address else {})
    if not callable(getattr(executor, "make_vec_env", None)):
        raise VtoptError(f"executor {name!r} cannot run training environments (it has no make_vec_env)")
    return executor


def training_baselines(pm: PluginManager, conversions: int) -> dict[str, Any]:
    """The baselines plugins offer for a training run's final evaluation (``Baseline.training``), built,
    by row label: simple strategies at the same budget, so that a summary shows what the policy adds."""
    from .model import load_model

    out = {}
    for baseline in pm.baselines(conversions):
        if baseline.training:
            m = baseline.method
            out[m.label] = (load_model(pm, Path(m.model))[0] if m.model is not None
                            else pm.create("algorithm", m.algorithm, m.params))
    return out


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
    """Receives every vector step: episodes, curriculum, evaluations, checkpoints, signals."""

    def __init__(self, run: RunInfo, pm: PluginManager, env, curriculum, algorithm, scorer, validation,
                 record_reference: bool = False):
        cfg = run.config.run
        self.run, self.pm, self.env = run, pm, env
        self.curriculum, self.algorithm = curriculum, algorithm
        self.record_reference = record_reference  # the curriculum's record() takes the reference
        self.scorer, self.validation = scorer, validation
        self.checkpoint_every, self.eval_every, self.patience = cfg.checkpoint_every, cfg.eval_every, cfg.early_stop
        self.timesteps = 0
        self.episodes = 0
        self.recent: deque[dict] = deque(maxlen=100)
        self.pending: list[dict] = []
        self.checkpoints: list[str] = []
        self.evaluations: list[dict] = []  # brief: timesteps, mean_score, mean_ssim, bytes_ratio, per_kind
        self.best_score, self.stale = -math.inf, 0
        self.seconds_before = 0.0  # training time of earlier segments (resumed runs)
        self.signal: int | None = None
        self.stop_reason: str | None = None
        self.last_rollout = (time.perf_counter(), 0)
        self.weights: dict[str, float] = {}
        self.stage: str | None = None
        self.workers_replaced = 0
        self.history = None  # the open history.jsonl while the run goes
        self.errors_said: set[str] = set()

    def _curriculum(self, method: str, *args, **kwargs):
        """A curriculum method; what it raises stops the run as a one-line PluginFault naming it."""
        with self.pm.blame("curriculum", self.run.config.curriculum.name, method):
            result = getattr(self.curriculum, method)(*args, **kwargs)
            if method == "state_dict":
                json.dumps(result, default=_json_default)  # it must be JSON: say so here, not in a checkpoint
            return result

    def worker_replaced(self, slot: int, reason: str) -> None:
        self.workers_replaced += 1
        log.warning("env_worker_replaced", slot=slot, reason=reason, timesteps=self.timesteps)
        self.run.alert("env_worker_replaced", f"environment worker {slot} died ({reason}); a new one took its "
                       "place and its episode in flight was dropped", self.timesteps)

    # -- state -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"timesteps": self.timesteps, "episodes": self.episodes, "recent": list(self.recent),
                "curriculum": self._curriculum("state_dict"), "stage": self.stage, "evaluations": self.evaluations,
                "best_score": self.best_score, "stale": self.stale, "checkpoints": self.checkpoints,
                "train_seconds": self.seconds_before + (time.perf_counter() - self.started)}

    def restore(self, state: dict[str, Any], rng_file: Path) -> None:
        self.timesteps, self.episodes = state["timesteps"], state["episodes"]
        self.recent.extend(state["recent"])
        self._curriculum("load_state_dict", state["curriculum"])
        self.stage = state["stage"]
        self.evaluations, self.checkpoints = state["evaluations"], state["checkpoints"]
        self.best_score, self.stale = state["best_score"], state["stale"]
        self.seconds_before = state["train_seconds"]
        self.last_rollout = (time.perf_counter(), self.timesteps)
        if rng_file.is_file():
            _set_rng_state(pickle.loads(rng_file.read_bytes()))

    def begin(self) -> None:
        path = self.run.out_dir / HISTORY
        kept = []
        if self.run.resumed and path.is_file():  # what came after the checkpoint is done again: drop it
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line)["timesteps"] <= self.timesteps:
                        kept.append(line + "\n")
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a killed run
        self.history = open(path, "w", encoding="utf-8")
        self.history.writelines(kept)
        self.started = time.perf_counter()
        self.next_checkpoint = _next(self.timesteps, self.checkpoint_every)
        self.next_eval = _next(self.timesteps, self.eval_every)
        self._sync_curriculum(self.timesteps, first=True)

    # -- steps ---------------------------------------------------------------------------
    def _sync_curriculum(self, timesteps: int, first: bool = False) -> None:
        weights = dict(self._curriculum("weights"))
        if weights != self.weights:
            if not any(w > 0 for k, w in weights.items() if k in self.run.kinds):
                raise VtoptError(f"curriculum gives no weight to any kind in the data: {weights}")
            self.env.env_method("set_kind_weights", weights)
            self.weights = weights
        stage = self._curriculum("stage")
        if first or stage != self.stage:
            overrides = self._curriculum("algorithm_overrides") if hasattr(self.curriculum, "algorithm_overrides") else {}
            if overrides:
                if not hasattr(self.algorithm, "update"):
                    raise VtoptError(f"the curriculum sets {sorted(overrides)} for stage {stage!r}, "
                                     f"but algorithm {self.run.config.algorithm.name!r} cannot change settings mid-run")
                with self.pm.blame("algorithm", self.run.config.algorithm.name, "update"):
                    self.algorithm.update(**overrides)
            self.record("stage_changed", timesteps, previous=None if first else self.stage, stage=stage)
            self.pm.stage_changed(self.run, None if first else self.stage, stage, timesteps)
            self.stage = stage

    def on_step(self, infos, dones, timesteps: int) -> bool:
        """After every vector step, in order: the finished episodes (monitors, curriculum), then the
        parts that may stop the run (a signal, evaluation with early stop), then checkpoints. False: stop."""
        self.timesteps = timesteps
        for info in infos:
            if "vtopt_episode" in info:
                self._episode(info["vtopt_episode"], timesteps)
        if self.signal is not None:  # SIGINT/SIGTERM, seen by the handler: stop after this step
            self.stop_reason = "signal"
            return False
        if not self._evaluation(timesteps):
            return False
        self._checkpoints(timesteps)
        return timesteps < self.run.total_timesteps  # learners collect whole rollouts: stop at the total

    def _episode(self, episode: dict, timesteps: int) -> None:
        for error in episode["errors"]:
            if error not in self.errors_said:  # the same failure again and again is said once
                self.errors_said.add(error)
                log.warning("conversion_failed", image=episode["image"], error=error, timesteps=timesteps)
        self.episodes += 1
        self.recent.append(episode)
        self.pending.append(episode)
        self.record("episode", timesteps, kind=episode["kind"], improvement=episode["improvement"])
        self.pm.episode_finished(self.run, episode, timesteps)
        reference = {"reference": episode.get("reference_improvement")} if self.record_reference else {}
        self._curriculum("record", episode["kind"], episode["improvement"], timesteps, **reference)
        self._sync_curriculum(timesteps)

    def _evaluation(self, timesteps: int) -> bool:
        """Evaluate every ``run.eval_every`` timesteps; False when early stopping says stop."""
        if timesteps >= self.next_eval:
            self.next_eval = _next(timesteps, self.eval_every)
            self.evaluate(timesteps)
            if self.patience and self.stale >= self.patience:
                log.info("early_stop", timesteps=timesteps, evaluations_without_improvement=self.stale)
                self.stop_reason = "early_stop"
                return False
        return True

    def _checkpoints(self, timesteps: int) -> None:
        if timesteps >= self.next_checkpoint:
            self.next_checkpoint = _next(timesteps, self.checkpoint_every)
            self.checkpoint(timesteps)

    def on_rollout_end(self, timesteps: int) -> None:
        now = time.perf_counter()
        t0, steps0 = self.last_rollout
        if now - t0 < ROLLOUT_MIN_SECONDS and timesteps - steps0 < ROLLOUT_MIN_STEPS:
            return  # off-policy learners end a "rollout" every step
        stats = summarise(self.pending) if self.pending else {"images": 0}
        stats = {k: v for k, v in stats.items() if v is not None}
        stats["steps_per_s"] = (timesteps - steps0) / max(now - t0, 1e-9)
        stats["failures"] = float(sum(e["failures"] for e in self.pending))
        self.record("rollout", timesteps, **stats)
        self.pm.rollout_finished(self.run, timesteps, stats)
        self.pending = []
        self.last_rollout = (now, timesteps)

    def record(self, event: str, timesteps: int, **fields: Any) -> None:
        """One line of the run's history (see :data:`HISTORY`)."""
        if self.history is not None:
            self.history.write(json.dumps({"event": event, "timesteps": timesteps, **fields},
                                          default=_json_default) + "\n")
            self.history.flush()

    def end(self) -> None:
        if self.history is not None:
            self.history.close()
            self.history = None

    # -- evaluation and files --------------------------------------------------------------
    def evaluate(self, timesteps: int, baselines: dict | None = None) -> dict[str, Any]:
        """The policy on the validation images (never the training env); keeps the best model."""
        evaluation = evaluate(self.algorithm, self.validation, self.scorer,
                              self.run.config.env.conversions_per_episode, baselines)
        brief = {k: evaluation[k] for k in ("mean_score", "mean_ssim", "bytes_ratio", "mean_improvement")}
        brief["timesteps"] = timesteps
        brief["per_kind"] = {k: v["mean_score"] for k, v in evaluation["per_kind"].items()}
        repeat = bool(self.evaluations) and self.evaluations[-1]["timesteps"] == timesteps
        if not repeat:
            self.evaluations.append(brief)
        if evaluation["mean_score"] > self.best_score:
            self.best_score, self.stale = evaluation["mean_score"], 0
            self.save(self.run.out_dir / "best_model.zip")
        elif not repeat:
            self.stale += 1
        if not repeat:
            self.record("evaluated", timesteps, **{k: v for k, v in brief.items() if k != "timesteps"})
        self.pm.evaluated(self.run, evaluation, timesteps)
        return evaluation

    def save(self, path: Path) -> Path:
        cfg = self.run.config
        return save_model(self.algorithm, path, cfg.algorithm.name, cfg.algorithm.params,
                          cfg.env.conversions_per_episode, cfg.reward.weights,
                          {"timesteps": self.timesteps, "max_ssim_loss": cfg.reward.max_ssim_loss,
                           "reward_params": cfg.reward.params, "reward_quality": cfg.reward.quality})

    def checkpoint(self, timesteps: int, prune: bool = True) -> Path:
        """Model, then RNG states, then the JSON state last: a checkpoint counts once its JSON exists."""
        folder = self.run.out_dir / "checkpoints"
        folder.mkdir(exist_ok=True)
        path = self.save(folder / f"step_{timesteps:09d}.zip")
        atomic_write_bytes(path.with_suffix(".rng"), pickle.dumps(_rng_state()))
        name = str(path.relative_to(self.run.out_dir))
        if name not in self.checkpoints:
            self.checkpoints.append(name)
        keep = self.run.config.run.keep_checkpoints
        old = self.checkpoints[:-keep] if prune and keep else []
        self.checkpoints = self.checkpoints[len(old):]  # the state written next lists only what is kept
        atomic_write_text(path.with_suffix(".json"), json.dumps(self.state(), indent=1, default=_json_default))
        self.pm.checkpoint_saved(self.run, path, timesteps)
        for name in old:  # the JSON first: a checkpoint without it no longer counts
            for suffix in (".json", ".rng", ".zip"):
                (self.run.out_dir / name).with_suffix(suffix).unlink(missing_ok=True)
        return path


def _next(timesteps: int, every: int) -> float:
    return (timesteps // every + 1) * every if every else math.inf


def _rng_state() -> dict[str, Any]:
    state = {"random": random.getstate(), "numpy": np.random.get_state()}
    if "torch" in sys.modules:
        state["torch"] = sys.modules["torch"].get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    if "torch" in state:
        import torch

        torch.set_rng_state(state["torch"])


@attrs.define
class _Setup:
    """What a run is made of, built and checked before any environment starts."""

    run: RunInfo
    algorithm: Any
    curriculum: Any
    monitors: list
    scorer: Scorer
    data: Any  # the Dataset: train, validation, rejected
    checkpoint: tuple | None  # (model file, state) to resume from


def train(loaded: LoadedConfig, out_dir: Path, pm: PluginManager, argv: Sequence[str] = (), force: bool = False,
          resume: bool = False) -> dict:
    """Train as configured; write the run directory; return the summary.

    In phases: set up (the run directory, the components, the data), start (the environments and
    the driver, or the state of a checkpoint), learn, finish (the model, the final evaluation, the
    summary and the report). With ``resume``, continue from the newest complete checkpoint in
    ``out_dir`` to the configured total (the config must be the run's own). SIGINT and SIGTERM stop
    training after the current step, write a checkpoint and raise :class:`Interrupted`.
    """
    setup = _setup(loaded, out_dir, pm, argv, force, resume)
    cfg, run = loaded.config, setup.run
    registered = [pm.register(m, name=f"monitor:{spec.name}:{i}", portable=False)
                  for i, (m, spec) in enumerate(zip(setup.monitors, cfg.monitors))]
    pm.stop_on_error.update(name for name, spec in zip(registered, cfg.monitors) if spec.on_error == "stop")
    env = driver = None
    started = False
    start = time.perf_counter()
    try:
        env, driver = _start(pm, setup)
        pm.run_started(run)
        started = True
        driver.begin()
        _learn(pm, setup, driver)
        return _finish(pm, setup, driver, start)
    except BaseException as exc:
        if started:
            pm.run_aborted(run, f"{type(exc).__name__}: {exc}".strip())
        raise
    finally:
        if driver is not None:
            driver.end()
        if env is not None:
            env.close()
        pm.stop_on_error.difference_update(registered)
        for name in registered:
            plugin = pm.pm.get_plugin(name)
            if plugin is not None:
                pm.unregister(plugin)


def _setup(loaded: LoadedConfig, out_dir: Path, pm: PluginManager, argv: Sequence[str], force: bool,
           resume: bool) -> _Setup:
    cfg = loaded.config
    checkpoint = open_run_dir(loaded, out_dir, force, resume)
    atomic_write_text(out_dir / "run.json", json.dumps(
        {"argv": list(argv) or sys.argv, "config_file": str(loaded.path), "overrides": loaded.overrides,
         "resumed_from": str(checkpoint[0]) if checkpoint else None,
         "versions": versions(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1))

    import torch  # resources.threads applies before any component does torch work

    torch.set_num_threads(cfg.resources.threads)
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
        with pm.blame("curriculum", cfg.curriculum.name, "start"):
            curriculum.start(kinds)
    except (ValueError, TypeError) as exc:
        raise VtoptError(f"{loaded.path}: curriculum {cfg.curriculum.name!r}: {exc}") from None
    run = RunInfo(cfg.run.name, out_dir, cfg, cfg.run.timesteps, cfg.env.parallel_envs, kinds,
                  resumed=checkpoint is not None, notify=pm.alert)
    return _Setup(run, algorithm, curriculum, monitors, scorer, data, checkpoint)


def _start(pm: PluginManager, setup: _Setup) -> tuple[Any, _Driver]:
    """The training environments and the driver, restored from the checkpoint when resuming."""
    cfg, checkpoint = setup.run.config, setup.checkpoint
    # a resumed run's environments continue with other images than the first segment's
    env_seed = cfg.run.seed + (checkpoint[1]["timesteps"] if checkpoint else 0)
    # only a curriculum that reads the reference costs its conversions
    wants_reference = takes_keyword(setup.curriculum.record, "reference")
    reference = pm.reference_params(cfg.env.conversions_per_episode) if wants_reference else None
    driver = None
    env = make_vec_env(setup.data.train, setup.scorer, cfg.env.conversions_per_episode, cfg.env.parallel_envs,
                       env_seed, reference=reference, on_replaced=lambda *a: driver.worker_replaced(*a),
                       executor=env_executor(pm, cfg))
    try:
        driver = _Driver(setup.run, pm, env, setup.curriculum, setup.algorithm, setup.scorer,
                         setup.data.validation, wants_reference)
        if checkpoint:
            driver.restore(checkpoint[1], checkpoint[0].with_suffix(".rng"))
            log.info("resumed", checkpoint=str(checkpoint[0]), timesteps=driver.timesteps)
    except BaseException:
        env.close()
        raise
    return env, driver


def _learn(pm: PluginManager, setup: _Setup, driver: _Driver) -> None:
    """``algorithm.learn`` up to the configured total, with SIGINT/SIGTERM stopping it after a step."""
    cfg, checkpoint, out_dir = setup.run.config, setup.checkpoint, setup.run.out_dir
    handlers = {}

    def on_signal(signum, frame):
        driver.signal = signum

    if threading.current_thread() is threading.main_thread():
        handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        ctx = TrainContext(env=driver.env, images=setup.data.train, scorer=setup.scorer,
                           total_timesteps=cfg.run.timesteps, seed=cfg.run.seed, device=cfg.resources.device,
                           threads=cfg.resources.threads, run_dir=out_dir, on_step=_core(driver.on_step),
                           on_rollout_end=_core(driver.on_rollout_end),
                           resume_from=checkpoint[0] if checkpoint else None, start_timesteps=driver.timesteps)
        if driver.timesteps < cfg.run.timesteps:
            try:
                with pm.blame("algorithm", cfg.algorithm.name, "learn"):
                    setup.algorithm.learn(ctx)
            except VtoptError as exc:  # a plugin's fault, a dead worker: keep what was learned, then stop
                done_before = checkpoint[1]["timesteps"] if checkpoint else 0
                if not isinstance(exc, Interrupted) and driver.timesteps > done_before:
                    try:  # beside the others, none of which it replaces
                        path = driver.checkpoint(driver.timesteps, prune=False)
                        log.error("run_failed", error=str(exc), checkpoint=str(path))
                    except Exception as again:
                        log.error("checkpoint_failed", error=f"{type(again).__name__}: {again}")
                raise
        elif checkpoint:  # nothing left to learn: restore the policy itself
            setup.algorithm.load(checkpoint[0])
        if driver.signal is not None:
            path = driver.checkpoint(driver.timesteps)
            raise Interrupted(driver.signal, path, out_dir)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)


def _finish(pm: PluginManager, setup: _Setup, driver: _Driver, start: float) -> dict:
    """The model, a last checkpoint, the final evaluation with the plugins' baselines, the summary, the report."""
    run, data = setup.run, setup.data
    cfg, out_dir = run.config, run.out_dir
    train_seconds = driver.seconds_before + (time.perf_counter() - driver.started)
    driver.save(out_dir / "model.zip")
    if cfg.run.checkpoint_every and f"checkpoints/step_{driver.timesteps:09d}.zip" not in driver.checkpoints:
        driver.checkpoint(driver.timesteps)
    evaluation = driver.evaluate(driver.timesteps, training_baselines(pm, cfg.env.conversions_per_episode))
    summary = {
        "name": cfg.run.name,
        "algorithm": cfg.algorithm.name,
        "total_timesteps": driver.timesteps,
        "episodes": driver.episodes,
        "stopped": driver.stop_reason or "completed",
        "resumed": run.resumed,
        "wall_seconds": round(time.perf_counter() - start, 3),
        "train_seconds": round(train_seconds, 3),
        "env_steps_per_second": round(driver.timesteps / max(train_seconds, 1e-9), 2),
        "n_envs": cfg.env.parallel_envs,
        "executor": cfg.resources.executor,
        "conversions_per_episode": cfg.env.conversions_per_episode,
        "images": {"train": len(data.train), "validation": len(data.validation), "rejected": data.rejected},
        "final_stage": driver.stage,
        "training_recent": {k: v for k, v in summarise(list(driver.recent)).items() if v is not None},
        "evaluation": {k: v for k, v in evaluation.items() if k != "rows"},
        "evaluation_rows": evaluation.get("rows", []),
        "evaluations": driver.evaluations,
        "best_score": driver.best_score,
        "model": "model.zip",
        "best_model": "best_model.zip",
        "checkpoints": driver.checkpoints,
        "env_workers_replaced": driver.workers_replaced,
        "monitors_disabled": dict(pm.disabled),
    }
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=1, default=_json_default))
    pm.run_finished(run, summary)
    from .report import write_report  # matplotlib is imported only here

    try:
        write_report(out_dir, pm)
    except Exception as exc:  # the run itself succeeded; say what failed and go on
        log.warning("report_failed", error=f"{type(exc).__name__}: {exc}", hint=f"vtopt report {out_dir}")
    return summary


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
