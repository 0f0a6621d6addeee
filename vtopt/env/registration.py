"""vtopt's environment id and its registration with gymnasium, without importing the environment:
``import vtopt`` calls :func:`register_gym_env`, so ``gymnasium.make(GYM_ID)`` works whichever is
imported first (gymnasium itself costs about 0.05 s beside vtopt's imports)."""

from __future__ import annotations

import gymnasium as gym

#: The id under which vtopt's environment is registered with gymnasium.
GYM_ID = "vtopt/VTracer-v0"


def register_gym_env() -> None:
    """Register :data:`GYM_ID` with gymnasium (by ``import vtopt``); the env's modules load on ``make``."""
    if GYM_ID not in gym.registry:
        gym.register(GYM_ID, entry_point="vtopt.env.poolenv:make_gym_env")  # one env module imports the other
