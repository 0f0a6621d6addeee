"""The built-in post-processor ``lossless``: svgo-py (a pure-Python port of SVGO 4.1, MIT) on VTracer's SVG.

SVGO's default preset removes what VTracer writes and no renderer needs: the XML prolog and comment,
the ``translate(...)`` on every path (folded into the path data), absolute coordinates where relative
ones are shorter, the full-canvas background as a cubic path, long colour notations. Numbers keep 4
decimals instead of SVGO's 3: VTracer's translates are multiples of 1/16 px and its coordinates have 2
decimals, so at 4 nothing VTracer wrote is rounded (at 3 the spline output moved by up to 3e-4 SSIM).
Measured against scour and SVGO's other settings in ``benchmarks/postprocessors.py``; vtopt checks
every result by rendering it, so an SVG that does not draw the same is never kept.
"""

from __future__ import annotations

from typing import Any

from vtopt import ParamError

#: svgo-py's settings: its default preset, numbers to 4 decimals.
SVGO_CONFIG: dict[str, Any] = {"floatPrecision": 4}


class Lossless:
    """VTracer's SVG made smaller by svgo-py, drawing the same picture."""

    def validate(self) -> None:
        try:
            import svgo  # noqa: F401
        except ImportError:
            raise ParamError(None, "needs svgo-py (pip install svgo-py)") from None

    def process(self, svg: str) -> str:
        import svgo

        return svgo.optimize(svg, SVGO_CONFIG)["data"]
