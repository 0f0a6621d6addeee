"""Built-in metrics: ``ssim``, ``ssim_rgb``, ``size``, ``paths``, ``mse``, ``psnr``.

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
    """Means over the WIN x WIN window around every pixel of the 2-D float32 plane ``x`` (into ``out``).

    OpenCV's box filter is several times faster than scipy's uniform filter.
    Near the border the windows are reflected, but only the windows wholly
    inside the image are averaged in the end (skimage's crop), so the border
    mode does not matter.
    """
    return cv2.boxFilter(x, -1, (WIN, WIN), dst=out, borderType=cv2.BORDER_REFLECT)


def _inside(x: np.ndarray) -> np.ndarray:
    pad = WIN // 2
    return x[pad:-pad, pad:-pad]


class SSIM:
    """Grayscale SSIM as ``skimage.metrics.structural_similarity`` computes it.

    Uniform 7x7 window, sample covariance, data range 255, mean over the
    windows wholly inside the image (skimage's crop). The reference side's
    statistics are prepared once per image. Each conversion's arithmetic runs
    in place in float32 planes kept from one call to the next: a fresh
    256 x 256 temporary per operation cost more (in page faults) than the
    arithmetic itself. So one metric object serves one thread at a time (as
    every scorer does).
    """

    _buffers: tuple[np.ndarray, ...] = ()  # y, uy, yy, xy, t, den: one plane shape's, made again for another

    def __getstate__(self):  # the buffers are scratch space: not worth sending to another process
        return {k: v for k, v in self.__dict__.items() if k != "_buffers"}

    def _planes(self, pixels: np.ndarray) -> list[np.ndarray]:
        """The planes of an image's or a rendering's pixels, as views."""
        return [pixels]

    def _pixels(self, holder) -> np.ndarray:
        return holder.gray

    def prepare(self, image):
        pixels = self._pixels(image)
        if min(pixels.shape[:2]) < WIN:
            raise ValueError(f"{image.source}: image smaller than the {WIN}x{WIN} SSIM window")
        state = []
        for plane in self._planes(pixels):
            x = np.ascontiguousarray(plane, dtype=np.float32)
            ux = _box(x)
            vx = (_box(x * x) - ux * ux) * _COV
            state.append((x, ux, ux * ux + _C1, vx + _C2))
        return state

    def compute(self, sample, state) -> float:
        pixels = self._pixels(sample)
        if not self._buffers or self._buffers[0].shape != pixels.shape[:2]:
            self._buffers = tuple(np.empty(pixels.shape[:2], np.float32) for _ in range(6))
        y, uy, yy, xy, t, den = self._buffers
        total = 0.0
        for (x, ux, a, b), plane in zip(state, self._planes(pixels)):
            np.copyto(y, plane, casting="unsafe")
            _box(y, uy)
            _box(np.multiply(y, y, out=t), yy)
            _box(np.multiply(x, y, out=t), xy)
            np.multiply(uy, uy, out=t)  # uy^2
            np.add(a, t, out=den)  # ux^2 + uy^2 + C1
            yy -= t
            yy *= _COV
            yy += b  # vx + vy + C2
            den *= yy
            uy *= ux  # ux uy
            xy -= uy
            xy *= 2 * _COV
            xy += _C2  # 2 vxy + C2
            uy *= 2
            uy += _C1
            uy *= xy
            uy /= den
            total += float(_inside(uy).mean(dtype=np.float64))
        return total / len(state)


class SSIMRGB(SSIM):
    """SSIM over the R, G and B channels, averaged: ``structural_similarity(..., channel_axis=2)``."""

    def _pixels(self, holder) -> np.ndarray:
        return holder.rendered if hasattr(holder, "rendered") else holder.rgb

    def _planes(self, pixels: np.ndarray) -> list[np.ndarray]:
        return [pixels[..., c] for c in range(3)]


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


@hookimpl(trylast=True)
def vtopt_config_defaults():
    # the standard reward: colour SSIM, less 0.02 per doubling of the bytes against the defaults'
    return {"reward": {"weights": {"ssim_rgb": 1.0, "size": -0.02}, "quality": "ssim_rgb"}}
