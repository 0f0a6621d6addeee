"""The gymnasium environment: one episode is one image, one step one conversion.

:class:`VTracerEnv` is :class:`vtopt.env.episodes.ImageEpisodes` (the episode,
its reward and observation) with gymnasium's spaces and seeding.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np

from ..vtracer.images import LogoImage
from ..vtracer.params import action_size
from .episodes import FAILURE_REWARD, ImageEpisodes, observation_size
from .registration import GYM_ID, register_gym_env
from .scoring import Scorer

__all__ = ["FAILURE_REWARD", "GYM_ID", "VTracerEnv", "observation_size", "register_gym_env"]


class VTracerEnv(ImageEpisodes, gym.Env):
    """Choose VTracer parameters for one image in ``conversions - 1`` steps (a gymnasium env)."""

    metadata = {"render_modes": []}

    def __init__(self, images: Sequence[LogoImage], scorer: Scorer, conversions: int = 4, keep_svg: bool = False,
                 reference: Sequence[Mapping[str, Any]] | None = None):
        super().__init__(images, scorer, conversions, keep_svg, reference)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (action_size(),), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (observation_size(),), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        gym.Env.reset(self, seed=seed)
        return super().reset(seed=seed, options=options)
