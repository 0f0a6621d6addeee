"""Scoring a conversion: metrics, the weighted reward, and the per-image caches.

``score = sum(weight[m] * metric[m])`` over the reward's metrics. What does
not change across steps is computed once per image and kept: each metric's
prepared state and the defaults' conversion and score. Results are also kept
per (image, parameters) in an LRU cache, since the action mapping is
discrete enough for parameters to repeat.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import Any, Mapping, Sequence

import attrs
import numpy as np
import structlog

from ..config.schema import MAX_SSIM_LOSS, Config, RewardConfig, default_section
from ..errors import PluginFault
from ..plugin.components import Metric, Sample
from ..vtracer.images import LogoImage
from ..vtracer.params import DEFAULT_PARAMS, params_key
from ..vtracer.vectorize import ConversionError, IsolatedConverter, convert, render
from .diagnose import Reference, diagnose, reference

log = structlog.get_logger(__name__)


@attrs.frozen
class Outcome:
    """The result of converting one image with one parameter set."""

    params: dict[str, Any]
    score: float  # -inf when the conversion failed
    metrics: dict[str, float]
    svg_bytes: int = 0
    paths: int = 0
    svg: str | None = None
    error: str | None = None
    seconds: float = 0.0
    #: how far the SSIM fell below the quality floor (0: it qualifies); such a result scores below the defaults
    floor_excess: float = 0.0
    #: the quality metric's value (``reward.quality``, e.g. colour SSIM); NaN where it was not computed
    ssim: float = math.nan
    #: where the rendering differs from the image (:data:`vtopt.env.diagnose.DIAGNOSTICS`); empty when not measured
    diagnostics: tuple[float, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


_REFERENCE = "\0reference"  # the key of an image's diagnose.Reference among its metrics' states


@attrs.define
class _ImageCache:
    defaults: Sample
    default_outcome: Outcome


def build_scorer(pm, config: Config) -> Scorer:
    """The scorer of a config's reward."""
    return make_scorer(pm, config.reward.weights, config.env.conversion_timeout, config.reward.max_ssim_loss,
                       config.reward.params, config.reward.quality)


def full_reward(pm, weights: Mapping[str, float] | None = None, quality: str | None = None,
                max_ssim_loss: float | None = None, params: Mapping[str, Mapping[str, Any]] | None = None
                ) -> RewardConfig:
    """The reward: what is given, the rest the plugins' default reward's (``vtopt_config_defaults``).
    The metrics' ``params`` go with the weights: given weights take no default params."""
    if weights is None or quality is None or max_ssim_loss is None:
        default = default_section(pm, "reward")
        if weights is None:
            weights, params = default.weights, default.params if params is None else params
        quality = default.quality if quality is None else quality
        max_ssim_loss = default.max_ssim_loss if max_ssim_loss is None else max_ssim_loss
    return RewardConfig(weights=dict(weights), quality=quality, max_ssim_loss=float(max_ssim_loss),
                        params=dict(params or {}))


def make_scorer(pm, weights: Mapping[str, float] | None = None, timeout: float = 0.0,
                max_ssim_loss: float | None = None, metric_params: Mapping[str, Mapping[str, Any]] | None = None,
                quality: str | None = None) -> "Scorer":
    """A Scorer with the reward's metrics and the quality metric (``reward.quality``, computed for
    every result whatever the weights); ``metric_params`` maps a metric's name to its factory's params
    (``reward.params``). What is left out is the plugins' default reward's (:func:`full_reward`)."""
    reward = full_reward(pm, weights, quality, max_ssim_loss, metric_params)
    names = list(reward.weights) + ([reward.quality] if reward.quality and reward.quality not in reward.weights else [])
    return Scorer({n: pm.create("metric", n, reward.params.get(n)) for n in names}, reward.weights, timeout=timeout,
                  max_ssim_loss=reward.max_ssim_loss, metric_params=reward.params,
                  origins={n: pm.component_origin("metric", n) for n in names}, quality=reward.quality)


class Scorer:
    """Scores conversions of images with weighted metrics, relative to the defaults.

    The quality floor: a conversion whose SSIM (the quality metric's value) falls
    more than ``max_ssim_loss`` below the defaults' on the same image scores
    ``min(score, defaults' score) - excess``, below the defaults, so that it
    never wins however few bytes it takes; the defaults always qualify.
    """

    def __init__(self, metrics: Mapping[str, Metric], weights: Mapping[str, float], cache_size: int = 4096,
                 state_cache_size: int = 4, timeout: float = 0.0, max_ssim_loss: float = MAX_SSIM_LOSS,
                 metric_params: Mapping[str, Any] | None = None, origins: Mapping[str, str] | None = None,
                 quality: str | None = None, log_failures: bool = True):
        missing = sorted((set(weights) | ({quality} if quality else set())) - set(metrics))
        if missing:
            raise ValueError(f"the reward names metrics that were not given: {missing}")
        self.metrics = {n: m for n, m in metrics.items() if n in weights or n == quality}
        self.weights = dict(weights)
        self.quality = quality  # the metric whose value is a result's SSIM (reports and the quality floor)
        self.log_failures = log_failures  # False: failed conversions are not logged (they were, elsewhere)
        self.metric_params = dict(metric_params or {})  # what built the metrics (make_scorer), for cache keys
        self.origins = dict(origins or {})  # metric name -> its plugin, as errors name it
        self.max_ssim_loss = float(max_ssim_loss)
        self.cache_size, self.state_cache_size = cache_size, state_cache_size
        self.timeout = timeout  # seconds a conversion may take (0: no limit, converted in-process)
        self._isolated = IsolatedConverter(timeout) if timeout > 0 else None
        self._images: dict[LogoImage, _ImageCache] = {}  # keyed by identity; small, kept for good
        # the metrics' prepared states are large (reference statistics): an LRU of them
        self._states: OrderedDict[LogoImage, dict[str, Any]] = OrderedDict()
        self._results: OrderedDict[tuple, Outcome] = OrderedDict()
        self._said: set[str] = set()

    def __getstate__(self):
        return {"metrics": self.metrics, "weights": self.weights, "cache_size": self.cache_size,
                "state_cache_size": self.state_cache_size, "timeout": self.timeout,
                "max_ssim_loss": self.max_ssim_loss, "metric_params": self.metric_params, "origins": self.origins,
                "quality": self.quality, "log_failures": self.log_failures}

    def __setstate__(self, state):
        self.__init__(**state)

    def _fault(self, metric: str, method: str, error: BaseException | str) -> PluginFault:
        return PluginFault(self.origins.get(metric, "?"), f"metric {metric!r}", method, error)

    def _convert(self, image: LogoImage, params: dict[str, Any]) -> str:
        return self._isolated.convert(image, params) if self._isolated is not None else convert(image, params)

    def _states_of(self, image: LogoImage) -> dict[str, Any]:
        states = self._states.get(image)
        if states is None:
            states = {}
            for name, metric in self.metrics.items():
                try:
                    states[name] = metric.prepare(image)
                except Exception as exc:
                    raise self._fault(name, "prepare", exc) from exc
            self._states[image] = states
            if len(self._states) > self.state_cache_size:
                self._states.popitem(last=False)
        else:
            self._states.move_to_end(image)
        return states

    def _reference(self, image: LogoImage) -> Reference:
        """What :func:`diagnose` compares with, kept with the metrics' states (it is as large)."""
        states = self._states_of(image)
        if _REFERENCE not in states:
            states[_REFERENCE] = reference(image.rgb)
        return states[_REFERENCE]

    def _image(self, image: LogoImage) -> _ImageCache:
        cache = self._images.get(image)
        if cache is None:
            states = self._states_of(image)
            start = time.perf_counter()
            try:
                svg = self._convert(image, DEFAULT_PARAMS)
            except ConversionError as exc:
                # Without the defaults there is nothing to compare with: the image is unusable.
                raise ConversionError(f"{exc} (with VTracer's default parameters)") from None
            sample = Sample(image, svg, render(svg, *image.size), defaults=None)
            outcome = self._outcome(DEFAULT_PARAMS, sample, states, time.perf_counter() - start,
                                    ref=self._reference(image))
            if outcome.error is not None:
                raise ConversionError(f"{image.source}: {outcome.error} (on VTracer's defaults' conversion)")
            cache = _ImageCache(Sample(image, svg, None, None), outcome)  # its pixels are drawn again if asked
            self._images[image] = cache
        return cache

    def forget(self, image: LogoImage) -> None:
        """Drop everything cached for ``image`` (when it will not be seen again)."""
        self._images.pop(image, None)
        self._states.pop(image, None)
        for key in [k for k in self._results if k[0] is image]:
            del self._results[key]

    def defaults(self, image: LogoImage) -> Outcome:
        """The defaults' outcome for ``image`` (computed once)."""
        return self._image(image).default_outcome

    def evaluate(self, image: LogoImage, params: dict[str, Any], keep_svg: bool = False) -> Outcome:
        """Convert, render and score; a failed conversion gives score -inf and an error."""
        cache = self._image(image)
        key = (image, params_key(params))
        hit = self._results.get(key)
        if hit is not None and (hit.svg is not None or not keep_svg or not hit.ok):
            self._results.move_to_end(key)
            return hit
        start = time.perf_counter()
        try:
            svg = self._convert(image, params)
            sample = Sample(image, svg, render(svg, *image.size), defaults=cache.defaults)
        except (ConversionError, ValueError) as exc:
            self._say(image, params, str(exc))
            failed = Outcome(dict(params), -math.inf, {}, error=str(exc), seconds=time.perf_counter() - start)
            self._results[key] = failed  # a parameter set that failed (or timed out) is not tried again
            return failed
        outcome = self._outcome(params, sample, self._states_of(image), time.perf_counter() - start, keep_svg,
                                cache.default_outcome, self._reference(image))
        if outcome.error is not None:  # a metric's fault
            self._say(image, params, outcome.error)
        self._results[key] = outcome
        if len(self._results) > self.cache_size:
            self._results.popitem(last=False)
        return outcome

    def score_svg(self, image: LogoImage, params: dict[str, Any], svg: str) -> Outcome:
        """Render and score a given SVG of ``image`` (a post-processed result) as :meth:`evaluate` scores a
        conversion: relative to VTracer's raw defaults, under the quality floor. Raises ConversionError
        when the SVG cannot be rendered; a metric's fault is the Outcome's error."""
        cache = self._image(image)
        start = time.perf_counter()
        sample = Sample(image, svg, render(svg, *image.size), defaults=cache.defaults)
        return self._outcome(params, sample, self._states_of(image), time.perf_counter() - start, True,
                             cache.default_outcome, self._reference(image))

    def _say(self, image: LogoImage, params: dict[str, Any], error: str) -> None:
        """A failed conversion, logged once per message (by this scorer: in each env process of a run)."""
        if self.log_failures and error not in self._said:
            self._said.add(error)
            log.warning("conversion_failed", image=image.source, params=params, error=error)

    def _outcome(self, params, sample: Sample, states, seconds: float, keep_svg: bool = True,
                 default: Outcome | None = None, ref: Reference | None = None) -> Outcome:
        values = {}
        for name, metric in self.metrics.items():
            try:
                value = metric.compute(sample, states[name])
            except Exception as exc:
                raise self._fault(name, "compute", exc) from exc
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
                # not a reward: the conversion counts as failed
                error = f"{self._fault(name, 'compute', f'returned {value!r}, not a finite number')}"
                return Outcome(dict(params), -math.inf, {}, error=error, seconds=seconds)
            values[name] = float(value)
        score = float(sum(w * values[name] for name, w in self.weights.items()))
        outcome = Outcome(dict(params), score, values, sample.svg_bytes, sample.paths,
                          sample.svg if keep_svg else None, None, seconds, ssim=values.get(self.quality, math.nan),
                          diagnostics=diagnose(ref, sample.rendered) if ref is not None else ())
        if default is None or math.isnan(outcome.ssim) or math.isnan(default.ssim):
            return outcome
        excess = default.ssim - self.max_ssim_loss - outcome.ssim
        if excess <= 0:
            return outcome
        # below the quality floor: never better than the defaults
        return attrs.evolve(outcome, score=min(score, default.score) - excess, floor_excess=excess)


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means over result rows (episodes, optimised images); bytes as a geometric-mean ratio to the defaults."""
    def mean(key):
        values = [r[key] for r in rows if r.get(key) is not None and not math.isnan(r[key])]
        return float(np.mean(values)) if values else None

    ratios = [r["bytes"] / r["default_bytes"] for r in rows if r.get("default_bytes")]
    losses = [r["default_ssim"] - r["ssim"] for r in rows
              if r.get("ssim") is not None and r.get("default_ssim") is not None]
    losses = [v for v in losses if math.isfinite(v)]
    return {
        "images": len(rows),
        "mean_ssim": mean("ssim"),
        "default_mean_ssim": mean("default_ssim"),
        "mean_bytes": mean("bytes"),
        "default_mean_bytes": mean("default_bytes"),
        "bytes_ratio": float(np.exp(np.mean(np.log(ratios)))) if ratios else None,
        "mean_score": mean("score"),
        "default_mean_score": mean("default_score"),
        "mean_improvement": mean("improvement"),
        "worst_ssim_loss": float(max(losses)) if losses else None,  # the largest per-image SSIM drop
    }
