"""Optimising one image with an algorithm at a budget of conversions."""

from __future__ import annotations

import time
from typing import Any, Mapping

from ..plugin.components import SearchAlgorithm
from .episodes import ImageEpisodes


def search_image(algorithm, env: ImageEpisodes, index: int) -> dict[str, Any]:
    """Run ``algorithm`` on image ``index`` of ``env`` until its budget is spent, telling a
    :class:`vtopt.SearchAlgorithm` how each conversion went.

    Returns the episode summary plus ``conversions`` (the defaults' one
    included), ``seconds`` and ``svg`` (the best SVG, when the env keeps SVGs).
    """
    start = time.perf_counter()
    obs, _ = env.reset(options={"image": index})
    searching = isinstance(algorithm, SearchAlgorithm)
    if searching:
        algorithm.start_image(env.image, default=env.default)  # the defaults' Outcome (score, ssim, bytes)
    conversions, done = 1, False
    while not done:
        proposal = algorithm.predict(obs, deterministic=True)
        if proposal is None:
            break
        if isinstance(proposal, Mapping):
            obs, _, done, _, _ = env.apply(proposal)
        else:
            obs, _, done, _, _ = env.step(proposal)
        conversions += 1
        if searching:
            algorithm.observe(env.last.params, env.last.score, outcome=env.last)
    row = env.episode_summary()
    row.update(conversions=conversions, seconds=time.perf_counter() - start, svg=env.best.svg)
    return row
