"""Built-in curriculum strategies: ``staged`` and ``uniform``."""

from __future__ import annotations

from collections import deque
from typing import Sequence

from vtopt import hookimpl
from vtopt.errors import ParamError

ORDER = ("simple", "text", "gradient", "complex")


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

    A stage ends when the rolling mean return (improvement over VTracer's
    defaults) of its last ``window`` episodes reaches ``threshold``, or after
    ``max_timesteps`` timesteps in it. Earlier stages' kinds keep a ``replay``
    share of the episodes, so that what was learnt is not forgotten. Kinds
    in the data that ``stages`` does not name come last, in name order.
    """

    def __init__(self, stages: list[str] | None = None, threshold: float = 0.01, window: int = 20,
                 max_timesteps: int = 5000, replay: float = 0.2):
        if stages is not None and (not isinstance(stages, list) or not all(isinstance(s, str) for s in stages) or not stages):
            raise ParamError("stages", "must be a non-empty list of kind names")
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
            raise ParamError("threshold", "must be a number")
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ParamError("window", "must be an integer >= 1")
        if not isinstance(max_timesteps, int) or isinstance(max_timesteps, bool) or max_timesteps < 1:
            raise ParamError("max_timesteps", "must be an integer >= 1")
        if not isinstance(replay, (int, float)) or not 0 <= replay < 1:
            raise ParamError("replay", "must be in [0, 1)")
        self.requested = stages
        self.threshold, self.window = float(threshold), window
        self.max_timesteps, self.replay = max_timesteps, float(replay)

    def start(self, kinds: Sequence[str]) -> None:
        order = self.requested or list(ORDER)
        unknown = [k for k in self.requested or [] if k not in kinds]
        if unknown:
            raise ValueError(f"stages {unknown} are not kinds in the data (kinds: {list(kinds)})")
        self.stages = [k for k in order if k in kinds] + sorted(k for k in kinds if k not in order)
        if not self.stages:
            raise ValueError(f"none of the stages {order} is a kind in the data ({list(kinds)})")
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

    def record(self, kind, score, timesteps):
        if kind == self.stages[self.index]:
            self.recent.append(score)
        if self.index == len(self.stages) - 1:
            return
        mastered = len(self.recent) == self.window and sum(self.recent) / self.window >= self.threshold
        if mastered or timesteps - self.stage_start >= self.max_timesteps:
            self.index += 1
            self.stage_start = timesteps
            self.recent.clear()

    def state_dict(self):
        return {"stages": self.stages, "index": self.index, "stage_start": self.stage_start,
                "recent": list(self.recent)}

    def load_state_dict(self, state):
        self.stages, self.index = list(state["stages"]), int(state["index"])
        self.stage_start = int(state["stage_start"])
        self.recent = deque(state["recent"], maxlen=self.window)


@hookimpl
def vtopt_register_curricula():
    return {"staged": Staged, "uniform": Uniform}
