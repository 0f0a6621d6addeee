"""Post-processing a finished SVG (``postprocess``): each post-processor in turn, every result checked.

A post-processor rewrites the SVG a method chose to draw the same picture in
fewer bytes. It is safe by construction: each result is rendered and scored
like a conversion, and kept only when it renders and its quality metric
(``reward.quality``, SSIM) is at most :data:`POSTPROCESS_TOLERANCE` below the unprocessed
SVG's. Otherwise the SVG it was given is kept and the row gets a note: no
image loses its SVG, and no run fails, because of the post-pass.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import attrs

from ..errors import VtoptError

#: How far a post-processed SVG's quality metric (SSIM against the original) may fall below the
#: unprocessed SVG's before the post-processed one is dropped. A rise is no loss and is kept.
POSTPROCESS_TOLERANCE = 1e-4

#: What ``--postprocess`` takes to turn the pass off.
NONE = "none"


@attrs.frozen
class PostProcessed:
    """What the post-pass made of one result."""

    outcome: Any  # vtopt.scoring.Outcome of the SVG kept (the unprocessed one when nothing was kept)
    applied: list[str]  # the post-processors whose result was kept, in order
    notes: list[str]  # one per post-processor that was dropped, saying why
    seconds: float  # the post-processors' time plus the checks' (render and score)


def parse_names(text: str, available: Sequence[str], where: str = "--postprocess") -> list[str]:
    """``NAME[,NAME...]`` or ``none``: the post-processors to run, each registered and named once."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == [NONE]:
        return []
    if not names:
        raise VtoptError(f"{where}: name post-processors (comma-separated) or '{NONE}'")
    check_names(names, available, where)
    return names


def check_names(names: Sequence[str], available: Sequence[str], where: str = "postprocess") -> None:
    for name in names:
        if name not in available:
            raise VtoptError(f"{where}: {name!r} is not a registered post-processor; available: "
                             + (", ".join(sorted(available)) or "none") + f" (or '{NONE}')")
    twice = sorted({n for n in names if list(names).count(n) > 1})
    if twice:
        raise VtoptError(f"{where}: {', '.join(map(repr, twice))} named more than once")


def postprocess(outcome: Any, image: Any, scorer: Any, processors: Sequence[tuple[str, Any]], pm: Any) -> PostProcessed:
    """Run ``processors`` ((name, :class:`vtopt.components.PostProcessor`) pairs) on ``outcome``'s SVG
    in turn; each result is rendered and scored by ``scorer`` (:meth:`vtopt.scoring.Scorer.score_svg`)
    and kept only when it renders and its quality is at most :data:`POSTPROCESS_TOLERANCE` below ``outcome``'s."""
    start = time.perf_counter()
    current, applied, notes = outcome, [], []
    for name, processor in processors:
        try:
            with pm.blame("postprocessor", name, "process"):
                svg = processor.process(current.svg)
                if not isinstance(svg, str):
                    raise TypeError(f"returned {type(svg).__name__}, not SVG text")
            candidate = scorer.score_svg(image, current.params, svg)
        except Exception as exc:  # a failed post-pass costs its result, never the image's SVG
            notes.append(f"post-processor {name!r} dropped: {exc}")
            continue
        if candidate.error is not None:
            notes.append(f"post-processor {name!r} dropped: {candidate.error}")
            continue
        drop = outcome.ssim - candidate.ssim
        if not math.isnan(outcome.ssim) and not drop <= POSTPROCESS_TOLERANCE:
            notes.append(f"post-processor {name!r} dropped: its SVG's SSIM is {drop:.2g} below the unprocessed "
                         f"one's (tolerance {POSTPROCESS_TOLERANCE:g})")
            continue
        current = candidate
        applied.append(name)
    return PostProcessed(current, applied, notes, time.perf_counter() - start)
