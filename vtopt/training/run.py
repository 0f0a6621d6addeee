"""The orchestrator: a config and a plugin manager in, a trained run directory out.

What a run directory holds: :mod:`vtopt.training.runfiles`.
"""

from __future__ import annotations

import inspect
import json
import os
import platform
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import attrs
import structlog

from ..apply.model import load_advisor, method_algorithm
from ..config.schema import LoadedConfig
from ..env.data import load_dataset
from ..env.poolenv import config_pool, pool_labels
from ..env.scoring import Scorer, build_scorer, summarise
from ..env.vecenv import make_vec_env
from ..errors import Interrupted, VtoptError
from ..files import atomic_write_text, json_default
from ..plugin.components import RunInfo, TrainContext
from ..plugin.manager import PluginManager
from .checkpoints import restore_rng
from .driver import Driver
from .rundir import RunDirLock, open_run_dir
from .runfiles import BEST_MODEL, MODEL, RUN_INFO, SUMMARY, checkpoint_model, resume_command

log = structlog.get_logger(__name__)


# -- building blocks -------------------------------------------------------------------


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


def _takes_reference(curriculum) -> bool:
    """Whether the curriculum's ``record`` takes a ``reference`` keyword (:class:`vtopt.Curriculum`)."""
    params = inspect.signature(curriculum.record).parameters.values()
    return any(p.name == "reference" or p.kind is p.VAR_KEYWORD for p in params)


def training_baselines(pm: PluginManager, conversions: int) -> dict[str, Any]:
    """The baselines plugins offer for a training run's final evaluation (``Baseline.training``), built,
    by row label: simple strategies at the same budget, so that a summary shows what the policy adds."""
    return {b.method.label: method_algorithm(pm, b.method)[0] for b in pm.baselines(conversions) if b.training}


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
    pool: list | None = None  # env.actions: pool: the candidates
    labels: Any = None  # ... and, for replay, their Labels on the training images
    advised: Any = None  # ... and the advisor whose advice it observes (an apply.model.Advised)


def train(loaded: LoadedConfig, out_dir: Path, pm: PluginManager, argv: Sequence[str] = (), force: bool = False,
          resume: bool = False) -> dict:
    """Train as configured; write the run directory; return the summary.

    In phases: set up (the run directory, the components, the data), start (the environments and
    the driver, or the state of a checkpoint), learn, finish (the model, the final evaluation, the
    summary and the report). With ``resume``, continue from the newest complete checkpoint in
    ``out_dir`` to the configured total (the config must be the run's own). SIGINT and SIGTERM stop
    training after the current step, write a checkpoint and raise :class:`Interrupted`.
    """
    with RunDirLock(out_dir, create=not resume):  # one process at a time in a run directory
        return _train(loaded, out_dir, pm, argv, force, resume)


def _train(loaded: LoadedConfig, out_dir: Path, pm: PluginManager, argv: Sequence[str], force: bool,
           resume: bool) -> dict:
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
            if (guard := _memory_guard(driver)) is not None:
                guard.stop()
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
    atomic_write_text(out_dir / RUN_INFO, json.dumps(
        {"argv": list(argv) or sys.argv, "config_file": str(loaded.path), "overrides": loaded.overrides,
         "resumed_from": str(checkpoint[0]) if checkpoint else None,
         "versions": versions(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1))

    import torch  # resources.threads applies before any component does torch work

    torch.set_num_threads(cfg.resources.threads)
    algorithm = pm.create("algorithm", cfg.algorithm.name, cfg.algorithm.params)
    curriculum = pm.create("curriculum", cfg.curriculum.name, cfg.curriculum.params)
    monitors = [pm.create("monitor", m.name, m.params) for m in cfg.monitors]
    scorer = build_scorer(pm, cfg)
    # the driver says each failed conversion once, from episodes and evaluations, wherever the envs run
    # (a Ray actor's own log does not reach this console)
    scorer.log_failures = False
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
    pool = labels = advised = None
    if cfg.env.actions == "pool":
        pool = config_pool(cfg)
        spec = cfg.env.pool.advisor if cfg.env.pool is not None else None
        if spec is not None:  # before labelling: a wrong advisor fails at once
            advised = load_advisor(pm, spec, loaded.path, pool=pool)
        if cfg.env.pool is None or cfg.env.pool.replay:  # label the training images first (cached)
            labels = pool_labels(cfg, data.train, scorer, pool)
        log.info("pool_env", candidates=len(pool), replay=labels is not None, advisor=advised and advised.spec)
    return _Setup(run, algorithm, curriculum, monitors, scorer, data, checkpoint, pool, labels, advised)


def _start(pm: PluginManager, setup: _Setup) -> tuple[Any, Driver]:
    """The training environments and the driver, restored from the checkpoint when resuming."""
    cfg, checkpoint = setup.run.config, setup.checkpoint
    # a resumed run's environments continue with other images than the first segment's
    env_seed = cfg.run.seed + (checkpoint[1]["timesteps"] if checkpoint else 0)
    # only a curriculum that reads the reference costs its conversions
    wants_reference = _takes_reference(setup.curriculum)
    reference = pm.reference_params(cfg.env.conversions_per_episode) if wants_reference else None
    moves = cfg.env.pool.moves if cfg.env.pool is not None else True
    driver = None
    from ..config.checks import runs_here

    executor = pm.create_executor(cfg.resources.executor, cfg.resources.address)
    crowded = runs_here(executor) and cfg.env.parallel_envs > (os.cpu_count() or 1)
    if crowded:  # measure what the envs beyond the cores cost, to say it
        from .memory import MB, process_tree

        before, started = sum(rss for _, rss in process_tree()), time.perf_counter()
    env = make_vec_env(setup.data.train, setup.scorer, cfg.env.conversions_per_episode, cfg.env.parallel_envs,
                       env_seed, reference=reference, on_replaced=lambda *a: driver.worker_replaced(*a),
                       executor=executor, pool=setup.pool, labels=setup.labels, moves=moves,
                       advisor=setup.advised.advisor if setup.advised else None)
    if crowded:
        mb = (sum(rss for _, rss in process_tree()) - before) / MB
        log.warning("more_envs_than_cores", envs=cfg.env.parallel_envs, cores=os.cpu_count(),
                    start_seconds=round(time.perf_counter() - started, 1), memory_mb=round(mb),
                    hint=f"set env.parallel_envs to {os.cpu_count()}: the envs beyond the cores add no speed")
    try:
        driver = Driver(setup.run, pm, env, setup.curriculum, setup.algorithm, setup.scorer,
                        setup.data.validation, wants_reference, pool=setup.pool, moves=moves,
                        advised=setup.advised)
        if cfg.resources.memory_limit_mb:
            from .memory import MemoryGuard

            driver.parts.append(MemoryGuard(cfg.resources.memory_limit_mb))
        if checkpoint:
            driver.restore(checkpoint[1])
            restore_rng(checkpoint[0])
            log.info("resumed", checkpoint=str(checkpoint[0]), timesteps=driver.timesteps)
    except BaseException:
        env.close()
        raise
    return env, driver


def _memory_guard(driver: Driver):
    from .memory import MemoryGuard

    return next((p for p in driver.parts if isinstance(p, MemoryGuard)), None)


def _learn(pm: PluginManager, setup: _Setup, driver: Driver) -> None:
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
            raise Interrupted(driver.signal, path, resume_command(out_dir))
        guard = _memory_guard(driver)
        if guard is not None and guard.exceeded:
            path = driver.checkpoint(driver.timesteps)
            raise VtoptError(f"{guard.exceeded}; stopped with checkpoint {path}; continue with: "
                             + resume_command(out_dir, "--set resources.memory_limit_mb=N")
                             + " (or fewer env.parallel_envs, smaller images)")
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)


def _finish(pm: PluginManager, setup: _Setup, driver: Driver, start: float) -> dict:
    """The model, a last checkpoint, the final evaluation with the plugins' baselines, the summary, the report."""
    run, data = setup.run, setup.data
    cfg, out_dir = run.config, run.out_dir
    train_seconds = driver.train_seconds()
    driver.save(out_dir / MODEL)
    if cfg.run.checkpoint_every and checkpoint_model(driver.timesteps) not in driver.checkpoints.saved:
        driver.checkpoint(driver.timesteps)
    evaluation = driver.evaluate(driver.timesteps, training_baselines(pm, cfg.env.conversions_per_episode))
    summary = {
        "name": cfg.run.name,
        "algorithm": cfg.algorithm.name,
        "total_timesteps": driver.timesteps,
        "episodes": driver.episodes.count,
        "stopped": driver.stop_reason or "completed",
        "resumed": run.resumed,
        "wall_seconds": round(time.perf_counter() - start, 3),
        "train_seconds": round(train_seconds, 3),
        "env_steps_per_second": round(driver.timesteps / max(train_seconds, 1e-9), 2),
        "n_envs": cfg.env.parallel_envs,
        "executor": cfg.resources.executor,
        "conversions_per_episode": cfg.env.conversions_per_episode,
        "images": {"train": len(data.train), "validation": len(data.validation), "rejected": data.rejected},
        "final_stage": driver.curriculum.stage,
        "training_recent": {k: v for k, v in summarise(list(driver.episodes.recent)).items() if v is not None},
        "evaluation": {k: v for k, v in evaluation.items() if k != "rows"},
        "evaluation_rows": evaluation.get("rows", []),
        "evaluations": driver.evaluation.evaluations,
        "best_score": driver.evaluation.best_score,
        "model": MODEL,
        "best_model": BEST_MODEL,
        "checkpoints": driver.checkpoints.saved,
        "env_workers_replaced": driver.workers_replaced,
        "monitors_disabled": dict(pm.disabled),
    }
    atomic_write_text(out_dir / SUMMARY, json.dumps(summary, indent=1, default=json_default))
    pm.run_finished(run, summary)
    from .report import write_report  # matplotlib is imported only here

    try:
        write_report(out_dir, pm)
    except Exception as exc:  # the run itself succeeded; say what failed and go on
        log.warning("report_failed", error=f"{type(exc).__name__}: {exc}", hint=f"vtopt report {out_dir}")
    return summary
