"""Built-in curriculum strategies: ``staged``, ``uniform`` and ``adaptive``."""

from __future__ import annotations

from collections import deque
from typing import Sequence

from vtopt import KINDS, ParamError, StagedCurriculum, UpdatableAlgorithm, check_number, hookimpl


class Uniform:
    """Every kind equally often, from the start."""

    def start(self, kinds: Sequence[str]) -> None:
        self.kinds = list(kinds)

    def weights(self):
        return {k: 1.0 for k in self.kinds}

    def stage(self):
        return None

    def record(self, kind, score, timesteps):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class Staged:
    """One kind after another (simple -> text -> gradient -> complex).

    A stage ends when its kind is mastered, or after ``max_timesteps``
    timesteps in it. Mastered means that over the stage's last ``window``
    episodes the policy's mean return (its improvement over VTracer's
    defaults) is at least ``threshold`` above what the reference gains on
    the same images (the fixed parameter sets a plugin offers through
    ``vtopt_reference_params``, the built-in portfolio's up to 7 sets at the
    same budget, converted once per image in each env process; VTracer's
    defaults alone where no plugin offers any): with the default threshold 0, the policy has
    caught up with the best fixed settings on this kind. Without a reference (a
    driver that does not pass one), the return alone is compared with
    ``threshold``. Earlier stages' kinds keep a ``replay``
    share of the episodes, so that what was learnt is not forgotten. Kinds
    in the data that ``stages`` does not name come last, in name order.
    ``overrides`` maps a stage to algorithm settings that apply from its
    start, e.g. ``{complex: {learning_rate: 0.0001, ent_coef: 0.01}}``.
    """

    def __init__(self, stages: list[str] | None = None, threshold: float = 0.0, window: int = 20,
                 max_timesteps: int = 5000, replay: float = 0.2, overrides: dict | None = None):
        if overrides is not None and (not isinstance(overrides, dict) or not all(
                isinstance(k, str) and isinstance(v, dict) for k, v in overrides.items())):
            raise ParamError("overrides", "must map stage names to mappings of algorithm settings")
        self.overrides = overrides or {}
        if stages is not None and (not isinstance(stages, list) or not all(isinstance(s, str) for s in stages) or not stages):
            raise ParamError("stages", "must be a non-empty list of kind names")
        check_number("threshold", threshold)
        check_number("window", window, integer=True, low=1)
        check_number("max_timesteps", max_timesteps, integer=True, low=1)
        check_number("replay", replay, low=0, high=1, high_open=True)
        self.requested = stages
        self.threshold, self.window = float(threshold), window
        self.max_timesteps, self.replay = max_timesteps, float(replay)

    def start(self, kinds: Sequence[str]) -> None:
        order = self.requested or list(KINDS)
        unknown = [k for k in self.requested or [] if k not in kinds]
        if unknown:
            raise ValueError(f"stages {unknown} are not kinds in the data (kinds: {list(kinds)})")
        self.stages = [k for k in order if k in kinds] + sorted(k for k in kinds if k not in order)
        if not self.stages:
            raise ValueError(f"none of the stages {order} is a kind in the data ({list(kinds)})")
        unknown = sorted(set(self.overrides) - set(self.stages))
        if unknown:
            raise ValueError(f"overrides name stages that do not exist: {unknown} (stages: {self.stages})")
        self.index = 0
        self.stage_start = 0
        self.recent: deque[float] = deque(maxlen=self.window)

    def weights(self):
        current = self.stages[self.index]
        earlier = self.stages[: self.index]
        if not earlier:
            return {current: 1.0}
        out = {k: self.replay / len(earlier) for k in earlier}
        out[current] = 1.0 - self.replay
        return out

    def stage(self):
        return self.stages[self.index]

    def algorithm_overrides(self):
        return dict(self.overrides.get(self.stages[self.index], {}))

    def record(self, kind, score, timesteps, reference=None):
        if kind == self.stages[self.index]:
            self.recent.append(score - (reference or 0.0))
        if self.index == len(self.stages) - 1:
            return
        mastered = len(self.recent) == self.window and sum(self.recent) / self.window >= self.threshold
        if mastered or timesteps - self.stage_start >= self.max_timesteps:
            self.index += 1
            self.stage_start = timesteps
            self.recent.clear()

    def state_dict(self):
        return {"stages": self.stages, "index": self.index, "stage_start": self.stage_start,
                "recent": list(self.recent), "against_reference": True}

    def load_state_dict(self, state):
        self.stages, self.index = list(state["stages"]), int(state["index"])
        self.stage_start = int(state["stage_start"])
        # a checkpoint from before mastery was measured against the reference holds bare improvements
        self.recent = deque(state["recent"] if state.get("against_reference") else [], maxlen=self.window)


class Adaptive:
    """Kinds sampled in proportion to recent learning progress.

    Learning progress of a kind is the absolute change of its mean return
    between its last two windows of ``window`` episodes (as in
    learning-progress curricula); kinds not yet seen twice ``window`` times
    count as the most promising. ``floor`` is the share spread evenly over
    all kinds, so that none is forgotten.
    """

    def __init__(self, window: int = 20, floor: float = 0.2):
        check_number("window", window, integer=True, low=1)
        if not isinstance(floor, (int, float)) or not 0 < floor <= 1:
            raise ParamError("floor", "must be in (0, 1]")
        self.window, self.floor = window, float(floor)

    def start(self, kinds: Sequence[str]) -> None:
        self.kinds = list(kinds)
        self.history: dict[str, list[float]] = {k: [] for k in self.kinds}

    def progress(self) -> dict[str, float]:
        out = {}
        for kind, scores in self.history.items():
            if len(scores) < 2 * self.window:
                out[kind] = float("inf")
            else:
                last, before = scores[-self.window:], scores[-2 * self.window:-self.window]
                out[kind] = abs(sum(last) - sum(before)) / self.window
        return out

    def weights(self):
        lp = self.progress()
        unseen = [k for k, v in lp.items() if v == float("inf")]
        if unseen:
            lp = {k: (1.0 if k in unseen else 0.0) for k in lp}
        total = sum(lp.values())
        n = len(self.kinds)
        return {k: self.floor / n + (1 - self.floor) * (lp[k] / total if total > 0 else 1 / n) for k in self.kinds}

    def stage(self):
        return None

    def record(self, kind, score, timesteps):
        if kind in self.history:
            self.history[kind] = (self.history[kind] + [float(score)])[-2 * self.window:]

    def state_dict(self):
        return {"history": self.history}

    def load_state_dict(self, state):
        self.history = {k: list(v) for k, v in state["history"].items()}


@hookimpl
def vtopt_register_curricula():
    return {"staged": Staged, "uniform": Uniform, "adaptive": Adaptive}


@hookimpl(trylast=True)
def vtopt_config_defaults():
    return {"curriculum": {"name": "staged"}}


@hookimpl
def vtopt_check_config(config, algorithm, curriculum):
    """A staged curriculum's ``overrides`` must be settings its algorithm can change mid-run."""
    if not isinstance(curriculum, StagedCurriculum) or algorithm is None:
        return []
    problems = []
    for stage, settings in curriculum.overrides.items():
        where = f"curriculum.params.overrides.{stage}"
        if not isinstance(algorithm, UpdatableAlgorithm):
            problems.append((where, f"algorithm {config.algorithm.name!r} cannot change settings mid-run"))
            continue
        try:
            algorithm.check_update(**settings)
        except (ValueError, TypeError) as exc:
            problems.append((where, str(exc)))
    return problems
