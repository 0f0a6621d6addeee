"""Built-in algorithms from stable-baselines3: ``ppo`` (the default), ``a2c``, ``sac``.

``algorithm.params`` are passed to the SB3 class as keywords (``policy``
defaults to ``"MlpPolicy"``); a keyword the class does not take is a config
error. ``seed`` and ``device`` come from ``run.seed`` and ``resources``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from vtopt import hookimpl
from vtopt.errors import ParamError

_MANAGED = {"self", "policy", "env", "seed", "device", "_init_setup_model", "verbose"}


def _sb3_class(name: str):
    import stable_baselines3

    return getattr(stable_baselines3, name)


class SB3Algorithm:
    """One stable-baselines3 algorithm behind vtopt's Algorithm interface."""

    class_name = "PPO"

    def __init__(self, policy: str = "MlpPolicy", **params: Any):
        if not isinstance(policy, str):
            raise ParamError("policy", f"must be a policy name such as 'MlpPolicy', got {policy!r}")
        cls = _sb3_class(self.class_name)
        accepted = set(inspect.signature(cls.__init__).parameters) - _MANAGED
        for key in params:
            if key in _MANAGED:
                raise ParamError(key, f"{key!r} is set by vtopt (run.seed, resources.device), not in algorithm.params")
            if key not in accepted:
                raise ParamError(key, f"{self.class_name} takes no parameter {key!r}; it takes: {', '.join(sorted(accepted))}")
        self.policy = policy
        self.params = params
        self.model = None

    def learn(self, ctx) -> None:
        import torch
        from stable_baselines3.common.callbacks import BaseCallback

        torch.set_num_threads(ctx.threads)
        device = ctx.device
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("resources.device is 'cuda' but torch sees no CUDA device")

        class Bridge(BaseCallback):
            def _on_step(self) -> bool:
                return bool(ctx.on_step(self.locals["infos"], self.locals["dones"], self.num_timesteps))

            def _on_rollout_end(self) -> None:
                ctx.on_rollout_end(self.num_timesteps)

        cls = _sb3_class(self.class_name)
        self.model = cls(self.policy, ctx.env, seed=ctx.seed, device=device, verbose=0, **self.params)
        self.model.learn(total_timesteps=ctx.total_timesteps, callback=Bridge(), progress_bar=False)

    def save(self, path: Path) -> None:
        with open(path, "wb") as fh:
            self.model.save(fh)

    def load(self, path: Path) -> None:
        self.model = _sb3_class(self.class_name).load(path, device="cpu")

    def predict(self, observation: np.ndarray, deterministic: bool = True) -> np.ndarray:
        action, _ = self.model.predict(observation, deterministic=deterministic)
        return action


class PPO(SB3Algorithm):
    class_name = "PPO"


class A2C(SB3Algorithm):
    class_name = "A2C"


class SAC(SB3Algorithm):
    class_name = "SAC"


@hookimpl
def vtopt_register_algorithms():
    return {"ppo": PPO, "a2c": A2C, "sac": SAC}
