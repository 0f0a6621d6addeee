"""The built-in ``local`` executor (the default): images over a process pool on this machine, sweep
trials one after another, training's environments in subprocesses."""

from __future__ import annotations

import multiprocessing
import pickle
import traceback
from pathlib import Path

import numpy as np
import structlog

import vtopt
from vtopt import Interrupted, ParamError, VtoptError, hookimpl

log = structlog.get_logger(__name__)
_WORKER = None


def _init(make_worker, prebuilt: bool):
    global _WORKER
    if prebuilt:  # forked from a parent that built it: models loaded, nothing to import
        return
    _WORKER = make_worker()


def _run(job):
    return _WORKER.run(*job)


class LocalExecutor:
    """Images over a pool of worker processes (one per core by default); sweep trials one after another.

    With ``fork`` (the default where available) the worker (plugins, scorer,
    loaded models) is built once in this process and every worker process
    starts from it; ``forkserver`` and ``spawn`` build one in each.
    """

    def __init__(self, start_method: str | None = None):
        if start_method is None:
            start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        if start_method not in multiprocessing.get_all_start_methods():
            raise ParamError("start_method", f"must be one of {multiprocessing.get_all_start_methods()}")
        self.start_method = start_method

    def run_images(self, jobs, make_worker, workers, on_result) -> None:
        """One image runs in this process (a pool would only add its start-up). More run on a pool;
        a crashed worker breaks its pool: the unfinished jobs then run one per fresh worker,
        so that only the job that crashes again is lost (as an error row)."""
        global _WORKER
        if self.start_method != "fork":  # what cannot reach the workers fails here, in one line
            try:
                pickle.dumps(make_worker)
            except Exception as exc:
                raise VtoptError(f"the work cannot be sent to {self.start_method} worker processes ({type(exc).__name__}: "
                                 f"{exc}); a plugin registered from code must be defined at the top level of an "
                                 "importable module, or use start_method fork") from None
        if len(jobs) == 1:
            on_result(0, make_worker().run(*jobs[0]))
            return
        try:
            if self.start_method == "fork":
                _WORKER = make_worker()
            left = self._pool(list(enumerate(jobs)), make_worker, max(1, min(workers, len(jobs))), on_result)
            for index, job in left:
                if self._pool([(index, job)], make_worker, 1, on_result):
                    on_result(index, make_worker.error_rows(job, "worker process failed (it crashed on this image)"))
        finally:
            _WORKER = None

    def _pool(self, indexed_jobs, make_worker, workers, on_result) -> list:
        """Run jobs on a fresh pool; return those left unfinished because the pool broke."""
        from concurrent.futures import ProcessPoolExecutor, as_completed  # only when more than one image
        from concurrent.futures.process import BrokenProcessPool

        ctx = multiprocessing.get_context(self.start_method)
        done = set()
        try:
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init,
                                     initargs=(make_worker, self.start_method == "fork")) as pool:
                futures = {pool.submit(_run, job): (i, job) for i, job in indexed_jobs}
                for fut in as_completed(futures):
                    index, job = futures[fut]
                    try:
                        rows = fut.result()
                    except BrokenProcessPool:
                        continue
                    done.add(index)
                    on_result(index, rows)
        except BrokenProcessPool:
            pass
        return [(i, job) for i, job in indexed_jobs if i not in done]

    def make_vec_env(self, env_fn, n_envs, on_replaced):
        """Training's environments on this machine: in-process when one, else subprocesses."""
        return vtopt.local_vec_env(env_fn, n_envs, on_replaced)  # imports stable-baselines3: only here

    def run_sweep(self, trial, space, samples, out_dir: Path, sweep) -> list[dict]:
        if sweep.scheduler != "fifo":
            raise ParamError(None, f"sweep.scheduler {sweep.scheduler!r} needs an executor that stops trials "
                                   "early (--executor ray); the local executor runs every trial to the end (fifo)")
        rng = np.random.default_rng(sweep.seed)
        rows = []
        for i in range(samples):
            values = {key: dist.sample(rng) for key, dist in space.items()}
            name = f"trial-{i:03d}"
            log.info("trial", trial=name, of=samples, **values)
            try:
                rows.append(trial(values, str(out_dir / name)))
            except Interrupted:
                raise  # Ctrl-C / SIGTERM stops the sweep, not just this trial
            except Exception as exc:  # one failed trial is a row, not a failed sweep
                log.warning("trial_failed", trial=name, error=traceback.format_exception_only(exc)[-1].strip())
                rows.append({"trial": name, "score": None, **values, "error": str(exc)})
        return rows


@hookimpl
def vtopt_register_executors():
    return {"local": LocalExecutor}


@hookimpl(trylast=True)
def vtopt_config_defaults():
    return {"resources": {"executor": "local"}}
