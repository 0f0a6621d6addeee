"""Built-in metrics: ``ssim``, ``ssim_rgb``, ``size``, ``paths``, ``mse``, ``psnr``; and the
post-processor ``lossless`` (:mod:`vtopt_metrics.postprocess`), on by default.

``size`` and ``paths`` are log2 ratios to VTracer's defaults on the same
image, so the default reward ``1.0 * ssim_rgb - 0.02 * size`` is
``ssim - 0.02 * log2(bytes / default_bytes)`` with SSIM over the colour
channels (a grayscale SSIM misses colour shifts that a viewer sees).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vtopt import hookimpl

WIN = 7  # scikit-image's default window
K1, K2, DATA_RANGE = 0.01, 0.03, 255.0
_C1, _C2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
_COV = WIN * WIN / (WIN * WIN - 1)  # sample covariance, as skimage


def _box(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Means over the WIN x WIN window around every pixel of ``x`` (2-D, or interleaved channels), as float32.

    OpenCV's box filter is several times faster than scipy's uniform filter,
    and faster still on integer input (uint8 or uint16: exact sums, then one
    scaling). Near the border the windows are reflected, but only the windows
    wholly inside the image are averaged in the end (skimage's crop), so the
    border mode does not matter.
    """
    return cv2.boxFilter(x, cv2.CV_32F, (WIN, WIN), dst=out, borderType=cv2.BORDER_REFLECT)


def _inside_mean(x: np.ndarray) -> float:
    """The mean over the windows wholly inside the image (skimage's crop), over all channels."""
    pad = WIN // 2
    inside = x[pad:-pad, pad:-pad]
    return sum(cv2.sumElems(inside)) / inside.size  # sumElems: a double sum per channel, 4 of them


def _rgb8(pixels: np.ndarray) -> np.ndarray:
    """Contiguous uint8 RGB: the renderer's RGBA buffer seen as RGB (a strided view) is repacked by
    OpenCV, many times faster than numpy's strided copy."""
    if pixels.flags.c_contiguous:
        return pixels
    base = pixels.base
    if (isinstance(base, np.ndarray) and base.dtype == np.uint8 and base.shape == (*pixels.shape[:2], 4)
            and base.flags.c_contiguous and pixels.strides == base.strides and pixels.ctypes.data == base.ctypes.data):
        return cv2.cvtColor(base, cv2.COLOR_RGBA2RGB)
    return np.ascontiguousarray(pixels, dtype=np.uint8)


class SSIM:
    """Grayscale SSIM as ``skimage.metrics.structural_similarity`` computes it.

    Uniform 7x7 window, sample covariance, data range 255, mean over the
    windows wholly inside the image (skimage's crop). The reference side
    (its means and variances) is prepared once per image; a conversion
    computes only its own three window means (of y, y*y and x*y) and the
    formula, in place in float32 planes kept from one call to the next (a
    fresh 256 x 256 temporary per operation cost more, in page faults, than
    the arithmetic itself). So one metric object serves one thread at a time
    (as every scorer does).
    """

    _buffers: tuple[np.ndarray, ...] = ()  # scratch planes of one shape, made again for another

    def __getstate__(self):  # the buffers are scratch space: not worth sending to another process
        return {k: v for k, v in self.__dict__.items() if k != "_buffers"}

    def _scratch(self, shape: tuple[int, ...], dtypes: tuple) -> tuple[np.ndarray, ...]:
        if not self._buffers or self._buffers[0].shape != shape:
            self._buffers = tuple(np.empty(shape, d) for d in dtypes)
        return self._buffers

    def _reference(self, image) -> np.ndarray:
        """The image's side, as the candidate's is given to :meth:`_means`."""
        return np.ascontiguousarray(image.gray, dtype=np.float32)

    def _means(self, x: np.ndarray, sample) -> tuple[np.ndarray, ...]:
        """The candidate's window means of y, y*y and x*y, and a free float32 plane of their shape."""
        gray = sample.gray
        y, uy, yy, xy, t = self._scratch(gray.shape, (np.float32,) * 5)
        np.copyto(y, gray, casting="unsafe")
        _box(y, uy)
        _box(np.multiply(y, y, out=t), yy)
        _box(np.multiply(x, y, out=t), xy)
        return uy, yy, xy, t

    def prepare(self, image):
        x = self._reference(image)
        if min(x.shape[:2]) < WIN:
            raise ValueError(f"{image.source}: image smaller than the {WIN}x{WIN} SSIM window")
        ux = _box(x)
        vx = (_box(x.astype(np.float32) * x) - ux * ux) * _COV
        return x, ux, ux * ux + _C1, vx + _C2

    def compute(self, sample, state) -> float:
        x, ux, a, b = state  # the image, its window means, ux^2 + C1, vx + C2
        uy, yy, xy, den = self._means(x, sample)
        # every subtraction of two window means comes before any scaling: float32 keeps it exact
        np.multiply(uy, uy, out=den)  # uy^2
        yy -= den
        cv2.addWeighted(yy, _COV, b, 1.0, 0.0, dst=yy)  # vx + vy + C2
        den += a  # ux^2 + uy^2 + C1
        den *= yy
        np.multiply(ux, uy, out=uy)  # ux uy
        xy -= uy
        cv2.addWeighted(xy, 2 * _COV, xy, 0.0, _C2, dst=xy)  # 2 vxy + C2
        cv2.addWeighted(uy, 2.0, uy, 0.0, _C1, dst=uy)  # 2 ux uy + C1
        uy *= xy
        uy /= den
        return _inside_mean(uy)


class SSIMRGB(SSIM):
    """SSIM over the R, G and B channels, averaged: ``structural_similarity(..., channel_axis=2)``.

    The channels stay interleaved, and the pixels stay integers up to the
    box filters (y*y and x*y fit in uint16), so the window sums are exact.
    """

    def _reference(self, image) -> np.ndarray:
        return np.ascontiguousarray(image.rgb, dtype=np.uint16)

    def _means(self, x: np.ndarray, sample) -> tuple[np.ndarray, ...]:
        y8 = _rgb8(sample.rendered)
        f32, u16 = np.float32, np.uint16
        y, p, uy, yy, xy, t = self._scratch(y8.shape, (u16, u16, f32, f32, f32, f32))
        np.copyto(y, y8)
        _box(y8, uy)
        _box(np.multiply(y, y, out=p), yy)
        _box(np.multiply(x, y, out=p), xy)
        return uy, yy, xy, t


class Size:
    """log2(svg bytes / the defaults' svg bytes) on the same image; 0 for the defaults."""

    def prepare(self, image):
        return None

    def compute(self, sample, state) -> float:
        if sample.defaults is None:
            return 0.0
        return math.log2(sample.svg_bytes / sample.defaults.svg_bytes)


class Paths:
    """log2((paths + 1) / (the defaults' paths + 1)); 0 for the defaults."""

    def prepare(self, image):
        return None

    def compute(self, sample, state) -> float:
        if sample.defaults is None:
            return 0.0
        return math.log2((sample.paths + 1) / (sample.defaults.paths + 1))


class MSE:
    """Mean squared error over RGB, scaled to [0, 1]."""

    def prepare(self, image):
        return image.rgb.astype(np.float32) / 255.0

    def compute(self, sample, state) -> float:
        d = sample.rendered.astype(np.float32) / 255.0 - state
        return float(np.mean(d * d))


class PSNR(MSE):
    """Peak signal-to-noise ratio in dB over RGB, capped at 100 for identical images."""

    def compute(self, sample, state) -> float:
        mse = super().compute(sample, state)
        return 100.0 if mse <= 1e-10 else float(min(100.0, 10 * math.log10(1.0 / mse)))


@hookimpl
def vtopt_register_metrics():
    return {"ssim": SSIM, "ssim_rgb": SSIMRGB, "size": Size, "paths": Paths, "mse": MSE, "psnr": PSNR}


@hookimpl
def vtopt_register_postprocessors():
    from .postprocess import Lossless

    return {"lossless": Lossless}


@hookimpl(trylast=True)
def vtopt_config_defaults():
    # the standard reward: colour SSIM, less 0.02 per doubling of the bytes against the defaults';
    # every final SVG made smaller by the lossless post-pass
    return {"reward": {"weights": {"ssim_rgb": 1.0, "size": -0.02}, "quality": "ssim_rgb"},
            "postprocess": ["lossless"]}
