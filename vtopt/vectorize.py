"""One VTracer conversion and one rasterisation, with every failure caught.

VTracer's binding raises ``pyo3_runtime.PanicException`` on some inputs, a
BaseException that ``except Exception`` misses; :func:`convert` turns every
failure of the conversion into a :class:`ConversionError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import vtracer

from .images import BACKGROUND, LogoImage
from .params import check_params


class ConversionError(Exception):
    """VTracer failed on an image (the message says which and why)."""


def convert(image: LogoImage, params: dict[str, Any]) -> str:
    """Convert ``image`` with ``params`` (checked and completed) to SVG text."""
    full = check_params(params)
    try:
        return vtracer.convert_raw_image_to_svg(image.png, img_format="png", **full)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # PanicException derives from BaseException
        raise ConversionError(f"{image.source}: VTracer failed ({type(exc).__name__}: {exc})") from None


def render(svg: str, width: int, height: int) -> np.ndarray:
    """Rasterise SVG text to uint8 RGB (HxWx3) composited on BACKGROUND."""
    return _RENDERER(svg, width, height)


def _render_skia(svg: str, width: int, height: int) -> np.ndarray:
    import skia

    data = svg.encode()
    # copyData: without it the stream reads the bytes after they may have been freed
    dom = skia.SVGDOM.MakeFromStream(skia.MemoryStream(data, True))
    if dom is None:
        raise ConversionError("SVG could not be parsed for rendering")
    pixels = np.empty((height, width, 4), dtype=np.uint8)
    pixels[...] = (*BACKGROUND, 255)
    surface = skia.Surface(pixels, colorType=skia.kRGBA_8888_ColorType, alphaType=skia.kPremul_AlphaType)
    with surface as canvas:
        dom.setContainerSize(skia.Size(width, height))
        dom.render(canvas)
    return pixels[..., :3]


def _render_resvg(svg: str, width: int, height: int) -> np.ndarray:
    import io

    import resvg_py
    from PIL import Image

    background = "#%02x%02x%02x" % BACKGROUND
    png = resvg_py.svg_to_bytes(svg_string=svg, width=width, height=height, background=background)
    with Image.open(io.BytesIO(bytes(png))) as im:
        return np.asarray(im.convert("RGB"))


def _pick_renderer():
    try:
        import skia  # noqa: F401  (needs the system's libEGL/libGL)

        return _render_skia
    except ImportError:
        try:
            import resvg_py  # noqa: F401

            return _render_resvg
        except ImportError:
            raise ImportError(
                "no SVG renderer: install skia-python (and libegl1 libgl1 on Debian) or resvg-py"
            ) from None


_RENDERER = _pick_renderer()
