"""Built-in metrics: ``ssim``, ``ssim_rgb``, ``size``, ``paths``, ``mse``, ``psnr``.

``size`` and ``paths`` are log2 ratios to VTracer's defaults on the same
image, so the default reward ``1.0 * ssim_rgb - 0.02 * size`` is
``ssim - 0.02 * log2(bytes / default_bytes)`` with SSIM over the colour
channels (a grayscale SSIM misses colour shifts that a viewer sees).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import uniform_filter

from vtopt import hookimpl

WIN = 7  # scikit-image's default window
K1, K2, DATA_RANGE = 0.01, 0.03, 255.0


def _window_means(x: np.ndarray) -> np.ndarray:
    """Means over every WIN x WIN window lying wholly inside ``x`` (HxWxC, per channel)."""
    pad = WIN // 2
    return uniform_filter(x, size=(WIN, WIN, 1))[pad:-pad, pad:-pad]


class SSIM:
    """Grayscale SSIM as ``skimage.metrics.structural_similarity`` computes it.

    Uniform 7x7 window, sample covariance, data range 255, mean over the
    windows wholly inside the image (skimage's crop). The reference side's
    statistics are prepared once per image.
    """

    def _pixels(self, holder) -> np.ndarray:
        """HxWxC float32 pixels of an image (the original) or a sample (the rendering)."""
        return holder.gray.astype(np.float32)[..., None]

    def prepare(self, image):
        x = self._pixels(image)
        if min(x.shape[:2]) < WIN:
            raise ValueError(f"{image.source}: image smaller than the {WIN}x{WIN} SSIM window")
        n = WIN * WIN
        ux = _window_means(x)
        vx = (_window_means(x * x) - ux * ux) * (n / (n - 1))
        return x, ux, vx

    def compute(self, sample, state) -> float:
        x, ux, vx = state
        y = self._pixels(sample)
        n = WIN * WIN
        cov = n / (n - 1)
        uy = _window_means(y)
        vy = (_window_means(y * y) - uy * uy) * cov
        vxy = (_window_means(x * y) - ux * uy) * cov
        c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        return float(s.mean())


class SSIMRGB(SSIM):
    """SSIM over the R, G and B channels, averaged: ``structural_similarity(..., channel_axis=2)``."""

    def _pixels(self, holder) -> np.ndarray:
        return (holder.rendered if hasattr(holder, "rendered") else holder.rgb).astype(np.float32)


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
