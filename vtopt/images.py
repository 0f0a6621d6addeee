"""Logo images: loading, the per-image caches, and the features the agent sees.

A :class:`LogoImage` pickles as its PNG bytes only (it travels to subprocess
environments); everything derived from it is computed once, on first use,
in the process that uses it.
"""

from __future__ import annotations

import io
import math
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff")
#: Background on which transparent pixels are composited, on both sides of
#: every comparison (the original and the rendered SVG).
BACKGROUND = (255, 255, 255)
N_FEATURES = 8
MIN_SIZE = 8  # pixels, each side (SSIM's window is 7x7)


class ImageError(Exception):
    """An image that cannot be used; the message names the file and the problem."""


class LogoImage:
    """One image: a name, a kind (for the curriculum) and its RGBA pixels."""

    def __init__(self, name: str, kind: str, png: bytes, source: str = ""):
        self.name = name
        self.kind = kind
        self.png = png  # what VTracer converts, encoded once
        self.source = source or name

    @classmethod
    def from_rgba(cls, name: str, kind: str, rgba: np.ndarray, source: str = "") -> LogoImage:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgba, dtype=np.uint8), "RGBA").save(buf, "PNG")
        return cls(name, kind, buf.getvalue(), source)

    def __getstate__(self):
        return {"name": self.name, "kind": self.kind, "png": self.png, "source": self.source}

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"LogoImage({self.name!r}, kind={self.kind!r}, size={self.size})"

    @cached_property
    def rgba(self) -> np.ndarray:
        with Image.open(io.BytesIO(self.png)) as im:
            return np.asarray(im.convert("RGBA"))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.rgba.shape[1], self.rgba.shape[0]

    @cached_property
    def rgb(self) -> np.ndarray:
        """The pixels composited on :data:`BACKGROUND`, uint8 HxWx3."""
        return composite(self.rgba)

    @cached_property
    def gray(self) -> np.ndarray:
        """Luma of :attr:`rgb` as float64 in [0, 255]."""
        return to_gray(self.rgb)

    @cached_property
    def features(self) -> np.ndarray:
        return image_features(self)


def composite(rgba: np.ndarray) -> np.ndarray:
    """Composite RGBA (uint8) on :data:`BACKGROUND`, returning uint8 RGB."""
    if rgba.shape[2] == 3:
        return rgba
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    if alpha.min() >= 1.0:
        return np.ascontiguousarray(rgba[..., :3])
    bg = np.asarray(BACKGROUND, dtype=np.float32)
    out = rgba[..., :3].astype(np.float32) * alpha + bg * (1.0 - alpha)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, as PIL's "L" mode, in float64."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def image_features(image: LogoImage) -> np.ndarray:
    """Cheap descriptors of an image, each scaled to about [0, 1]."""
    rgb = image.rgb
    q = (rgb >> 3).astype(np.int32)
    codes = (q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]
    _, counts = np.unique(codes, return_counts=True)
    p = counts / counts.sum()
    gray = image.gray
    gx = np.abs(np.diff(gray, axis=1))
    gy = np.abs(np.diff(gray, axis=0))
    grad = np.concatenate([gx.ravel(), gy.ravel()])
    alpha = image.rgba[..., 3]
    w, h = image.size
    return np.array(
        [
            math.log2(len(counts)) / 15.0,  # distinct colours
            float(-(p * np.log2(p)).sum()) / 15.0,  # colour entropy
            float(p.max()),  # share of the dominant colour
            float((grad > 32).mean()) * 4.0,  # hard edges
            float(((grad > 0) & (grad <= 8)).mean()) * 2.0,  # soft ramps (gradients)
            float(grad.mean()) / 32.0,  # overall busyness
            float((alpha < 255).mean()),  # transparency
            math.log2(max(w, h)) / 12.0,  # size
        ],
        dtype=np.float32,
    ).clip(0.0, 1.0)


def load_image(path: Path, kind: str, max_size: int | None = None) -> LogoImage:
    """Read an image file, downscale it to fit ``max_size`` (if given); raise ImageError."""
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            rgba = im.convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None
    if max_size is not None and max(rgba.size) > max_size:
        rgba.thumbnail((max_size, max_size), Image.LANCZOS)
    if min(rgba.size) < MIN_SIZE:
        raise ImageError(f"{path}: image is {rgba.size[0]}x{rgba.size[1]} (after fitting it in {max_size} px); "
                         f"at least {MIN_SIZE}x{MIN_SIZE} is needed" if max_size else
                         f"{path}: image is {rgba.size[0]}x{rgba.size[1]}; at least {MIN_SIZE}x{MIN_SIZE} is needed")
    return LogoImage.from_rgba(path.stem, kind, np.asarray(rgba), source=str(path))


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
