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


def make_env(images, scorer, conversions, reference=None):
    """The environment of one subprocess; Ctrl-C reaches the whole process group, and the main
    process decides when to stop and closes it."""
    from .env import VTracerEnv

    signal.signal(signal.SIGINT, signal.SIG_IGN)
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


def serve(remote, parent_remote, env_fn) -> None:
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
            from .errors import PluginFault

            fault = (exc.origin, exc.what, exc.method, exc.detail) if isinstance(exc, PluginFault) else None
            remote.send(WorkerError(f"{type(exc).__name__}: {exc}", fault))
