"""Built-in algorithms from stable-baselines3: ``ppo`` (the default), ``a2c``, ``sac``.

``algorithm.params`` are passed to the SB3 class as keywords (``policy``
defaults to ``"MlpPolicy"``); a keyword the class does not take, or a value
it rejects, is a config error (the model is built once on a stub
environment to find out). ``seed`` and ``device`` come from ``run.seed`` and
``resources``. For PPO and A2C, ``policy_kwargs.log_std_init`` defaults to
-1 instead of SB3's 0: with std 1, a third of the Gaussian's samples fall
outside the [-1, 1] action box and are clipped onto its bounds.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from vtopt import hookimpl
from vtopt.errors import ParamError, VtoptError

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
        self.params = dict(params)
        if self.class_name in ("PPO", "A2C"):
            kwargs = self.params.get("policy_kwargs")
            if kwargs is None or (isinstance(kwargs, dict) and "log_std_init" not in kwargs):
                self.params["policy_kwargs"] = {"log_std_init": -1.0, **(kwargs or {})}
        self.model = None
        self.pending: dict[str, Any] = {}
        if self.params.get("tensorboard_log") is not None:
            try:
                import tensorboard  # noqa: F401
            except ImportError:
                raise ParamError("tensorboard_log", "needs the tensorboard package (pip install tensorboard)") from None
        self._check(cls)

    def _check(self, cls) -> None:
        """Build the model once on a stub env, so that bad values fail at validation."""
        import warnings

        from stable_baselines3.common.vec_env import DummyVecEnv

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cls(self.policy, DummyVecEnv([_StubEnv]), device="cpu", verbose=0, **self.params)
        except Exception as exc:
            text = f"{exc}".strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            key = next((k for k in self.params if k in text), None)
            raise ParamError(key, f"{self.class_name} rejects these params: {type(exc).__name__}: {text}") from None

    def learn(self, ctx) -> None:
        import torch
        from stable_baselines3.common.callbacks import BaseCallback

        torch.set_num_threads(ctx.threads)
        device = ctx.device
        if device == "cuda" and not torch.cuda.is_available():
            raise VtoptError("resources.device is 'cuda' but torch sees no CUDA device (use auto or cpu)")

        class Bridge(BaseCallback):
            def _on_step(self) -> bool:
                return bool(ctx.on_step(self.locals["infos"], self.locals["dones"], self.num_timesteps))

            def _on_rollout_end(self) -> None:
                ctx.on_rollout_end(self.num_timesteps)

        cls = _sb3_class(self.class_name)
        if ctx.resume_from is not None:
            self.model = cls.load(ctx.resume_from, env=ctx.env, device=device)
            self.update(**self.pending)
            remaining = ctx.total_timesteps - self.model.num_timesteps
            if remaining > 0:
                self.model.learn(total_timesteps=remaining, callback=Bridge(), progress_bar=False,
                                 reset_num_timesteps=False)
            return
        params = {**self.params, **self.pending}
        self.model = cls(self.policy, ctx.env, seed=ctx.seed, device=device, verbose=0, **params)
        self.model.learn(total_timesteps=ctx.total_timesteps, callback=Bridge(), progress_bar=False)

    #: Settings a curriculum stage may change mid-run.
    UPDATABLE = ("learning_rate", "ent_coef", "clip_range", "vf_coef", "max_grad_norm")

    def check_update(self, **settings: Any) -> None:
        """Raise ValueError unless :meth:`update` would accept ``settings`` (used at validation)."""
        unknown = sorted(set(settings) - set(self.UPDATABLE))
        if unknown:
            raise ValueError(f"{self.class_name} cannot change {unknown} mid-run; it can change {list(self.UPDATABLE)}")
        for key, value in settings.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{key} must be a number >= 0, got {value!r}")

    def update(self, **settings: Any) -> None:
        """Change settings mid-run (e.g. for a curriculum stage); before ``learn``, they apply at its start."""
        self.check_update(**settings)
        if self.model is None:
            self.pending.update(settings)
            return
        from stable_baselines3.common.utils import get_schedule_fn

        for key, value in settings.items():
            if not hasattr(self.model, key):
                raise VtoptError(f"{self.class_name} has no setting {key!r}")
            setattr(self.model, key, value)
            if key == "learning_rate":
                self.model.lr_schedule = get_schedule_fn(value)
            elif key == "clip_range":
                self.model.clip_range = get_schedule_fn(value)

    def save(self, path: Path) -> None:
        with open(path, "wb") as fh:
            self.model.save(fh)

    def load(self, path: Path) -> None:
        self.model = _sb3_class(self.class_name).load(path, device="cpu")

    def predict(self, observation: np.ndarray, deterministic: bool = True) -> np.ndarray:
        action, _ = self.model.predict(observation, deterministic=deterministic)
        return action


def _StubEnv():
    import gymnasium as gym

    from vtopt.env import observation_size
    from vtopt.params import action_size

    class Stub(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, (observation_size(),), dtype=np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (action_size(),), dtype=np.float32)

        def reset(self, *, seed=None, options=None):
            return np.zeros(observation_size(), np.float32), {}

        def step(self, action):
            return np.zeros(observation_size(), np.float32), 0.0, True, False, {}

    return Stub()


class PPO(SB3Algorithm):
    class_name = "PPO"


class A2C(SB3Algorithm):
    class_name = "A2C"
    UPDATABLE = ("learning_rate", "ent_coef", "vf_coef", "max_grad_norm")


class SAC(SB3Algorithm):
    class_name = "SAC"
    UPDATABLE = ("learning_rate",)


@hookimpl
def vtopt_register_algorithms():
    return {"ppo": PPO, "a2c": A2C, "sac": SAC}
