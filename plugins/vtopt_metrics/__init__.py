"""Built-in metrics: ``ssim``, ``size``, ``paths``, ``mse``, ``psnr``.

``size`` and ``paths`` are log2 ratios to VTracer's defaults on the same
image, so the default reward ``1.0 * ssim - 0.02 * size`` is
``ssim - 0.02 * log2(bytes / default_bytes)``.
"""

from __future__ import annotations

import math

import numpy as np

from vtopt import hookimpl

WIN = 7  # scikit-image's default window
K1, K2, DATA_RANGE = 0.01, 0.03, 255.0


def _window_sums(x: np.ndarray) -> np.ndarray:
    """Sums over every WIN x WIN window lying wholly inside ``x`` (integral image)."""
    c = np.zeros((x.shape[0] + 1, x.shape[1] + 1))
    np.cumsum(np.cumsum(x, axis=0), axis=1, out=c[1:, 1:])
    return c[WIN:, WIN:] - c[:-WIN, WIN:] - c[WIN:, :-WIN] + c[:-WIN, :-WIN]


class SSIM:
    """Grayscale SSIM as ``skimage.metrics.structural_similarity`` computes it.

    Uniform 7x7 window, sample covariance, data range 255, mean over the
    windows wholly inside the image (skimage's crop). The reference side's
    statistics are prepared once per image.
    """

    def prepare(self, image):
        x = image.gray
        if min(x.shape) < WIN:
            raise ValueError(f"{image.source}: image smaller than the {WIN}x{WIN} SSIM window")
        n = WIN * WIN
        ux = _window_sums(x) / n
        vx = (_window_sums(x * x) / n - ux * ux) * (n / (n - 1))
        return x, ux, vx

    def compute(self, sample, state) -> float:
        x, ux, vx = state
        y = sample.gray
        n = WIN * WIN
        cov = n / (n - 1)
        uy = _window_sums(y) / n
        vy = (_window_sums(y * y) / n - uy * uy) * cov
        vxy = (_window_sums(x * y) / n - ux * uy) * cov
        c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        return float(s.mean())


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
    return {"ssim": SSIM, "size": Size, "paths": Paths, "mse": MSE, "psnr": PSNR}
