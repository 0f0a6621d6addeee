"""Subprocess environments for training: torch-free workers, and a dead worker is replaced.

:class:`WorkerVecEnv` is stable-baselines3's ``SubprocVecEnv`` with its
processes running :func:`vtopt.env.envworker.serve` (no torch in them). When a
worker process dies (the OOM killer, a crash in native code), a new one
takes its slot: the episode in flight is dropped (the slot reports it done,
with no episode summary), the settings the driver gave the old one (the
curriculum's kind weights) are given again, and ``on_replaced(slot,
reason)`` is told; :class:`vtopt.env.envworker.EnvSlots` keeps that account. A
slot that fails ``EnvSlots.MAX_FAILURES`` times in a row stops the run. An
exception inside a worker (a plugin's metric that raises) comes back as a
one-line error instead of killing the worker.
"""

from __future__ import annotations

import multiprocessing as mp
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
from stable_baselines3.common.vec_env import SubprocVecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnv
from stable_baselines3.common.vec_env.subproc_vec_env import _stack_obs

from ..errors import PluginFault, VtoptError
from ..vtracer.images import LogoImage
from . import envworker
from .scoring import Scorer

_LOST = (EOFError, ConnectionError, BrokenPipeError, OSError)


class WorkerVecEnv(SubprocVecEnv):
    def __init__(self, env_fns: Sequence[Callable], on_replaced: Callable[[int, str], None] | None = None):
        self.waiting, self.closed = False, False
        self.env_fns = list(env_fns)
        self.ctx = mp.get_context("forkserver")
        self.slots = envworker.EnvSlots(len(env_fns), on_replaced)
        self.remotes, self.processes = [], []
        try:
            for fn in self.env_fns:
                remote, process = self._start(fn)
                self.remotes.append(remote)
                self.processes.append(process)
            self.remotes[0].send(("get_spaces", None))
            observation_space, action_space = self.remotes[0].recv()
        except BaseException:  # nothing is left running
            for process in self.processes:
                process.kill()
            raise
        self.dead: set[int] = set()
        self.pending: set[int] = set()  # slots whose answer to a step has not been read yet
        VecEnv.__init__(self, len(env_fns), observation_space, action_space)

    def _start(self, fn):
        remote, work_remote = self.ctx.Pipe()
        process = self.ctx.Process(target=envworker.serve, args=(work_remote, remote, fn), daemon=True)
        process.start()
        work_remote.close()
        return remote, process

    # -- replacing a dead worker --------------------------------------------------------
    def _replace(self, i: int, reason: str) -> tuple:
        """Start a new worker in slot ``i``; return the step result that ends the dropped episode."""
        self.slots.failed(i, reason)
        old = self.processes[i]
        if old.is_alive():
            old.kill()
        old.join(timeout=5)
        self.remotes[i].close()
        self.remotes[i], self.processes[i] = self._start(self.env_fns[i])

        def call(cmd: str, data: Any) -> Any:
            self.remotes[i].send((cmd, data))
            return self._recv(i)

        try:
            step = self.slots.restart(i, call, reason)
        except _LOST as exc:  # the replacement died at once: another failure of this slot
            return self._replace(i, self._reason(i, exc))
        self.dead.discard(i)
        return step

    def _reason(self, i: int, exc: BaseException) -> str:
        process = self.processes[i]
        process.join(timeout=1)
        code = process.exitcode
        died = f"exit code {code}" if code is not None and code >= 0 else f"killed by signal {-code}" if code else ""
        return f"the process {died or 'stopped answering'} ({type(exc).__name__})"

    def seed(self, seed: int | None = None):
        self.slots.base_seed = seed  # replacements are seeded from it, so a run stays reproducible
        return super().seed(seed)

    def _recv(self, i: int) -> Any:
        self.pending.discard(i)
        result = self.remotes[i].recv()
        if isinstance(result, envworker.WorkerError):
            raise PluginFault(*result.fault) if result.fault else VtoptError(result.message)
        return result

    # -- the VecEnv interface -------------------------------------------------------------
    def step_async(self, actions: np.ndarray) -> None:
        for i, (remote, action) in enumerate(zip(self.remotes, actions)):
            if i in self.slots.ended:
                continue  # its replacement was reset already; this step reports the end of the dropped episode
            try:
                remote.send(("step", action))
                self.pending.add(i)
            except _LOST:
                self.dead.add(i)
        self.waiting = True

    def step_wait(self):
        results = []
        for i in range(self.num_envs):
            if i in self.slots.ended:
                results.append(self.slots.ended.pop(i))
                continue
            if i in self.dead:
                results.append(self._replace(i, "the process was gone when sent a step"))
                continue
            try:
                results.append(self._recv(i))
                self.slots.answered(i)
            except _LOST as exc:
                results.append(self._replace(i, self._reason(i, exc)))
        self.waiting = False
        obs, rews, dones, infos, self.reset_infos = zip(*results)
        return _stack_obs(obs, self.observation_space), np.stack(rews), np.stack(dones), infos

    def reset(self):
        results = []
        for i, remote in enumerate(self.remotes):
            try:
                remote.send(("reset", (self._seeds[i], self._options[i])))
                results.append(self._recv(i))
            except _LOST as exc:
                observation, _, _, _, reset_info = self._replace(i, self._reason(i, exc))
                results.append((observation, reset_info))
        obs, self.reset_infos = zip(*results)
        self._reset_seeds()
        self._reset_options()
        return _stack_obs(obs, self.observation_space)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        self.slots.remember(method_name, method_args, method_kwargs, indices)
        out = []
        for i in self._get_indices(indices):
            try:
                self.remotes[i].send(("env_method", (method_name, method_args, method_kwargs)))
                out.append(self._recv(i))
            except _LOST as exc:  # the replacement gets the settings; its next step ends the dropped episode
                self.slots.ended[i] = self._replace(i, self._reason(i, exc))
                out.append(None)
        return out

    def close(self) -> None:
        """Never waits long: only answers still owed are read (a step cut short by an error leaves some
        read and some not), each for at most a few seconds, then every worker is told to close."""
        if self.closed:
            return
        for i, remote in enumerate(self.remotes):
            try:
                if i in self.pending and remote.poll(5):
                    remote.recv()
                remote.send(("close", None))
            except _LOST:
                pass
        self.pending.clear()
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        for remote in self.remotes:
            remote.close()
        self.closed = True


def local_vec_env(env_fn: Callable[[], Any], n_envs: int, on_replaced: Callable[[int, str], None] | None = None
                  ) -> VecEnv:
    """``n_envs`` environments built by ``env_fn`` on this machine: in this process when there is one,
    else each in a :class:`WorkerVecEnv` subprocess (a dead one is replaced and ``on_replaced`` told).
    What an executor's ``make_vec_env`` returns when its environments run here."""
    if n_envs == 1:
        from stable_baselines3.common.vec_env import DummyVecEnv

        return DummyVecEnv([env_fn])
    try:
        return WorkerVecEnv([env_fn] * n_envs, on_replaced)
    except Exception as exc:
        raise VtoptError(f"could not start {n_envs} subprocess environments: {type(exc).__name__}: {exc}") from exc


def make_vec_env(images: Sequence[LogoImage], scorer: Scorer, conversions: int, n_envs: int, seed: int,
                 reference: Sequence[dict] | None = None, on_replaced=None, executor=None,
                 pool: Sequence[dict] | None = None, labels=None, moves: bool = True, advisor=None):
    """n_envs environments wherever ``executor``'s ``make_vec_env`` puts them (None: on this machine,
    :func:`local_vec_env`, where a dead subprocess is replaced and ``on_replaced(slot,
    reason)`` told); never a silent fallback. With a ``pool``, :class:`vtopt.PoolEnv` envs (replaying
    ``labels``, the :class:`vtopt.Labels` of ``images``, where given; refinement moves unless ``moves`` is False;
    the ``advisor``'s advice observed where given)."""
    env_fn = partial(envworker.make_env, list(images), scorer, conversions, reference, pool, labels, moves, advisor)
    if executor is not None:
        env = executor.make_vec_env(env_fn, n_envs, on_replaced)
    else:
        env = local_vec_env(env_fn, n_envs, on_replaced)
    env.seed(seed)
    return env
