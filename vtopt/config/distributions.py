"""A sweep's search-space distributions as the YAML writes them: ``uniform(a, b)``, ``loguniform(a, b)``,
``randint(a, b)`` (a <= x < b), ``choice([v, ...])``; arguments are YAML, never evaluated as code."""

from __future__ import annotations

import math
import re
from typing import Any

import attrs
import numpy as np
from ruamel.yaml import YAML

_SPEC = re.compile(r"^\s*(uniform|loguniform|randint|choice)\s*\((.*)\)\s*$", re.S)


@attrs.frozen
class Distribution:
    kind: str
    args: tuple

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "uniform":
            return float(rng.uniform(*self.args))
        if self.kind == "loguniform":
            lo, hi = self.args
            return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        if self.kind == "randint":
            return int(rng.integers(*self.args))
        return self.args[int(rng.integers(len(self.args)))]


def parse_distribution(text: str) -> Distribution:
    """Parse ``loguniform(1e-4, 1e-3)`` and friends; raise ValueError with the problem."""
    m = _SPEC.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not one of uniform(a, b), loguniform(a, b), randint(a, b), choice([...])")
    kind, raw = m.groups()
    try:
        args = YAML(typ="safe", pure=True).load(f"[{raw}]")
    except Exception as exc:
        raise ValueError(f"{text!r}: arguments are not valid YAML ({str(exc).splitlines()[0]})") from None
    if kind == "choice":
        if len(args) != 1 or not isinstance(args[0], list) or not args[0]:
            raise ValueError(f"{text!r}: choice takes one non-empty list, e.g. choice([4, 10])")
        return Distribution(kind, tuple(args[0]))
    if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise ValueError(f"{text!r}: {kind} takes two numbers")
    lo, hi = args
    if not lo < hi or (kind == "loguniform" and lo <= 0):
        raise ValueError(f"{text!r}: needs low < high" + (" and low > 0" if kind == "loguniform" else ""))
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise ValueError(f"{text!r}: randint takes two integers")
    return Distribution(kind, (lo, hi))
