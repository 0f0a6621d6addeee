"""Training's vector envs: one base over any transport, and subprocess envs (torch-free, replaced when they die).

:class:`HostedVecEnv` is stable-baselines3's ``VecEnv`` over environments that each live behind an
:class:`vtopt.env.envworker.EnvHost` somewhere (a subprocess here, a Ray actor in the ``ray``
plugin): a subclass says only how to start a slot's host, send it a command and receive the answer.
When a host dies (the OOM killer, a crash in native code), a new one takes its slot: the episode in
flight is dropped (the slot reports it done, with no episode summary), the settings the driver gave
the old one (the curriculum's kind weights) are given again, and ``on_replaced(slot, reason)`` is
told; :class:`vtopt.env.envworker.EnvSlots` keeps that account. A slot that fails
``EnvSlots.MAX_FAILURES`` times in a row stops the run.

:class:`WorkerVecEnv` runs each host in a subprocess serving :func:`vtopt.env.envworker.serve` (no
torch in it). An exception inside a worker (a plugin's metric that raises) comes back as a
one-line error instead of killing the worker.
"""

from __future__ import annotations

import multiprocessing as mp
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from ..errors import PluginFault, VtoptError
from ..vtracer.images import LogoImage
from . import envworker
from .scoring import Scorer

_LOST = (EOFError, ConnectionError, BrokenPipeError, OSError)


class HostLost(Exception):
    """A slot's host is gone (raised by :meth:`HostedVecEnv.send` or :meth:`HostedVecEnv.receive`);
    ``reason`` says how, for the replacement's alert."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def stack_obs(observations: Sequence[Any]) -> Any:
    """One observation per env, stacked along a first axis: arrays, and dicts or tuples of them."""
    first = observations[0]
    if isinstance(first, dict):
        return {key: np.stack([o[key] for o in observations]) for key in first}
    if isinstance(first, tuple):
        return tuple(np.stack(parts) for parts in zip(*observations))
    return np.stack(observations)


class HostedVecEnv(VecEnv):
    """A ``VecEnv`` of ``n_envs`` environments, each behind an :class:`vtopt.EnvHost` somewhere.

    A subclass implements :meth:`start` (a new host in a slot, the old one, if any, killed),
    :meth:`send` (one command to a slot's host; raise :class:`HostLost` when it is gone),
    :meth:`receive` (its answer, in order; raise :class:`HostLost` when it died, and turn an error it
    sent back into a one-line :class:`vtopt.VtoptError`) and :meth:`close`; and calls
    :meth:`start_hosts` in its ``__init__``. Replacing a dead host is done here.
    """

    def __init__(self, n_envs: int, on_replaced: Callable[[int, str], None] | None = None,
                 what: str = "environment worker"):
        self.slots = envworker.EnvSlots(n_envs, on_replaced, what=what)
        self.lost: dict[int, str] = {}  # slots found gone when sent a command: why, until replaced
        self.pending: set[int] = set()  # slots whose answer has not been received yet

    # -- what a transport implements ---------------------------------------------------------
    def start(self, i: int) -> None:
        """A new host in slot ``i`` (killing the one there, if any)."""
        raise NotImplementedError

    def send(self, i: int, command: str, data: Any = None) -> None:
        raise NotImplementedError

    def receive(self, i: int) -> Any:
        raise NotImplementedError

    # -- built on them -------------------------------------------------------------------------
    def start_hosts(self) -> None:
        """Start every slot's host and take the spaces from the first (what a subclass's ``__init__`` calls)."""
        for i in range(self.slots.n_envs):
            self.start(i)
        observation_space, action_space = self.call(0, "get_spaces")
        VecEnv.__init__(self, self.slots.n_envs, observation_space, action_space)

    def call(self, i: int, command: str, data: Any = None) -> Any:
        """One command to slot ``i`` and its answer (:class:`HostLost` when the host is gone)."""
        self._send(i, command, data)
        return self._receive(i)

    def _send(self, i: int, command: str, data: Any) -> None:
        self.send(i, command, data)
        self.pending.add(i)

    def _receive(self, i: int) -> Any:
        self.pending.discard(i)
        return self.receive(i)

    def _answer(self, i: int) -> Any:
        """Slot ``i``'s answer to the command sent to every slot, or, where its host died, the step
        result that ends the dropped episode (the replacement started)."""
        if i in self.lost:
            return self._replace(i, self.lost.pop(i))
        try:
            result = self._receive(i)
        except HostLost as exc:
            return self._replace(i, exc.reason)
        self.slots.answered(i)
        return result

    def _send_all(self, command: str, data: Sequence[Any]) -> None:
        for i, item in enumerate(data):
            if i in self.slots.ended:
                continue  # replaced outside a step already: its next answer is the dropped episode's end
            try:
                self._send(i, command, item)
            except HostLost as exc:
                self.lost[i] = exc.reason

    def _replace(self, i: int, reason: str) -> tuple:
        """Start a new host in slot ``i``; return the step result that ends the dropped episode."""
        self.slots.failed(i, reason)
        self.pending.discard(i)
        self.start(i)
        try:
            return self.slots.restart(i, partial(self.call, i), reason)
        except HostLost as exc:  # the replacement died at once: another failure of this slot
            return self._replace(i, exc.reason)

    # -- the VecEnv interface -------------------------------------------------------------------
    def seed(self, seed: int | None = None):
        self.slots.base_seed = seed  # replacements are seeded from it, so a run stays reproducible
        return super().seed(seed)

    def step_async(self, actions: np.ndarray) -> None:
        self._send_all("step", actions)

    def step_wait(self):
        results = [self.slots.ended.pop(i) if i in self.slots.ended else self._answer(i)
                   for i in range(self.num_envs)]
        obs, rews, dones, infos, self.reset_infos = zip(*results)
        return stack_obs(obs), np.stack(rews), np.stack(dones), infos

    def reset(self):
        self._send_all("reset", [(self._seeds[i], self._options[i]) for i in range(self.num_envs)])
        results = []
        for i in range(self.num_envs):
            result = self.slots.ended.pop(i) if i in self.slots.ended else self._answer(i)
            results.append(result if len(result) == 2 else (result[0], result[4]))  # a replacement's reset
        obs, self.reset_infos = zip(*results)
        self._reset_seeds()
        self._reset_options()
        return stack_obs(obs)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        self.slots.remember(method_name, method_args, method_kwargs, indices)
        out = []
        for i in self._get_indices(indices):
            try:
                out.append(self.call(i, "env_method", (method_name, method_args, method_kwargs)))
            except HostLost as exc:  # the replacement gets the settings; its next step ends the dropped episode
                self.slots.ended[i] = self._replace(i, exc.reason)
                out.append(None)
        return out

    def _ask(self, command: str, data: Any, indices) -> list[Any]:
        try:
            return [self.call(i, command, data) for i in self._get_indices(indices)]
        except HostLost as exc:
            raise VtoptError(f"{self.slots.what} lost: {exc.reason}") from None

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return self._ask("get_attr", attr_name, indices)

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        self._ask("set_attr", (attr_name, value), indices)

    def has_attr(self, attr_name: str) -> bool:
        return all(self._ask("has_attr", attr_name, None))

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]  # vtopt's environments are never wrapped


class WorkerVecEnv(HostedVecEnv):
    """Each environment in a subprocess serving :func:`vtopt.env.envworker.serve` (forkserver: no torch)."""

    def __init__(self, env_fns: Sequence[Callable], on_replaced: Callable[[int, str], None] | None = None):
        super().__init__(len(env_fns), on_replaced)
        self.closed = False
        self.env_fns = list(env_fns)
        self.ctx = mp.get_context("forkserver")
        self.remotes: list[Any] = [None] * len(env_fns)
        self.processes: list[Any] = [None] * len(env_fns)
        try:
            self.start_hosts()
        except BaseException:  # nothing is left running
            for process in self.processes:
                if process is not None:
                    process.kill()
            raise

    def start(self, i: int) -> None:
        old = self.processes[i]
        if old is not None:
            if old.is_alive():
                old.kill()
            old.join(timeout=5)
            self.remotes[i].close()
        remote, work_remote = self.ctx.Pipe()
        process = self.ctx.Process(target=envworker.serve, args=(work_remote, remote, self.env_fns[i]), daemon=True)
        process.start()
        work_remote.close()
        self.remotes[i], self.processes[i] = remote, process

    def send(self, i: int, command: str, data: Any = None) -> None:
        try:
            self.remotes[i].send((command, data))
        except _LOST:
            raise HostLost(f"the process was gone when sent {command!r}") from None

    def receive(self, i: int) -> Any:
        try:
            result = self.remotes[i].recv()
        except _LOST as exc:
            raise HostLost(self._reason(i, exc)) from None
        if isinstance(result, envworker.WorkerError):
            raise PluginFault(*result.fault) if result.fault else VtoptError(result.message)
        return result

    def _reason(self, i: int, exc: BaseException) -> str:
        process = self.processes[i]
        process.join(timeout=1)
        code = process.exitcode
        died = f"exit code {code}" if code is not None and code >= 0 else f"killed by signal {-code}" if code else ""
        return f"the process {died or 'stopped answering'} ({type(exc).__name__})"

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
