"""One image's episode of conversions, without gymnasium.

What ``optimize``, ``evaluate`` and the search algorithms step through:
:class:`vtopt.env.gymenv.VTracerEnv` is this with gymnasium's spaces and seeding,
and importing gymnasium costs more than a tenth of a one-image ``optimize``.

Reward: the improvement of the episode's best score over the best so far,
which starts at the score of VTracer's defaults (computed once per image and
cached, and counted as the episode's first conversion). An episode's return
is therefore exactly ``best score - defaults' score`` (never below zero),
minus ``failure_reward`` for each conversion that failed.

Observation (all in [-1, 1]): the image's features, the defaults' result,
the best parameters so far, the best improvement so far, and the share of
the episode's conversions left.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..vtracer.images import N_FEATURES, LogoImage
from ..vtracer.params import action_size, action_to_params, check_params, params_to_unit
from .scoring import Outcome, Scorer

_IMPROVEMENT_SCALE = 20.0  # observation scale: an improvement of 0.05 reads as 1
FAILURE_REWARD = -0.1  # far below any real improvement (typically 0 to 0.03)


def observation_size() -> int:
    return N_FEATURES + 3 + action_size() + 2


class ImageEpisodes:
    """Choose VTracer parameters for one image in ``conversions - 1`` steps.

    :meth:`reset` serves the image its options name; without one, an image is
    picked with ``self.np_random``, which :class:`vtopt.env.gymenv.VTracerEnv` has
    (gymnasium's seeded generator).
    """

    def __init__(self, images: Sequence[LogoImage], scorer: Scorer, conversions: int = 4, keep_svg: bool = False,
                 reference: Sequence[Mapping[str, Any]] | None = None):
        if not images:
            raise ValueError(f"{type(self).__name__} needs at least one image")
        if conversions < 2:
            raise ValueError("conversions must be at least 2 (the defaults' conversion counts as one)")
        self.images = list(images)
        self.scorer = scorer
        self.conversions = conversions
        self.keep_svg = keep_svg  # keep every outcome's SVG text (to write the best one out)
        # parameter sets whose best result each finished episode is also compared with (converted once
        # per image; training only)
        self.reference = [dict(p) for p in reference] if reference else None
        self._reference_scores: dict[int, float] = {}
        self._by_kind: dict[str, list[int]] = {}
        for i, image in enumerate(self.images):
            self._by_kind.setdefault(image.kind, []).append(i)
        self._weights: dict[str, float] = {}
        self.image: LogoImage | None = None

    # -- curriculum --------------------------------------------------------
    def set_kind_weights(self, weights: Mapping[str, float]) -> None:
        """Serve kinds in proportion to ``weights`` (kinds absent here get none)."""
        self._weights = {k: float(w) for k, w in weights.items() if w > 0 and k in self._by_kind}

    def _pick(self) -> int:
        if self._weights:
            kinds = sorted(self._weights)
            p = np.array([self._weights[k] for k in kinds])
            kind = kinds[int(self.np_random.choice(len(kinds), p=p / p.sum()))]
            pool = self._by_kind[kind]
            return pool[int(self.np_random.integers(len(pool)))]
        return int(self.np_random.integers(len(self.images)))

    # -- gymnasium API -----------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        index = (options or {}).get("image")
        self.index = self._pick() if index is None else int(index)
        self.image = self.images[self.index]
        self.default = self.scorer.defaults(self.image)
        self.best = self.default
        self.steps_left = self.conversions - 1
        self.failures = 0
        self.errors: list[str] = []
        return self._observation(), {}

    def step(self, action):
        return self.apply(action_to_params(action))

    def apply(self, params: Mapping[str, Any]):
        """A step with a parameter set instead of an action (for search algorithms)."""
        if self.image is None:
            raise RuntimeError("call reset() before step()")
        try:  # a partial set is completed with VTracer's defaults
            params = check_params(dict(params))
        except ValueError as exc:  # an algorithm's impossible proposal is a failed conversion
            outcome = Outcome(dict(params), -math.inf, {}, error=f"{self.image.source}: {exc}")
        else:
            outcome = self._evaluate(params)
        return self._advance(outcome)

    def _evaluate(self, params: dict[str, Any]) -> Outcome:
        """The outcome of a complete, checked parameter set on the current image."""
        return self.scorer.evaluate(self.image, params, keep_svg=self.keep_svg)

    def _reference_outcome(self, params: dict[str, Any]) -> Outcome:
        """A reference set's outcome on the current image (not a step of the episode)."""
        return self.scorer.evaluate(self.image, params)

    def _advance(self, outcome: Outcome):
        """The step that ``outcome`` makes: reward, best so far, budget, episode end."""
        if outcome.ok:
            reward = max(0.0, outcome.score - self.best.score)
            if outcome.score > self.best.score:
                self.best = outcome
        else:
            reward = FAILURE_REWARD
            self.failures += 1
            self.errors.append(outcome.error)
        self.steps_left -= 1
        terminated = self.steps_left <= 0
        self.last = outcome
        info = {"score": outcome.score if outcome.ok else None, "error": outcome.error}
        if terminated:
            info["vtopt_episode"] = self.episode_summary()
        return self._observation(), float(reward), terminated, False, info

    def episode_summary(self) -> dict[str, Any]:
        """Scalars only: what monitors and the curriculum see of a finished episode."""
        best, default = self.best, self.default
        extra = {}
        if self.reference is not None:
            if self.index not in self._reference_scores:
                scores = [o.score for o in (self._reference_outcome(check_params(dict(p))) for p in self.reference)
                          if o.ok]
                self._reference_scores[self.index] = max(scores + [default.score])
            extra["reference_improvement"] = self._reference_scores[self.index] - default.score
        return {**extra,
            "image": self.image.name,
            "kind": self.image.kind,
            "improvement": best.score - default.score,
            "score": best.score,
            "default_score": default.score,
            "ssim": best.ssim,
            "default_ssim": default.ssim,
            "bytes": best.svg_bytes,
            "default_bytes": default.svg_bytes,
            "failures": self.failures,
            "errors": list(self.errors),
            "params": best.params,
        }

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the process holding this env (for benchmarks)."""
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def _observation(self) -> np.ndarray:
        default, best = self.default, self.best
        head = [
            default.ssim if not math.isnan(default.ssim) else 0.0,
            math.log2(max(default.svg_bytes, 1)) / 24.0,
            math.log2(default.paths + 1) / 16.0,
        ]
        tail = [
            (best.score - default.score) * _IMPROVEMENT_SCALE,
            self.steps_left / max(self.conversions - 1, 1),
        ]
        obs = np.concatenate([self.image.features, head, params_to_unit(best.params), tail]).astype(np.float32)
        return np.clip(obs, -1.0, 1.0)
