"""The ``ray`` executor: images as Ray tasks and sweeps on Ray Tune (``pip install 'vtopt[ray]'``).

Without ``address`` it starts a local Ray instance (``num_cpus``: all cores
by default); with one (``--address ray://host:10001`` or ``auto``) it joins
that cluster. Each Ray worker builds its vtopt Worker (policy, metrics)
once; results stream back as images finish.
"""

from __future__ import annotations

from pathlib import Path

from vtopt import ParamError, hookimpl


def _ray():
    try:
        import ray
    except ImportError:
        raise ParamError(None, "the ray executor needs Ray: pip install 'vtopt[ray]'") from None
    return ray


class _ImageActor:
    def __init__(self, make_worker):
        self.worker = make_worker()

    def run(self, index, job):
        return index, self.worker.run(*job)


class RayExecutor:
    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        _ray()
        if address is not None and not isinstance(address, str):
            raise ParamError("address", "must be a Ray address such as 'auto' or 'ray://host:10001'")
        if num_cpus is not None and (not isinstance(num_cpus, int) or num_cpus < 1):
            raise ParamError("num_cpus", "must be a positive integer")
        self.address, self.num_cpus = address, num_cpus

    def default_workers(self) -> int:
        """One actor per CPU of the cluster (not of this machine)."""
        return max(1, int(self._init().cluster_resources().get("CPU", 1)))

    def _init(self):
        ray = _ray()
        if not ray.is_initialized():
            kwargs = {"address": self.address} if self.address else {"num_cpus": self.num_cpus}
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kwargs)
        return ray

    def run_images(self, jobs, make_worker, workers, on_result) -> None:
        ray = self._init()
        from ray.util import ActorPool

        n = max(1, min(workers, len(jobs), int(ray.cluster_resources().get("CPU", 1))))
        actor = ray.remote(num_cpus=1)(_ImageActor)
        pool = ActorPool([actor.remote(make_worker) for _ in range(n)])
        for i, job in enumerate(jobs):
            pool.submit(lambda a, v: a.run.remote(*v), (i, job))
        pending, lost = set(range(len(jobs))), "Ray worker failed"
        while pool.has_next():
            try:
                index, rows = pool.get_next_unordered()
            except Exception as exc:  # an actor died: its job cannot be named, so finish the others first
                lost = f"Ray worker failed ({type(exc).__name__}: {str(exc).splitlines()[0]})"
                continue
            pending.discard(index)
            on_result(index, rows)
        for index in sorted(pending):
            on_result(index, make_worker.error_rows(jobs[index], lost))

    def run_sweep(self, trial, space, samples, out_dir: Path, sweep) -> list[dict]:
        self._init()
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search import BasicVariantGenerator

        total = trial.total_timesteps
        trials_dir = Path(out_dir).resolve()

        def trainable(values):
            name = f"trial-{tune.get_context().get_trial_id()}"
            run_dir = str(trials_dir / name)

            def report(metrics):
                tune.report({**metrics, "run_dir": run_dir})

            row = trial(values, run_dir, on_evaluated=report)
            tune.report({sweep.metric: row["score"], "timesteps": row["timesteps"], "run_dir": run_dir,
                         "final": True})

        scheduler = None
        if sweep.scheduler == "asha":
            scheduler = ASHAScheduler(time_attr="timesteps", max_t=total, grace_period=max(1, total // 4))
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={key: _to_tune(tune, dist) for key, dist in space.items()},
            tune_config=tune.TuneConfig(num_samples=samples, metric=sweep.metric, mode="max", scheduler=scheduler,
                                        search_alg=BasicVariantGenerator(random_state=sweep.seed)),
            run_config=tune.RunConfig(storage_path=str(trials_dir / "ray"), name="tune", verbose=0),
        )
        rows = []
        for result in tuner.fit():
            m = result.metrics or {}
            row = {"trial": Path(m.get("run_dir", "?")).name, "score": m.get(sweep.metric), **result.config,
                   "timesteps": m.get("timesteps"), "stopped": "completed" if m.get("final") else "early_stop",
                   "run_dir": m.get("run_dir")}
            if result.error:
                row.update(score=None, error=str(result.error).splitlines()[0])
            rows.append(row)
        return rows


def _to_tune(tune, dist):
    lo_hi = dist.args
    return {"uniform": lambda: tune.uniform(*lo_hi), "loguniform": lambda: tune.loguniform(*lo_hi),
            "randint": lambda: tune.randint(*lo_hi), "choice": lambda: tune.choice(list(lo_hi))}[dist.kind]()


@hookimpl
def vtopt_register_executors():
    return {"ray": RayExecutor}
