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


def serve(remote, parent_remote, env_fn) -> None:
    parent_remote.close()
    env = env_fn()
    reset_info: dict[str, Any] | None = {}
    while True:
        try:
            cmd, data = remote.recv()
        except (EOFError, KeyboardInterrupt):
            break
        if cmd == "step":
            observation, reward, terminated, truncated, info = env.step(data)
            done = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            if done:  # SB3's VecEnv API: keep the final observation, then reset
                info["terminal_observation"] = observation
                observation, reset_info = env.reset()
            remote.send((observation, reward, done, info, reset_info))
        elif cmd == "reset":
            options = {"options": data[1]} if data[1] else {}
            observation, reset_info = env.reset(seed=data[0], **options)
            remote.send((observation, reset_info))
        elif cmd == "render":
            remote.send(env.render())
        elif cmd == "close":
            env.close()
            remote.close()
            break
        elif cmd == "get_spaces":
            remote.send((env.observation_space, env.action_space))
        elif cmd == "env_method":
            remote.send(getattr(env, data[0])(*data[1], **data[2]))
        elif cmd == "get_attr":
            remote.send(getattr(env, data))
        elif cmd == "has_attr":
            remote.send(hasattr(env, data))
        elif cmd == "set_attr":
            remote.send(setattr(env, data[0], data[1]))
        elif cmd == "is_wrapped":
            remote.send(False)  # vtopt's environments are never wrapped
        else:
            raise NotImplementedError(f"`{cmd}` is not implemented in vtopt's env worker")
