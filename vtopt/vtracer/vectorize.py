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


class IsolatedConverter:
    """VTracer in a child process, so that a conversion past ``timeout`` seconds can be abandoned.

    VTracer holds the GIL and cannot be interrupted in-process. The child is
    a plain Python process over pipes (allowed inside daemonic subprocess
    environments, unlike multiprocessing children) that imports VTracer and
    nothing else: isolated (``-I -S``: no site, no vtopt, no current folder),
    with this process's ``sys.path``, it is ready in about 30 ms where a child
    importing vtopt took a second of a one-image ``optimize``. On a timeout it
    is killed and a fresh one started for the next conversion.
    """

    def __init__(self, timeout: float):
        self.timeout = float(timeout)
        self._proc = None

    def __getstate__(self):
        return {"timeout": self.timeout}

    def __setstate__(self, state):
        self.__init__(state["timeout"])

    def _child(self):
        import json
        import subprocess
        import sys

        if self._proc is None or self._proc.poll() is not None:
            # its own session: Ctrl-C on the terminal reaches us, and we decide what the child does
            path = json.dumps([p for p in sys.path if p])
            self._proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _CHILD, path], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                          start_new_session=True)
        return self._proc

    def convert(self, image: LogoImage, params: dict[str, Any]) -> str:
        import pickle
        import select
        import struct

        full = check_params(params)
        proc = self._child()
        payload = pickle.dumps((image.png, full))
        try:
            proc.stdin.write(struct.pack("<Q", len(payload)) + payload)
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], self.timeout)
            if not ready:
                raise TimeoutError
            size = struct.unpack("<Q", _read(proc.stdout, 8))[0]
            ok, value = pickle.loads(_read(proc.stdout, size))
        except TimeoutError:
            self.close()
            raise ConversionError(f"{image.source}: VTracer did not finish within {self.timeout:g} s; abandoned") from None
        except (OSError, EOFError, struct.error, pickle.UnpicklingError) as exc:
            code = proc.poll()
            self.close()
            raise ConversionError(f"{image.source}: the VTracer process died (exit code {code}, "
                                  f"{type(exc).__name__})") from None
        if not ok:
            raise ConversionError(f"{image.source}: VTracer failed ({value})")
        return value

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None


def _read(stream, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError
    return data


#: The child's program: length-prefixed pickles of (png, params) in, (ok, svg or error) out.
_CHILD = """
import json, pickle, struct, sys
sys.path[:0] = json.loads(sys.argv[1])
import vtracer

def read(n):
    data = stdin.read(n)
    if len(data) != n:
        raise SystemExit
    return data

stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
while True:
    png, params = pickle.loads(read(struct.unpack("<Q", read(8))[0]))
    try:
        reply = (True, vtracer.convert_raw_image_to_svg(png, img_format="png", **params))
    except BaseException as exc:  # PanicException included
        reply = (False, f"{type(exc).__name__}: {exc}")
    data = pickle.dumps(reply)
    stdout.write(struct.pack("<Q", len(data)) + data)
    stdout.flush()
"""


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


def renderer_name() -> str:
    """Which SVG renderer :func:`render` uses (results differ slightly between renderers)."""
    return _RENDERER.__name__
