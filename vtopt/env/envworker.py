"""The process that serves one environment of a subprocess vector env, without torch.

stable-baselines3's ``SubprocVecEnv`` runs its worker function from its own
package, whose import pulls in torch (about 250 MB per process) although an
environment never touches it. This module speaks the same pipe protocol
(see ``stable_baselines3.common.vec_env.subproc_vec_env._worker``) and
imports nothing but the environment, so each env process stays small.
"""

from __future__ import annotations

import signal
from typing import Any

from ..errors import PluginFault, VtoptError


def make_env(images, scorer, conversions, reference=None, pool=None, labels=None, moves=True, advisor=None):
    """One training environment (what an executor's ``env_fn`` builds, wherever it runs): with a ``pool``,
    a :class:`vtopt.PoolEnv` (replaying ``labels`` where given, observing ``advisor``'s advice), else the box env."""
    if pool is not None:
        from .poolenv import PoolEnv

        return PoolEnv(images, scorer, conversions, pool, labels, reference=reference, moves=moves, advisor=advisor)
    from .gymenv import VTracerEnv

    return VTracerEnv(images, scorer, conversions, reference=reference)


class WorkerError:
    """Sent back instead of a result when a command raised: the worker lives on, the driver decides.
    ``fault``: a :class:`vtopt.errors.PluginFault`'s (origin, what, method, detail), else None."""

    def __init__(self, message: str, fault: tuple | None = None):
        self.message, self.fault = message, fault


class EnvHost:
    """One environment behind stable-baselines3's ``VecEnv`` worker protocol, wherever it lives (a
    subprocess here, a Ray actor in the ``ray`` plugin): ``handle(command, data)`` answers one
    command; a finished episode is reset at once, its last observation kept in the info."""

    def __init__(self, env):
        self.env = env
        self.reset_info: dict[str, Any] = {}

    def handle(self, cmd: str, data: Any = None) -> Any:
        env = self.env
        if cmd == "step":
            observation, reward, terminated, truncated, info = env.step(data)
            done = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            if done:  # SB3's VecEnv API: keep the final observation, then reset
                info["terminal_observation"] = observation
                observation, self.reset_info = env.reset()
            return observation, reward, done, info, self.reset_info
        if cmd == "reset":  # data: (seed, options)
            options = {"options": data[1]} if data[1] else {}
            observation, self.reset_info = env.reset(seed=data[0], **options)
            return observation, self.reset_info
        if cmd == "render":
            return env.render()
        if cmd == "get_spaces":
            return env.observation_space, env.action_space
        if cmd == "env_method":  # data: (name, args, kwargs)
            return getattr(env, data[0])(*data[1], **data[2])
        if cmd == "get_attr":
            return getattr(env, data)
        if cmd == "has_attr":
            return hasattr(env, data)
        if cmd == "set_attr":
            return setattr(env, data[0], data[1])
        if cmd == "is_wrapped":
            return False  # vtopt's environments are never wrapped
        raise NotImplementedError(f"`{cmd}` is not implemented in vtopt's env worker")


class EnvSlots:
    """The bookkeeping of a vector env whose environment workers can die and be replaced (vtopt's
    subprocess envs, the ``ray`` plugin's actors): deaths in a row per slot (``MAX_FAILURES`` stop
    the run), the settings given to every env (given again to a replacement), a replacement's seed,
    and the step result that ends the dropped episode; ``on_replaced(slot, reason)`` is told."""

    MAX_FAILURES = 3

    def __init__(self, n_envs: int, on_replaced=None, what: str = "environment worker"):
        self.n_envs, self.on_replaced, self.what = n_envs, on_replaced, what
        self.failures = [0] * n_envs
        self.settings: dict[str, tuple] = {}  # env_method name -> the last (args, kwargs) given to every env
        self.ended: dict[int, tuple] = {}  # slots replaced outside a step: their next step reports the end
        self.base_seed: int | None = None  # the VecEnv's seed(): replacements are seeded from it
        self.replaced = 0

    def remember(self, method_name: str, args: tuple, kwargs: dict, indices) -> None:
        """An env_method call to every env that sets something: a replacement gets it too."""
        if indices is None and method_name.startswith("set_"):
            self.settings[method_name] = (args, kwargs)

    def answered(self, i: int) -> None:
        self.failures[i] = 0

    def failed(self, i: int, reason: str) -> None:
        """Slot ``i`` died (again); raise once it has died MAX_FAILURES times in a row."""
        self.failures[i] += 1
        if self.failures[i] >= self.MAX_FAILURES:
            raise VtoptError(f"{self.what} {i} died {self.MAX_FAILURES} times in a row (last: {reason}); "
                             "stopping the run")

    def seed(self, i: int) -> int | None:
        return None if self.base_seed is None else self.base_seed + i + self.n_envs * (self.replaced + 1)

    def restart(self, i: int, call, reason: str) -> tuple:
        """Bring slot ``i``'s new env to where the others are: the settings given again, then a reset
        with its seed; ``call(command, data)`` answers one :class:`EnvHost` command there. Returns the
        step result that ends the dropped episode."""
        for name, (args, kwargs) in self.settings.items():
            call("env_method", (name, args, kwargs))
        observation, reset_info = call("reset", (self.seed(i), None))
        self.replaced += 1
        if self.on_replaced is not None:
            self.on_replaced(i, reason)
        info = {"terminal_observation": observation, "TimeLimit.truncated": True, "vtopt_worker_replaced": reason}
        return observation, 0.0, True, info, reset_info


def serve(remote, parent_remote, env_fn) -> None:
    # Ctrl-C reaches the whole process group: the main process decides when to stop, and closes us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent_remote.close()
    host = EnvHost(env_fn())
    while True:
        try:
            cmd, data = remote.recv()
        except (EOFError, KeyboardInterrupt):
            break
        if cmd == "close":
            host.env.close()
            remote.close()
            break
        try:
            remote.send(host.handle(cmd, data))
        except Exception as exc:  # e.g. a plugin's metric that raised: one line back to the driver
            fault = (exc.origin, exc.what, exc.method, exc.detail) if isinstance(exc, PluginFault) else None
            remote.send(WorkerError(f"{type(exc).__name__}: {exc}", fault))
