"""What a training run does after every step is a list of parts: their interface.

:class:`vtopt.training.driver.Driver` calls its parts in order (its own, then
:class:`vtopt.training.checkpoints.Checkpoints`, then
:class:`vtopt.training.memory.MemoryGuard` where a limit is set); a new concern is a new part.
"""

from __future__ import annotations

import math
from typing import Any


class Part:
    """One concern of the driver; every method is optional. Each receives the
    :class:`vtopt.training.driver.Driver` (the run, the plugin manager, the envs, the algorithm,
    ``record`` for the run's history)."""

    def begin(self, driver: Any, timesteps: int) -> None:
        """Once, after the environments are up (and a checkpoint's state restored)."""

    def episode(self, driver: Any, episode: dict[str, Any], timesteps: int) -> None:
        """For each finished episode, in the order the envs report them."""

    def step(self, driver: Any, timesteps: int) -> bool:
        """After the step's episodes; False stops the run (say why in ``driver.stop_reason``)."""
        return True

    def rollout_end(self, driver: Any, timesteps: int) -> None:
        """When the algorithm finishes collecting a batch (``TrainContext.on_rollout_end``)."""

    def state(self, driver: Any) -> dict[str, Any]:
        """What this part keeps in a checkpoint: keys of the checkpoint's one flat JSON mapping, which
        no other part may use."""
        return {}

    def restore(self, driver: Any, state: dict[str, Any]) -> None:
        """Read back what :meth:`state` wrote, from the whole mapping. A key a new part adds must be
        read with ``state.get(key, default)``: checkpoints written before it existed lack it."""


class Periodic(Part):
    """A part that acts every ``every`` timesteps (never when ``every`` is 0): ``due`` returns False to stop."""

    def __init__(self, every: int):
        self.every = every
        self.next_at = math.inf

    def begin(self, driver, timesteps):
        self.next_at = _next(timesteps, self.every)

    def step(self, driver, timesteps):
        if timesteps < self.next_at:
            return True
        self.next_at = _next(timesteps, self.every)
        return self.due(driver, timesteps)

    def due(self, driver: Any, timesteps: int) -> bool:
        return True


def _next(timesteps: int, every: int) -> float:
    return (timesteps // every + 1) * every if every else math.inf
