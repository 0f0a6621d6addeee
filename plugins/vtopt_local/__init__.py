"""The built-in ``local`` executor: a process pool on this machine (the default)."""

from __future__ import annotations

import multiprocessing
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import structlog

from vtopt import hookimpl
from vtopt.errors import ParamError

log = structlog.get_logger(__name__)
_WORKER = None


def _init(worker_args):
    global _WORKER
    from vtopt.apply import Worker

    _WORKER = Worker(*worker_args)


def _run(job):
    return _WORKER.run(*job)


class LocalExecutor:
    """Images over a pool of worker processes (one per core by default); sweep trials one after another."""

    def __init__(self, start_method: str = "forkserver"):
        if start_method not in multiprocessing.get_all_start_methods():
            raise ParamError("start_method", f"must be one of {multiprocessing.get_all_start_methods()}")
        self.start_method = start_method

    def run_images(self, jobs, worker_args, workers, on_result) -> None:
        workers = max(1, min(workers, len(jobs)))
        if workers == 1:
            _init(worker_args)
            for i, job in enumerate(jobs):
                on_result(i, _run(job))
            return
        ctx = multiprocessing.get_context(self.start_method)
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(worker_args,)) as pool:
            futures = {pool.submit(_run, job): i for i, job in enumerate(jobs)}
            for fut in as_completed(futures):
                on_result(futures[fut], fut.result())

    def run_sweep(self, config_path, overrides, space, samples, out_dir: Path, sweep) -> list[dict]:
        from vtopt.sweep import run_trial

        rng = np.random.default_rng(sweep.seed)
        rows = []
        for i in range(samples):
            values = {key: dist.sample(rng) for key, dist in space.items()}
            name = f"trial-{i:03d}"
            log.info("trial", trial=name, of=samples, **values)
            try:
                rows.append(run_trial(config_path, overrides, values, str(out_dir / name)))
            except Exception as exc:  # one failed trial is a row, not a failed sweep
                log.warning("trial_failed", trial=name, error=traceback.format_exception_only(exc)[-1].strip())
                rows.append({"trial": name, "score": None, **values, "error": str(exc)})
        return rows


@hookimpl
def vtopt_register_executors():
    return {"local": LocalExecutor}
