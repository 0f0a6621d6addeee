"""Optimising one image with an algorithm at a budget of conversions."""

from __future__ import annotations

import inspect
import time
from typing import Any, Mapping

from .episodes import ImageEpisodes


def takes_keyword(method, keyword: str) -> bool:
    """Whether ``method`` accepts ``keyword`` (by name, or through ``**kwargs``)."""
    params = inspect.signature(method).parameters.values()
    return any(p.name == keyword or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def search_image(algorithm, env: ImageEpisodes, index: int) -> dict[str, Any]:
    """Run ``algorithm`` on image ``index`` of ``env`` until its budget is spent.

    Returns the episode summary plus ``conversions`` (the defaults' one
    included), ``seconds`` and ``svg`` (the best SVG, when the env keeps SVGs).
    """
    start = time.perf_counter()
    obs, _ = env.reset(options={"image": index})
    start_image = getattr(algorithm, "start_image", None)
    if start_image is not None:
        if takes_keyword(start_image, "default"):
            start_image(env.image, default=env.default)  # the defaults' Outcome (score, ssim, bytes)
        else:
            start_image(env.image)
    observe = getattr(algorithm, "observe", None)
    full = observe is not None and takes_keyword(observe, "outcome")
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
        if full:  # the whole Outcome too (SSIM, bytes), for algorithms that take it
            observe(env.last.params, env.last.score, outcome=env.last)
        elif observe is not None:
            observe(env.last.params, env.last.score)
    row = env.episode_summary()
    row.update(conversions=conversions, seconds=time.perf_counter() - start, svg=env.best.svg)
    return row
