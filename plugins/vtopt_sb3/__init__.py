"""Built-in algorithms from stable-baselines3: ``ppo`` (the default), ``a2c``, ``sac``.

``algorithm.params`` are passed to the SB3 class as keywords (``policy``
defaults to ``"MlpPolicy"``); a keyword the class does not take, or a value
it rejects, is a config error (the model is built once on a stub
environment to find out). ``seed`` and ``device`` come from ``run.seed`` and
``resources``. For PPO and A2C, ``policy_kwargs.log_std_init`` defaults to
-1 instead of SB3's 0: with std 1, a third of the Gaussian's samples fall
outside the [-1, 1] action box and are clipped onto its bounds.

Inference without torch: for an MLP policy on a flat Box observation (the
default ``MlpPolicy``, without gSDE), :meth:`SB3Algorithm.save` also writes
the actor's weights into the model zip as ``numpy_policy.npz`` (see
:func:`numpy_policy`), and a model loaded from a file predicts
deterministically with numpy alone: ``vtopt optimize`` / ``evaluate`` then
import neither torch nor stable-baselines3, and loading skips the params
check (``validate``, done when the model was trained). Training, resuming,
stochastic predictions, other policies and model files without that entry
use SB3 as before. On a ``Discrete`` action space (``env.actions: pool``)
the numpy policy is the argmax of the actor's logits.

Imitation before reinforcement (``imitate``, PPO and A2C): where the
environment tells the best next action (its step and reset infos carry
``expert_action``, as vtopt's pool environment does when it replays labels, or
when it has an advisor, whose pick is then the expert's),
the policy first learns to take it, by cross-entropy over ``imitate``
environment steps collected DAgger-style (the expert's action for every
state, the states reached by the policy being trained, mixed with the
expert's own), and the value head learns the returns of those episodes.
Reinforcement learning then starts from that footing instead of from a
uniform policy. ``imitate_epochs`` (default 4) passes are made over each
batch of collected states.
"""

from __future__ import annotations

import inspect
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from vtopt import ParamError, VtoptError, action_size, check_param_names, hookimpl, observation_size

_MANAGED = {"self", "policy", "env", "seed", "device", "_init_setup_model", "verbose"}

NUMPY_ENTRY = "numpy_policy.npz"
_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, np.float32(0))}
_OPS = {"linear", "clip", "unscale", "argmax", *_ACTIVATIONS}


def _sb3_class(name: str):
    import stable_baselines3

    return getattr(stable_baselines3, name)


class SB3Algorithm:
    """One stable-baselines3 algorithm behind vtopt's Algorithm interface."""

    class_name = "PPO"

    def __init__(self, policy: str = "MlpPolicy", imitate: int = 0, imitate_epochs: int = 4, **params: Any):
        if not isinstance(policy, str):
            raise ParamError("policy", f"must be a policy name such as 'MlpPolicy', got {policy!r}")
        for key, value, low in (("imitate", imitate, 0), ("imitate_epochs", imitate_epochs, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ParamError(key, f"must be an integer >= {low}, got {value!r}")
        if imitate and self.class_name not in ("PPO", "A2C"):
            raise ParamError("imitate", f"{self.class_name} does not learn by imitation (PPO and A2C do)")
        self.imitate, self.imitate_epochs = imitate, imitate_epochs
        self.policy = policy
        self.params = dict(params)
        if self.class_name in ("PPO", "A2C"):
            kwargs = self.params.get("policy_kwargs")
            if kwargs is None or (isinstance(kwargs, dict) and "log_std_init" not in kwargs):
                self.params["policy_kwargs"] = {"log_std_init": -1.0, **(kwargs or {})}
        self._model = None
        self.net: dict[str, np.ndarray] | None = None  # the numpy policy of a loaded model file
        self.path: Path | None = None  # the model file, read by SB3 only when needed
        self.pending: dict[str, Any] = {}
        self._given = dict(params)

    def validate(self) -> None:
        """The costly check (imports SB3 and torch), run when a config is checked: vtopt skips it
        when it loads a model file, whose params were checked when it was trained."""
        self._check(self._given)

    @property
    def model(self):
        """The SB3 model; one loaded from a file with a numpy policy is read (importing torch) on first use."""
        if self._model is None and self.path is not None:
            self._model = _sb3_class(self.class_name).load(self.path, device="cpu")
        return self._model

    @model.setter
    def model(self, model) -> None:
        self._model = model

    def _check(self, params: dict[str, Any]) -> None:
        """Refuse params the SB3 class does not take, and build the model once on a stub env,
        so that bad values fail at validation."""
        import warnings

        from stable_baselines3.common.vec_env import DummyVecEnv

        cls = _sb3_class(self.class_name)
        accepted = set(inspect.signature(cls.__init__).parameters) - _MANAGED
        for key in params:
            if key in _MANAGED:
                raise ParamError(key, f"{key!r} is set by vtopt (run.seed, resources.device), not in algorithm.params")
        check_param_names(f"algorithm {self.class_name.lower()!r}", params, accepted | {"policy"})
        if self.params.get("tensorboard_log") is not None:
            try:
                import tensorboard  # noqa: F401
            except ImportError:
                raise ParamError("tensorboard_log", "needs the tensorboard package (pip install tensorboard)") from None
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
        if self.imitate:
            imitate(self.model, ctx.env, self.imitate, self.imitate_epochs, ctx.seed)
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
        """SB3's zip, plus :data:`NUMPY_ENTRY` where :func:`numpy_policy` can export the actor."""
        with open(path, "wb") as fh:
            self.model.save(fh)
        net = numpy_policy(self.model)
        if net is not None:
            buf = io.BytesIO()
            np.savez(buf, **net)
            with zipfile.ZipFile(path, "a") as zf:
                zf.writestr(NUMPY_ENTRY, buf.getvalue())

    def load(self, path: Path) -> None:
        """Read the numpy policy if the file has one (SB3 is then loaded only if needed), else SB3's model."""
        self.path, self.model, self.net = Path(path), None, None
        with zipfile.ZipFile(path) as zf:
            if NUMPY_ENTRY in zf.namelist():
                with np.load(io.BytesIO(zf.read(NUMPY_ENTRY)), allow_pickle=False) as npz:
                    net = dict(npz)
                if set(net["ops"].tolist()) <= _OPS:  # else written by a newer vtopt: use SB3
                    self.net = net
                    return
        self.model = _sb3_class(self.class_name).load(path, device="cpu")

    def predict(self, observation: np.ndarray, deterministic: bool = True) -> np.ndarray:
        if deterministic and self._model is None and self.net is not None:
            return predict_numpy(self.net, observation)
        action, _ = self.model.predict(observation, deterministic=deterministic)
        return action


def imitate(model, env, steps: int, epochs: int, seed: int, batch: int = 4096) -> None:
    """Teach ``model``'s policy the env's ``expert_action`` (DAgger) and its value head the returns.

    Rounds of ``batch`` vector steps: in each, every env acts with the
    expert's action with probability ``beta`` (1 in the first round, then
    falling to 0.2) and with the policy's own otherwise; every state is
    labelled with the expert's action. The policy is fitted by cross-entropy
    on all states gathered so far, the value head by squared error on the
    discounted returns of the finished episodes.
    """
    import structlog
    import torch

    log = structlog.get_logger(__name__)
    rng = np.random.default_rng(seed)
    policy = model.policy
    gamma = float(getattr(model, "gamma", 0.99))
    obs = env.reset()
    experts = [info.get("expert_action") for info in env.reset_infos]
    if any(e is None for e in experts):
        raise VtoptError("imitate: the environment gives no expert_action (vtopt's pool environment "
                         "gives one when it replays labels, env.actions: pool with a labels cache, or has an "
                         "advisor, env.pool.advisor)")
    states: list[np.ndarray] = []
    targets: list[int] = []
    value_x: list[np.ndarray] = []
    value_y: list[float] = []
    episodes: list[list[tuple[np.ndarray, float]]] = [[] for _ in range(env.num_envs)]
    done_steps, rounds = 0, 0
    optimizer = policy.optimizer
    while done_steps < steps:
        beta = 1.0 if rounds == 0 else max(0.2, 0.5 ** rounds)
        for _ in range(max(1, min(batch, steps - done_steps) // env.num_envs)):
            own, _ = model.predict(obs, deterministic=False)
            if any(e is None for e in experts):
                raise VtoptError("imitate: the environment stopped giving expert_action (an image without labels "
                                 "and no advisor?)")
            expert = np.asarray(experts, np.int64)
            act = np.where(rng.random(env.num_envs) < beta, expert, own)
            states.append(obs.copy())
            targets += expert.tolist()
            next_obs, rewards, dones, infos = env.step(act)
            for i in range(env.num_envs):
                episodes[i].append((obs[i].copy(), float(rewards[i])))
                if dones[i]:
                    ret = 0.0
                    for o, r in reversed(episodes[i]):
                        ret = r + gamma * ret
                        value_x.append(o)
                        value_y.append(ret)
                    episodes[i] = []
                # after an episode ends the env has reset itself: the new state's expert is in reset_infos
                experts[i] = (env.reset_infos[i] if dones[i] else infos[i]).get("expert_action")
            obs = next_obs
            done_steps += env.num_envs
        rounds += 1
        x = torch.as_tensor(np.concatenate(states), dtype=torch.float32, device=policy.device)
        y = torch.as_tensor(np.asarray(targets), device=policy.device)
        vx = torch.as_tensor(np.asarray(value_x, np.float32), device=policy.device)
        vy = torch.as_tensor(np.asarray(value_y, np.float32), device=policy.device)
        for _epoch in range(epochs):
            perm = torch.randperm(len(x))
            for start in range(0, len(x), 256):
                idx = perm[start:start + 256]
                loss = -policy.get_distribution(x[idx]).log_prob(y[idx]).mean()
                if len(vx):
                    vidx = torch.randint(len(vx), (min(256, len(vx)),))
                    loss = loss + 0.5 * ((policy.predict_values(vx[vidx]).flatten() - vy[vidx]) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            agree = float((policy.get_distribution(x).distribution.probs.argmax(1) == y).float().mean())
        log.info("imitation_round", round=rounds, states=len(x), beta=round(beta, 3), loss=round(float(loss.detach()), 4),
                 agreement=round(agree, 4))


def numpy_policy(model) -> dict[str, np.ndarray] | None:
    """What a deterministic :meth:`predict <stable_baselines3.common.base_class.BaseAlgorithm.predict>`
    of ``model`` computes, as numpy arrays; None for what it does not cover (then SB3 predicts).

    Covered: a flat Box observation through SB3's ``FlattenExtractor`` (no
    preprocessing: SB3 only casts to float32) and a Box action, or a Discrete
    one (``CategoricalDistribution``: the argmax of ``action_net(policy_net(obs))``). PPO/A2C
    (``DiagGaussianDistribution``): the mean ``action_net(policy_net(obs))``,
    clipped to the action box. SAC (``SquashedDiagGaussianDistribution``):
    ``tanh(mu(latent_pi(obs)))``, rescaled from [-1, 1] to the action box.
    Hidden layers: ``Linear`` followed by ``Tanh`` or ``ReLU``.

    The arrays: ``ops``, the steps in order (``linear``, ``tanh``, ``relu``,
    ``clip``, ``unscale``, ``argmax``); ``w{i}`` (out x in) and ``b{i}``, the float32
    weight and bias of the ``linear`` step ``i``; ``low`` and ``high``, the
    action box.
    """
    from gymnasium import spaces
    from stable_baselines3.common.distributions import (
        CategoricalDistribution,
        DiagGaussianDistribution,
        SquashedDiagGaussianDistribution,
    )
    from stable_baselines3.common.torch_layers import FlattenExtractor
    from torch import nn

    policy = model.policy
    obs_space, action_space = policy.observation_space, policy.action_space
    if not (isinstance(obs_space, spaces.Box) and len(obs_space.shape) == 1
            and isinstance(action_space, (spaces.Box, spaces.Discrete))):
        return None
    actor = getattr(policy, "actor", None)
    if isinstance(action_space, spaces.Discrete):  # PPO, A2C over a pool: the most likely action
        if type(getattr(policy, "action_dist", None)) is not CategoricalDistribution:
            return None
        extractor = policy.pi_features_extractor
        modules, tail = [*policy.mlp_extractor.policy_net, policy.action_net], ["argmax"]
    elif actor is not None:  # SAC
        if type(actor.action_dist) is not SquashedDiagGaussianDistribution or not policy.squash_output:
            return None
        extractor, modules, tail = actor.features_extractor, [*actor.latent_pi, actor.mu], ["tanh", "unscale"]
    else:  # PPO, A2C
        if type(getattr(policy, "action_dist", None)) is not DiagGaussianDistribution or policy.squash_output:
            return None
        extractor = policy.pi_features_extractor
        modules, tail = [*policy.mlp_extractor.policy_net, policy.action_net], ["clip"]
    if type(extractor) is not FlattenExtractor:
        return None
    activations = {nn.Tanh: "tanh", nn.ReLU: "relu"}
    ops: list[str] = []
    net: dict[str, np.ndarray] = {}
    for module in modules:
        if type(module) is nn.Linear and module.bias is not None:
            net[f"w{len(ops)}"] = module.weight.detach().cpu().numpy().astype(np.float32)
            net[f"b{len(ops)}"] = module.bias.detach().cpu().numpy().astype(np.float32)
            ops.append("linear")
        elif type(module) in activations:
            ops.append(activations[type(module)])
        else:
            return None
    box = isinstance(action_space, spaces.Box)
    net.update(ops=np.array(ops + tail), low=action_space.low.astype(np.float32) if box else np.zeros(1, np.float32),
               high=action_space.high.astype(np.float32) if box else np.zeros(1, np.float32))
    return net


def predict_numpy(net: dict[str, np.ndarray], observation: np.ndarray) -> np.ndarray:
    """The action for ``observation`` (one, or a batch in rows) from :func:`numpy_policy`'s arrays."""
    x = np.asarray(observation, dtype=np.float32)
    single = x.ndim == 1
    x = x.reshape(-1, x.shape[-1])
    low, high = net["low"], net["high"]
    for i, op in enumerate(net["ops"].tolist()):
        if op == "linear":
            x = x @ net[f"w{i}"].T + net[f"b{i}"]
        elif op == "clip":
            x = np.clip(x, low, high)
        elif op == "unscale":
            x = low + (0.5 * (x + 1.0) * (high - low))
        elif op == "argmax":
            x = x.argmax(axis=-1)
        else:
            x = _ACTIVATIONS[op](x)
    return x[0] if single else x


def _StubEnv():
    import gymnasium as gym


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


@hookimpl
def vtopt_baselines(budget, options):
    """``ppo``: the PPO policy shipped with vtopt (``vtopt/models/ppo.zip``, made by ``configs/default.yaml``)."""
    from vtopt import Baseline, Method, shipped

    try:
        path = shipped("ppo")
    except VtoptError:  # not shipped in this build: the other baselines go on without it
        return []
    return [Baseline("ppo", Method("ppo", budget, model=str(path)), note=f"the PPO model {path}")]


@hookimpl(trylast=True)
def vtopt_config_defaults():
    return {"algorithm": {"name": "ppo"}}
