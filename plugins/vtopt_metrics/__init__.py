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


def _window_means(x: np.ndarray) -> np.ndarray:
    """Means over every WIN x WIN window lying wholly inside the 2-D float32 plane ``x``.

    OpenCV's box filter is several times faster than scipy's uniform filter;
    the border mode does not matter once the border is cropped (skimage's crop).
    """
    pad = WIN // 2
    return cv2.boxFilter(x, -1, (WIN, WIN), borderType=cv2.BORDER_REFLECT)[pad:-pad, pad:-pad]


class SSIM:
    """Grayscale SSIM as ``skimage.metrics.structural_similarity`` computes it.

    Uniform 7x7 window, sample covariance, data range 255, mean over the
    windows wholly inside the image (skimage's crop). The reference side's
    statistics are prepared once per image; each channel is one contiguous
    float32 plane, so that the arithmetic runs over contiguous memory.
    """

    def _planes(self, holder) -> list[np.ndarray]:
        """Contiguous float32 planes of an image (the original) or a sample (the rendering)."""
        return [holder.gray.astype(np.float32)]

    def prepare(self, image):
        planes = self._planes(image)
        if min(planes[0].shape) < WIN:
            raise ValueError(f"{image.source}: image smaller than the {WIN}x{WIN} SSIM window")
        state = []
        for x in planes:
            ux = _window_means(x)
            vx = (_window_means(x * x) - ux * ux) * _COV
            state.append((x, ux, ux * ux + _C1, vx + _C2))
        return state

    def compute(self, sample, state) -> float:
        total = 0.0
        for (x, ux, a, b), y in zip(state, self._planes(sample)):
            uy = _window_means(y)
            uyuy = uy * uy
            vy = (_window_means(y * y) - uyuy) * _COV
            vxy = (_window_means(x * y) - ux * uy) * _COV
            s = (2 * ux * uy + _C1) * (2 * vxy + _C2) / ((a + uyuy) * (b + vy))
            total += float(s.mean(dtype=np.float64))
        return total / len(state)


class SSIMRGB(SSIM):
    """SSIM over the R, G and B channels, averaged: ``structural_similarity(..., channel_axis=2)``."""

    def _planes(self, holder) -> list[np.ndarray]:
        rgb = holder.rendered if hasattr(holder, "rendered") else holder.rgb
        return [np.ascontiguousarray(rgb[..., c], dtype=np.float32) for c in range(3)]


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
