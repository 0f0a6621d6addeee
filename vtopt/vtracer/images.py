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
        self.notes: list[str] = []  # what loading did to it (first frame of an animation, downscaled ...)

    @classmethod
    def from_rgba(cls, name: str, kind: str, rgba: np.ndarray, source: str = "") -> LogoImage:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgba, dtype=np.uint8), "RGBA").save(buf, "PNG")
        return cls(name, kind, buf.getvalue(), source)

    def __getstate__(self):
        return {"name": self.name, "kind": self.kind, "png": self.png, "source": self.source, "notes": self.notes}

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"LogoImage({self.name!r}, kind={self.kind!r}, size={self.size})"

    # Only what every conversion needs is kept (``rgb``, ``size``, ``features``): an env serving
    # thousands of images holds these for each of them. ``rgba`` and ``gray`` are derived on use.
    @property
    def rgba(self) -> np.ndarray:
        """The decoded pixels, uint8 HxWx4 (decoded anew on each use)."""
        with Image.open(io.BytesIO(self.png)) as im:
            return np.asarray(im.convert("RGBA"))

    @cached_property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        with Image.open(io.BytesIO(self.png)) as im:
            return im.size

    @cached_property
    def rgb(self) -> np.ndarray:
        """The pixels composited on :data:`BACKGROUND`, uint8 HxWx3."""
        return composite(self.rgba)

    @property
    def gray(self) -> np.ndarray:
        """Luma of :attr:`rgb` as float64 in [0, 255] (computed on each use)."""
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


#: ``kind: auto`` (a data folder's images sorted into the curriculum's kinds by :func:`image_kind`).
AUTO_KIND = "auto"
#: :func:`image_kind`'s thresholds, chosen by looking at 24 random logos of each kind.
GRADIENT_RAMPS = 0.03  # share of soft ramps (pixel steps of 1..8 grey levels) at or above: a gradient
COMPLEX_COLOURS = 6  # main colours (>= 0.5% of the pixels each) at or above: complex
TEXT_ASPECT = 2.5  # the drawing's width/height (or height/width) at or above: a wordmark
TEXT_PARTS = 6  # separate parts (8 px or more) at or above: lettering


def image_kind(image: LogoImage) -> str:
    """The curriculum kind of a real image, by a fixed rule on its pixels, first match wins:
    ``gradient`` (smooth colour ramps), ``complex`` (many main colours), ``text`` (a wide or tall
    drawing, or one of many separate parts: wordmarks and lettering), else ``simple``."""
    import cv2

    rgb = image.rgb
    gray = image.gray
    steps = np.concatenate([np.abs(np.diff(gray, axis=1)).ravel(), np.abs(np.diff(gray, axis=0)).ravel()])
    if float(((steps > 0) & (steps <= 8)).mean()) >= GRADIENT_RAMPS:
        return "gradient"
    q = (rgb >> 3).astype(np.int32)
    _, counts = np.unique((q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2], return_counts=True)
    if int((counts >= 0.005 * counts.sum()).sum()) >= COMPLEX_COLOURS:
        return "complex"
    ink = (rgb.min(axis=2) < 245).astype(np.uint8)
    ys, xs = np.nonzero(ink)
    if len(xs):
        aspect = (xs.max() - xs.min() + 1) / (ys.max() - ys.min() + 1)
        if max(aspect, 1.0 / aspect) >= TEXT_ASPECT:
            return "text"
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    if int((stats[1:, cv2.CC_STAT_AREA] >= 8).sum()) >= TEXT_PARTS:
        return "text"
    return "simple"


#: Images with more pixels than this are refused (or downscaled when asked): a guard
#: against decompression bombs and against conversions that would take minutes.
MAX_PIXELS = 16_000_000


def load_image(path: Path, kind: str, max_size: int | None = None, max_pixels: int = MAX_PIXELS,
               downscale: bool = False) -> LogoImage:
    """Read an image file as RGBA; raise ImageError naming the file and the problem.

    Animated images give their first frame; EXIF orientation is applied;
    16-bit and float images are scaled to 8 bits. Images over ``max_pixels``
    are refused unless ``downscale``; images larger than ``max_size`` on a
    side are downscaled to fit. What was done is kept in ``image.notes``.
    """
    notes: list[str] = []
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                if not downscale:
                    raise ImageError(f"{path}: {w}x{h} is {w * h:,} pixels, over the limit of {max_pixels:,} "
                                     "(downscale it, or ask vtopt to)")
                scale = (max_pixels / (w * h)) ** 0.5
                im.draft(im.mode, (int(w * scale), int(h * scale)))  # JPEG: decode at reduced size
                notes.append(f"downscaled from {w}x{h} to fit {max_pixels:,} pixels")
            if getattr(im, "n_frames", 1) > 1:
                notes.append(f"first frame of {im.n_frames}")
                im.seek(0)
            im.load()
            orientation = im.getexif().get(0x0112, 1)  # EXIF Orientation
            im = ImageOps.exif_transpose(im)
            if orientation not in (1, None):
                notes.append(f"EXIF orientation {orientation} applied")
            rgba = _to_rgba(im)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: does not exist (no such file or folder)") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: refused as a decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None
    if rgba.size[0] * rgba.size[1] > max_pixels:
        scale = (max_pixels / (rgba.size[0] * rgba.size[1])) ** 0.5
        rgba = rgba.resize((max(1, int(rgba.size[0] * scale)), max(1, int(rgba.size[1] * scale))), Image.LANCZOS)
    if max_size is not None and max(rgba.size) > max_size:
        rgba.thumbnail((max_size, max_size), Image.LANCZOS)
    if min(rgba.size) < MIN_SIZE:
        raise ImageError(f"{path}: image is {rgba.size[0]}x{rgba.size[1]}; at least {MIN_SIZE}x{MIN_SIZE} is needed"
                         + (f" (after fitting it in {max_size} px)" if max_size else ""))
    image = LogoImage.from_rgba(path.stem, kind, np.asarray(rgba), source=str(path))
    image.notes = notes
    return image


def _to_rgba(im: Image.Image) -> Image.Image:
    """RGBA, with high-bit-depth modes scaled (PIL's convert would clip them)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        if im.mode == "F":
            top = max(float(a.max()), 1.0) if a.max() > 1.0 else 1.0
        gray = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGBA")
    return im.convert("RGBA")


#: Sample icons shipped with vtopt (``--samples``; see their LICENSE.md).
SAMPLES = Path(__file__).parent.parent / "samples"


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
