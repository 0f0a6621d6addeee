"""The ``ray`` executor: images as Ray tasks, sweeps on Ray Tune, and training's environments as
Ray actors (``vtopt run --executor ray``; ``pip install 'vtopt[ray]'``).

Without ``address`` it starts a local Ray instance (``num_cpus``: all cores
by default); with one (``--address ray://host:10001`` or ``auto``) it joins
that cluster. Each Ray worker builds its vtopt Worker (policy, metrics)
once; results stream back as images finish.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import structlog

from vtopt import EnvHost, ParamError, VtoptError, hookimpl

_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"  # Ray's module that sets token auth up


def _quiet_auth_notice(record: logging.LogRecord) -> bool:
    """Drop only the notice that a local start has token auth on (Ray's default, nothing to act on);
    Ray's warning that auth is *disabled* still shows."""
    return not record.getMessage().startswith("Token authentication is enabled")


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
            if not self.address:  # Ray's notice that it turned its default token auth on, on every local start
                logging.getLogger(_AUTH_LOGGER).addFilter(_quiet_auth_notice)
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kwargs)
        return ray

    def run_images(self, jobs, make_worker, workers, on_result) -> None:
        """One actor per worker, each given one image at a time. An actor that dies (the OOM killer, a
        crash in native code) is replaced, and its image tried once more on the fresh actor; an image
        whose actor dies twice is an error row."""
        from collections import deque

        ray = self._init()
        lost = (ray.exceptions.RayActorError, ray.exceptions.ActorDiedError, ray.exceptions.ActorUnavailableError)
        n = max(1, min(workers, len(jobs), int(ray.cluster_resources().get("CPU", 1))))
        actor = ray.remote(num_cpus=1, max_restarts=0)(_ImageActor)
        idle = [actor.remote(make_worker) for _ in range(n)]
        queue, running, died = deque(range(len(jobs))), {}, {}
        while queue or running:
            while queue and idle:
                i = queue.popleft()
                a = idle.pop()  # after a death: the fresh actor
                running[a.run.remote(i, jobs[i])] = (i, a)
            (ref,), _ = ray.wait(list(running), num_returns=1)
            i, a = running.pop(ref)
            try:
                _, rows = ray.get(ref)
            except lost as exc:
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                died[i] = died.get(i, 0) + 1
                structlog.get_logger(__name__).warning("ray_actor_replaced", image=str(jobs[i][0]), reason=reason,
                                                       retried=died[i] == 1)
                ray.kill(a)
                idle.append(actor.remote(make_worker))
                if died[i] == 1:
                    queue.appendleft(i)
                else:
                    on_result(i, make_worker.error_rows(jobs[i], f"Ray worker died twice on this image ({reason})"))
                continue
            except Exception as exc:  # the task itself failed; the actor lives on
                idle.append(a)
                on_result(i, make_worker.error_rows(jobs[i], f"Ray worker failed ({type(exc).__name__}: "
                                                             f"{str(exc).splitlines()[0]})"))
                continue
            idle.append(a)
            on_result(i, rows)

    def make_vec_env(self, env_fn, n_envs: int, on_replaced=None):
        """Training's ``n_envs`` environments as Ray actors anywhere on the cluster (see ``RayVecEnv``)."""
        self._init()
        return _vec_env_class()(env_fn, n_envs, on_replaced)

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


class _EnvActor(EnvHost):
    """One training environment, living wherever Ray puts it."""

    def __init__(self, env_fn):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides when to stop, and closes us
        super().__init__(env_fn())


def _vec_env_class():
    from vtopt import HostedVecEnv, HostLost  # imports stable-baselines3: only when training on Ray

    ray = _ray()
    lost = (ray.exceptions.RayActorError, ray.exceptions.ActorDiedError, ray.exceptions.ActorUnavailableError)

    class RayVecEnv(HostedVecEnv):
        """vtopt's vector env over Ray actors, one environment each; the learner stays here.

        The environment factory (images included) goes into Ray's object store once, so a node
        needs no copy of the dataset. A dead actor is replaced (by :class:`vtopt.HostedVecEnv`): its
        episode in flight is dropped, the settings given to every env (kind weights) are given
        again, and ``on_replaced`` is told; a slot that dies 3 times in a row stops the run.
        """

        def __init__(self, env_fn, n_envs, on_replaced=None):
            cpus = int(ray.cluster_resources().get("CPU", 0))
            if n_envs > cpus:  # an actor takes a CPU: more would wait for ever
                raise VtoptError(f"env.parallel_envs is {n_envs} but the Ray cluster has {cpus} CPUs (each "
                                 "environment actor takes one): lower env.parallel_envs or add nodes")
            super().__init__(n_envs, on_replaced, what="environment actor")
            self.fn_ref = ray.put(env_fn)
            self.remote_cls = ray.remote(num_cpus=1, max_restarts=0)(_EnvActor)
            self.actors = [None] * n_envs
            self.refs = [None] * n_envs  # each slot's (answer on its way, command)
            try:
                self.start_hosts()
            except VtoptError:
                self.close()
                raise
            except Exception as exc:
                self.close()
                raise VtoptError(f"the environment actors did not start: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}") from None

        def start(self, i):
            if self.actors[i] is not None:
                ray.kill(self.actors[i], no_restart=True)
            self.actors[i] = self.remote_cls.remote(self.fn_ref)

        def send(self, i, command, data=None):
            self.refs[i] = (self.actors[i].handle.remote(command, data), command)

        def receive(self, i):
            (ref, command), self.refs[i] = self.refs[i], None
            try:  # an actor Ray cannot place would keep the first answer waiting for ever
                return ray.get(ref, timeout=600 if command == "get_spaces" else None)
            except lost as exc:
                raise HostLost(f"Ray actor died ({type(exc).__name__})") from None
            except ray.exceptions.RayTaskError as exc:  # the env raised: one line, as a local env would
                cause = getattr(exc, "cause", None)
                if isinstance(cause, VtoptError):  # a plugin's fault, already named
                    raise cause from None
                raise VtoptError(f"environment actor {i}: {type(cause).__name__}: {cause}") from None
            except ray.exceptions.RayError as exc:  # anything else Ray could not hand back
                raise VtoptError(f"environment actor {i}: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}") from None

        def close(self):
            for actor in self.actors:
                if actor is not None:
                    ray.kill(actor, no_restart=True)
            self.actors = []

    return RayVecEnv


def _to_tune(tune, dist):
    lo_hi = dist.args
    return {"uniform": lambda: tune.uniform(*lo_hi), "loguniform": lambda: tune.loguniform(*lo_hi),
            "randint": lambda: tune.randint(*lo_hi), "choice": lambda: tune.choice(list(lo_hi))}[dist.kind]()


@hookimpl
def vtopt_register_executors():
    return {"ray": RayExecutor}
