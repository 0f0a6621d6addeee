"""VTracer's parameter space: defaults, ranges, and the action mapping.

The Python binding checks nothing (floats in int slots raise TypeError,
``color_precision=0`` panics, unknown strings silently fall back), so every
parameter set vtopt passes to VTracer is built here and checked here.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

#: VTracer's CLI defaults: the binding's defaults plus ``path_precision=2``.
#: Every "relative to the defaults" figure in vtopt is relative to these.
DEFAULT_PARAMS: dict[str, Any] = {
    "colormode": "color",
    "hierarchical": "stacked",
    "mode": "spline",
    "filter_speckle": 4,
    "color_precision": 6,
    "layer_difference": 16,
    "corner_threshold": 60,
    "length_threshold": 4.0,
    "max_iterations": 10,
    "splice_threshold": 45,
    "path_precision": 2,
}


@attrs.frozen
class Dim:
    """One searched parameter: a choice, or a number in VTracer's real range.

    ``log`` spreads the action range evenly over log(1 + value), so that the
    small values, where the parameter matters, get as much of the action as
    the large ones.
    """

    name: str
    low: float = 0.0
    high: float = 1.0
    integer: bool = True
    choices: tuple[str, ...] = ()
    log: bool = False
    step: float = 0.0  # quantum for floats, so that results can be cached

    def from_unit(self, u: float) -> Any:
        """Map u in [-1, 1] to a value; every u gives a valid value."""
        t = (min(max(float(u), -1.0), 1.0) + 1.0) / 2.0
        if self.choices:
            return self.choices[min(int(t * len(self.choices)), len(self.choices) - 1)]
        if self.log:
            lo, hi = math.log1p(self.low), math.log1p(self.high)
            x = math.expm1(lo + t * (hi - lo))
        else:
            x = self.low + t * (self.high - self.low)
        if self.integer:
            return int(min(max(round(x), self.low), self.high))
        return float(min(max(round(x / self.step) * self.step, self.low), self.high))

    def to_unit(self, value: Any) -> float:
        """Inverse of :meth:`from_unit` (the centre of the value's interval)."""
        if self.choices:
            return (self.choices.index(value) + 0.5) / len(self.choices) * 2.0 - 1.0
        if self.log:
            lo, hi = math.log1p(self.low), math.log1p(self.high)
            t = (math.log1p(value) - lo) / (hi - lo)
        else:
            t = (value - self.low) / (self.high - self.low)
        return float(np.clip(t * 2.0 - 1.0, -1.0, 1.0))

    def check(self, value: Any) -> str | None:
        if self.choices:
            return None if value in self.choices else f"must be one of {list(self.choices)}"
        if self.integer and (not isinstance(value, int) or isinstance(value, bool)):
            return "must be an integer"
        if not self.integer and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            return "must be a number"
        if not self.low <= value <= self.high:
            return f"must be in [{self.low:g}, {self.high:g}]"
        return None


#: The searched space. Ranges are VTracer's CLI ranges; mode excludes "none"
#: (pixel output, never useful for logos) and path_precision stops at 6
#: decimals (more only adds bytes at 256 px).
SPACE: tuple[Dim, ...] = (
    Dim("mode", choices=("spline", "polygon")),
    Dim("hierarchical", choices=("stacked", "cutout")),
    Dim("filter_speckle", 0, 16),
    Dim("color_precision", 1, 8),
    Dim("layer_difference", 0, 255, log=True),
    Dim("corner_threshold", 0, 180),
    Dim("length_threshold", 3.5, 10.0, integer=False, step=0.25),
    Dim("splice_threshold", 0, 180),
    Dim("path_precision", 0, 6),
)
_FIXED = {k: v for k, v in DEFAULT_PARAMS.items() if k not in {d.name for d in SPACE}}
_BY_NAME = {d.name: d for d in SPACE}


def action_size() -> int:
    return len(SPACE)


def action_to_params(action: np.ndarray) -> dict[str, Any]:
    """Map an action in [-1, 1]^n (clipped) to a full, valid parameter set."""
    values = np.asarray(action, dtype=np.float64).reshape(-1)
    if values.shape[0] != len(SPACE):
        raise ValueError(f"action has {values.shape[0]} values, expected {len(SPACE)}")
    params = dict(_FIXED)
    for dim, u in zip(SPACE, values):
        params[dim.name] = dim.from_unit(0.0 if math.isnan(u) else u)
    return params


def params_to_unit(params: dict[str, Any]) -> np.ndarray:
    """Searched parameters as a vector in [-1, 1]^n (for observations)."""
    return np.array([d.to_unit(params[d.name]) for d in SPACE], dtype=np.float32)


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Complete ``params`` with the defaults and check every value; raise ValueError."""
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValueError(f"unknown VTracer parameter(s) {unknown}; known: {sorted(DEFAULT_PARAMS)}")
    full = {**DEFAULT_PARAMS, **params}
    for name, value in full.items():
        dim = _BY_NAME.get(name)
        problem = dim.check(value) if dim else _check_fixed(name, value)
        if problem:
            raise ValueError(f"VTracer parameter {name}={value!r} {problem}")
    return full


def _check_fixed(name: str, value: Any) -> str | None:
    if name == "colormode":
        return None if value in ("color", "binary") else "must be 'color' or 'binary'"
    if name == "max_iterations":
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100
        return None if ok else "must be an integer in [1, 100]"
    return None


def params_key(params: dict[str, Any]) -> tuple:
    """A hashable key for a parameter set (for result caches)."""
    return tuple(sorted(params.items()))
