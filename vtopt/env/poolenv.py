"""The environment whose actions choose, then refine (``env.actions: pool``).

An action is one of ``len(pool) + len(MOVES)`` choices (a gymnasium
``Discrete`` space):

- ``j < len(pool)``: convert candidate ``j`` of the pool (:func:`vtopt.make_pool`,
  the same pool as the portfolio's and the chooser's);
- ``len(pool) + m``: apply refinement move ``MOVES[m]`` to the best parameter
  set so far (VTracer's defaults until something beats them): one parameter
  a step along its range, clamped to :data:`vtopt.SPACE`. With ``moves=False``
  (``env.pool.moves: false``) there are none: picks only, every step a lookup
  under replay.

Reward and return are the box environment's (:class:`vtopt.env.VTracerEnv`):
each step earns the improvement of the episode's best score, so an
episode's return is ``best score - defaults' score`` (never below zero),
minus ``failure_reward`` for each failed conversion. A set tried before
earns nothing more (it cannot raise the best), and costs no conversion:
outcomes are kept per image for the env's life. It still spends a step of
the episode's budget.

**Replay.** Given :class:`vtopt.Labels` for its images (every candidate's
real score on every image, :func:`vtopt.label`), picking a candidate is a
lookup: the reward is exactly what converting it gives, because the label
*was* that conversion, made earlier with the same reward (the label cache is
keyed by it); a replayed result carries no SVG. The defaults' result comes from the labels too. Refinement
moves, and sets an algorithm proposes (``apply``), convert for real unless
they land on a labelled candidate or on a set already converted.

Observation (all in [-1, 1]): the image's features; the defaults' SSIM,
bytes and paths; the best set so far (as in the box env) and its score over
the defaults'; what the last step returned (score and SSIM over the
defaults', log2 bytes over the defaults', all -1 for a failure); the share
of the episode's steps left; which candidates were already tried (1 each).

**Advice.** With an ``advisor`` (``env.pool.advisor``: a fitted chooser of the
same pool, :class:`Advisor`), the observation also carries, for every
candidate, the gain the advisor predicts for converting it now, and a 1 on the
candidate it would pick: the policy learns on top of the chooser's judgement
(and its imitation, ``expert_action``, is the advisor's pick) instead of from
nothing. The advisor is told every result, the refinements' included.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import gymnasium as gym
import numpy as np

from ..config.schema import PoolConfig
from ..vtracer.images import N_FEATURES, LogoImage
from ..vtracer.params import DEFAULT_PARAMS, SPACE, action_size, check_params, params_key, params_to_unit
from .episodes import _IMPROVEMENT_SCALE, observation_size
from .gymenv import VTracerEnv
from .labels import CELL, FAILED, HEAD, Labels, label, make_pool
from .scoring import Outcome, Scorer, make_scorer

#: Refinement moves: (parameter, operation, amount). ``*`` and ``/`` scale (moving by at least 1),
#: ``+`` adds (a negative amount subtracts), ``toggle`` takes the other choice. Results are clamped to SPACE.
MOVES: tuple[tuple[str, str, float], ...] = (
    ("layer_difference", "*", 1.5), ("layer_difference", "/", 1.5),
    ("color_precision", "+", 1), ("color_precision", "+", -1),
    ("filter_speckle", "+", 2), ("filter_speckle", "+", -2),
    ("path_precision", "+", 1), ("path_precision", "+", -1),
    ("corner_threshold", "+", 20), ("corner_threshold", "+", -20),
    ("splice_threshold", "+", 20), ("splice_threshold", "+", -20),
    ("length_threshold", "+", 1.0), ("length_threshold", "+", -1.0),
    ("mode", "toggle", 0), ("hierarchical", "toggle", 0),
)
_DIMS = {d.name: d for d in SPACE}
_SIGNAL_SCALE = 20.0  # as the chooser's: a score 0.05 above the defaults' reads as 1
_BEST = N_FEATURES + 3  # where the best set's unit vector starts in the observation
_HEAD = _BEST + len(SPACE) + 1 + 3 + 1  # the observation before the tried-candidates mask


def pool_observation_size(pool_size: int, advised: bool = False) -> int:
    """The length of :class:`PoolEnv`'s observation for a pool of ``pool_size`` candidates (with an advisor:
    its predicted gains and pick, one each per candidate)."""
    return _HEAD + pool_size * (3 if advised else 1)


def same_pool(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> bool:
    """Whether two pools hold the same parameter sets in the same order (an advisor's and an env's)."""
    return [params_key(p) for p in a] == [params_key(p) for p in b]


@runtime_checkable
class Advisor(Protocol):
    """A fitted policy over the same pool whose judgement a :class:`PoolEnv` observation carries
    (the ``chooser`` algorithm is one)."""

    pool: list[dict[str, Any]]

    def start_image(self, image: LogoImage, default: Any = None) -> None:
        """A new episode on ``image``; ``default``: the defaults' Outcome."""

    def observe(self, params: dict[str, Any], score: float, outcome: Any = None) -> None:
        """A result of this episode (-inf for a failure), with its whole Outcome."""

    def advise(self) -> tuple[np.ndarray, int]:
        """Per candidate, the predicted gain of converting it now, in [-1, 1]; and the candidate it would pick."""


def move(params: Mapping[str, Any], which: tuple[str, str, float]) -> dict[str, Any]:
    """``params`` with one refinement move (an item of :data:`MOVES`) applied, clamped to its range."""
    name, op, amount = which
    dim, value = _DIMS[name], params[name]
    out = dict(params)
    if op == "toggle":
        out[name] = dim.choices[1 - dim.choices.index(value)]
        return out
    if op == "*":
        new = max(round(value * amount), value + 1)
    elif op == "/":
        new = min(round(value / amount), value - 1)
    elif op == "+":
        new = value + amount
    else:
        raise ValueError(f"unknown move operation {op!r}")
    new = min(max(new, dim.low), dim.high)
    out[name] = int(round(new)) if dim.integer else float(round(new / dim.step) * dim.step)
    return out


class PoolEnv(VTracerEnv):
    """Pick a candidate of ``pool`` or refine the best set so far, for one image in ``conversions - 1`` steps;
    with ``labels`` (rows in the order of ``images``, columns in the pool's) labelled picks are lookups."""

    def __init__(self, images: Sequence[LogoImage], scorer: Scorer, conversions: int = 4,
                 pool: Sequence[Mapping[str, Any]] = (), labels: Labels | None = None, keep_svg: bool = False,
                 reference: Sequence[Mapping[str, Any]] | None = None, moves: bool = True,
                 advisor: Advisor | None = None):
        super().__init__(images, scorer, conversions, keep_svg=keep_svg, reference=reference)
        if not pool:
            raise ValueError("PoolEnv needs a pool of at least one parameter set")
        self.pool = [check_params(dict(p)) for p in pool]
        self._index = {params_key(p): j for j, p in enumerate(self.pool)}
        if len(self._index) != len(self.pool):
            raise ValueError("the pool holds the same parameter set twice")
        if labels is not None and labels.table.shape != (len(self.images), HEAD + CELL * len(self.pool)):
            raise ValueError(f"labels of shape {labels.table.shape} do not fit {len(self.images)} images and a pool of "
                             f"{len(self.pool)} (expected {(len(self.images), HEAD + CELL * len(self.pool))})")
        self.labels = labels
        if labels is not None:  # plain Python floats: a lookup is then an index, no numpy scalar
            self._rows = labels.table.tolist()
            self._orders: dict[int, list[int]] = {}  # per image: the candidates, best label first
        if advisor is not None:
            if not isinstance(advisor, Advisor):
                raise ValueError(f"the advisor {type(advisor).__name__} does not advise (start_image, observe, advise)")
            if not same_pool(advisor.pool, self.pool):
                raise ValueError(f"the advisor's pool ({len(advisor.pool)} candidates) is not this env's "
                                 f"({len(self.pool)}): train the advisor on the same env.pool")
        # its own copy: an advisor holds the episode's state, and envs (training, evaluation) may share one
        self.advisor = copy.deepcopy(advisor)
        self._pick_advised = -1
        self.moves = MOVES if moves else ()
        self.action_space = gym.spaces.Discrete(len(self.pool) + len(self.moves))
        size = pool_observation_size(len(self.pool), advisor is not None)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (size,), dtype=np.float32)
        self._units = [params_to_unit(p) for p in self.pool]
        self._default_unit = params_to_unit(DEFAULT_PARAMS)
        self._seen: dict[int, dict[tuple, Outcome]] = {}  # per image: the outcomes of sets converted here
        self._heads: dict[int, tuple[Outcome, np.ndarray, float]] = {}  # per image: defaults, observation head
        self._obs = np.zeros(size, np.float32)
        self.tried = self._obs[_HEAD:_HEAD + len(self.pool)]  # a view: which candidates this episode tried
        self.last_replayed = False  # whether the last step was a label lookup
        self._last_unit: np.ndarray | None = None  # the last outcome's params as a unit vector, when known

    # -- gymnasium API -----------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        gym.Env.reset(self, seed=seed)
        index = (options or {}).get("image")
        self.index = self._pick() if index is None else int(index)
        self.image = self.images[self.index]
        head = self._heads.get(self.index)
        if head is None:
            if self.labels is not None:
                row = self._rows[self.index]
                score, ssim, nbytes, paths = row[:4]
                d = Outcome(dict(DEFAULT_PARAMS), score, {}, int(nbytes), int(paths), ssim=ssim,
                            diagnostics=tuple(row[4:HEAD]))
            else:
                d = self.scorer.defaults(self.image)
            decoded = "rgb" in vars(self.image)
            features = self.image.features
            if self.advisor is not None:  # it reads the pixels on its first sight of an image (and keeps what it needs)
                self.advisor.start_image(self.image, default=d)
            if self.labels is not None and not decoded:  # replayed picks need no pixels: keep none per image
                vars(self.image).pop("rgb", None)
            values = np.concatenate([features, [d.ssim if not math.isnan(d.ssim) else 0.0,
                                     math.log2(max(d.svg_bytes, 1)) / 24.0, math.log2(d.paths + 1) / 16.0]])
            head = self._heads[self.index] = (d, np.clip(values, -1.0, 1.0), math.log2(max(d.svg_bytes, 1)))
        self.default, values, self._log_default_bytes = head
        self.best = self.last = self.default
        self._best_unit = self._default_unit
        self.steps_left = self.conversions - 1
        self.failures = 0
        self.errors: list[str] = []
        self._obs[:] = 0.0
        self._obs[:N_FEATURES + 3] = values
        self._tried: set[int] = set()
        if self.advisor is not None:
            self.advisor.start_image(self.image, default=self.default)
        return self._observation(), self._expert({})

    def step(self, action):
        if self.image is None:
            raise RuntimeError("call reset() before step()")
        a = int(np.asarray(action).reshape(-1)[0]) if not isinstance(action, (int, np.integer)) else int(action)
        if not 0 <= a < self.action_space.n:
            raise ValueError(f"action {a} is outside Discrete({self.action_space.n})")
        if a < len(self.pool):
            return self._advance(self._candidate(a))
        params = move(self.best.params, self.moves[a - len(self.pool)])
        return self._advance(self._evaluate(params))

    def _advance(self, outcome: Outcome):
        if outcome.ok and outcome.score > self.best.score:
            unit = self._last_unit
            self._best_unit = unit if unit is not None else params_to_unit(outcome.params)
        if self.advisor is not None:
            self.advisor.observe(outcome.params, outcome.score, outcome)
        result = super()._advance(outcome)
        self._expert(result[4])
        return result

    def _expert(self, info: dict[str, Any]) -> dict[str, Any]:
        """With labels, ``info["expert_action"]``: the untried candidate with the best label on this image
        (what an agent that knew every label would pick next; for imitation, the ``imitate`` of PPO/A2C);
        with an advisor, its pick (the footing to learn from)."""
        if self.advisor is not None and self._pick_advised >= 0:
            info["expert_action"] = self._pick_advised
        elif self.labels is not None:
            order = self._orders.get(self.index)
            if order is None:
                order = self._orders[self.index] = np.argsort(-self.labels.scores[self.index], kind="stable").tolist()
            info["expert_action"] = next((j for j in order if j not in self._tried), order[0])
        return info

    def action_params(self, action: int) -> dict[str, Any]:
        """The parameter set ``action`` would try now (a candidate, or a move from the best so far)."""
        a = int(action)
        return dict(self.pool[a]) if a < len(self.pool) else move(self.best.params, self.moves[a - len(self.pool)])

    # -- outcomes ------------------------------------------------------------
    def _candidate(self, j: int) -> Outcome:
        self.tried[j] = 1.0
        self._tried.add(j)
        if self.labels is None:
            outcome = self._convert(self.pool[j])
            self._last_unit = self._units[j]
            return outcome
        self.last_replayed = True
        self._last_unit = self._units[j]
        return self._label(j)

    def _label(self, j: int) -> Outcome:
        base = HEAD + CELL * j
        cell = self._rows[self.index][base:base + CELL]
        score, ssim, nbytes = cell[:3]
        if score == FAILED and nbytes == 0:
            return Outcome(self.pool[j], -math.inf, {}, error=f"{self.image.source}: the conversion failed when "
                                                              "it was labelled")
        return Outcome(self.pool[j], score, {}, int(nbytes), ssim=ssim, diagnostics=tuple(cell[3:]))

    def _evaluate(self, params: dict[str, Any]) -> Outcome:
        """A complete, checked set: a pool candidate's label, else a conversion (once per image and set)."""
        j = self._index.get(params_key(params))
        if j is not None:
            return self._candidate(j)
        return self._convert(params)

    def _reference_outcome(self, params: dict[str, Any]) -> Outcome:
        """A reference set (the curriculum's): its label when it is a labelled candidate, else converted
        (once per image); it changes nothing the agent observes."""
        j = self._index.get(params_key(params))
        return self._label(j) if j is not None and self.labels is not None else self._converted(params)

    def _convert(self, params: dict[str, Any]) -> Outcome:
        self.last_replayed = False
        self._last_unit = None
        return self._converted(params)

    def _converted(self, params: dict[str, Any]) -> Outcome:
        seen = self._seen.setdefault(self.index, {})
        key = params_key(params)
        hit = seen.get(key)
        if hit is None or (self.keep_svg and hit.ok and hit.svg is None):
            hit = seen[key] = self.scorer.evaluate(self.image, params, keep_svg=self.keep_svg)
        return hit

    def _observation(self) -> np.ndarray:
        obs, d, best, last = self._obs, self.default, self.best, self.last
        obs[_BEST:_BEST + len(SPACE)] = self._best_unit
        if last is d:
            signal = (0.0, 0.0, 0.0)
        elif not last.ok:
            signal = (-1.0, -1.0, -1.0)
        else:
            signal = ((last.score - d.score) * _SIGNAL_SCALE,
                      (last.ssim - d.ssim) * _SIGNAL_SCALE if not math.isnan(last.ssim - d.ssim) else -1.0,
                      (math.log2(max(last.svg_bytes, 1)) - self._log_default_bytes) / 4.0)
        values = ((best.score - d.score) * _IMPROVEMENT_SCALE, *signal, self.steps_left / max(self.conversions - 1, 1))
        obs[_BEST + len(SPACE):_HEAD] = [min(max(v, -1.0), 1.0) for v in values]
        if self.advisor is not None:
            k = len(self.pool)
            gains, self._pick_advised = self.advisor.advise()
            obs[_HEAD + k:_HEAD + 2 * k] = gains
            obs[_HEAD + 2 * k:] = 0.0
            if self._pick_advised >= 0:
                obs[_HEAD + 2 * k + self._pick_advised] = 1.0
        return obs.copy()


def make_pool_env(config, images: Sequence[LogoImage], scorer: Scorer, replay: bool | None = None,
                  keep_svg: bool = False, reference: Sequence[Mapping[str, Any]] | None = None,
                  advisor: Advisor | None = None) -> PoolEnv:
    """A :class:`PoolEnv` as a config (:class:`vtopt.config.Config`, or a loaded one) makes it for ``images``:
    the pool of ``env.pool``, and with replay (``env.pool.replay`` unless ``replay`` says) the images
    labelled first (:func:`pool_labels`). A config with ``env.pool.advisor`` needs that advisor, loaded
    (``vtopt.apply.model.load_advisor(pm, spec, config_path, pool=...).advisor``): the observation carries its advice."""
    cfg = getattr(config, "config", config)
    pool = config_pool(cfg)
    named = cfg.env.pool.advisor if cfg.env.pool is not None else None
    if (named is None) != (advisor is None):
        raise ValueError(f"env.pool.advisor is {named!r}: give make_pool_env that advisor, loaded (advisor=...)"
                         if named is not None else "an advisor was given, but the config's env.pool.advisor is none")
    use_labels = cfg.env.pool.replay if replay is None and cfg.env.pool is not None else bool(replay)
    labels = pool_labels(cfg, images, scorer, pool) if use_labels else None
    moves = cfg.env.pool.moves if cfg.env.pool is not None else True
    return PoolEnv(images, scorer, cfg.env.conversions_per_episode, pool, labels, keep_svg=keep_svg,
                   reference=reference, moves=moves, advisor=advisor)


def config_pool(cfg) -> list[dict[str, Any]]:
    """The candidates of a config's ``env.pool`` (its defaults where the config has none)."""
    spec = cfg.env.pool or PoolConfig()
    return make_pool(spec.size, spec.seed, spec.extra)


def pool_labels(cfg, images: Sequence[LogoImage], scorer: Scorer, pool: Sequence[Mapping[str, Any]]) -> Labels:
    """Every candidate's label on every image (:func:`vtopt.label`: cached in ``env.pool.labels``, the
    missing ones converted in ``env.pool.workers`` processes, with progress in the log)."""
    from pathlib import Path

    spec = cfg.env.pool or PoolConfig()
    cache = Path(spec.labels).expanduser() if spec.labels else None
    return label(images, scorer, list(pool), cache, spec.workers)


def make_gym_env(images: Any = None, reward: Mapping[str, float] | None = None, conversions: int = 4,
                 max_ssim_loss: float | None = None, max_size: int = 256, actions: str = "box",
                 pool: Any = 128, labels: str | None = None, workers: int = 0, moves: bool = True) -> VTracerEnv:
    """``gymnasium.make("vtopt/VTracer-v0", images=..., reward=..., conversions=...)``: the environment
    for any RL library. ``images``: a folder, image files, or :class:`LogoImage` objects (default: the
    sample icons shipped with vtopt); ``reward``: metric weights (default: the plugins' default reward,
    ``vtopt_config_defaults``), metrics from every installed plugin; ``conversions``: per episode, VTracer's defaults included.

    ``actions="pool"`` gives a :class:`vtopt.PoolEnv` (a ``Discrete`` action space): ``pool`` is its
    candidates, a size (``vtopt.make_pool(pool, seed=0)``) or a list of parameter sets; with ``labels``, a
    label cache folder, the images are labelled first (``workers`` processes, 0: one per core) and
    labelled picks replay their labels; without, every set converts (once per image); ``moves=False``: picks only."""
    if actions not in ("box", "pool"):
        raise ValueError(f"actions must be 'box' or 'pool', got {actions!r}")
    from pathlib import Path

    from ..plugin.manager import PluginManager
    from ..vtracer.images import SAMPLES, load_image
    from .data import load_folder

    if images is None or isinstance(images, (str, bytes)) or hasattr(images, "is_dir"):
        folder = Path(images) if images is not None else SAMPLES
        if folder.is_dir():
            images, _ = load_folder(folder, None, max_size)
        else:
            images = [load_image(folder, "image", max_size)]
    else:
        images = [i if isinstance(i, LogoImage) else load_image(Path(i), "image", max_size) for i in images]
    scorer = make_scorer(PluginManager(), dict(reward) if reward else None, max_ssim_loss=max_ssim_loss)
    if actions == "box":
        return VTracerEnv(images, scorer, conversions)
    sets = make_pool(pool, 0) if isinstance(pool, int) else [dict(p) for p in pool]
    replay = label(images, scorer, sets, Path(labels).expanduser(), workers) if labels is not None else None
    return PoolEnv(images, scorer, conversions, sets, replay, moves=moves)



# -- model files ---------------------------------------------------------------


def pool_meta(pool: Sequence[Mapping[str, Any]] | None, moves: bool = True, advised: Any = None) -> dict[str, Any]:
    """What a model file trained on a :class:`PoolEnv` of ``pool`` records (``vtopt.json``), so that
    ``optimize`` and ``evaluate`` rebuild the same env (``advised``: its advisor, an ``Advised``: where it
    is loaded from and its file's sha256); empty for the box env."""
    if pool is None:
        return {}
    return {"env": {"actions": "pool", "pool": [dict(p) for p in pool], "moves": moves,
                    "advisor": advised.spec if advised else None, "advisor_sha256": advised.sha256 if advised else None},
            "observation_size": pool_observation_size(len(pool), advised is not None),
            "action_size": len(pool) + len(MOVES) * moves}


def model_sizes(meta: Mapping[str, Any]) -> tuple[int, int]:
    """(observation size, action size) this vtopt gives the model ``meta`` describes."""
    env = meta.get("env") or {}
    if env.get("pool") is not None:
        return (pool_observation_size(len(env["pool"]), env.get("advisor") is not None),
                len(env["pool"]) + len(MOVES) * env.get("moves", True))
    return observation_size(), action_size()


def model_env(meta: Mapping[str, Any], images: Sequence[LogoImage], scorer: Scorer, conversions: int,
              keep_svg: bool = False, advisor: Advisor | None = None) -> VTracerEnv:
    """The environment a model (its ``vtopt.json``) acts in: a :class:`PoolEnv` of its pool (converting
    for real; ``advisor``: the one its ``env.advisor`` names, loaded), or the box env."""
    env = meta.get("env") or {}
    if env.get("pool") is not None:
        if (env.get("advisor") is not None) != (advisor is not None):
            raise ValueError(f"the model was trained with advisor {env.get('advisor')!r}: give it that advisor")
        return PoolEnv(images, scorer, conversions, env["pool"], keep_svg=keep_svg, moves=env.get("moves", True),
                       advisor=advisor)
    return VTracerEnv(images, scorer, conversions, keep_svg=keep_svg)
