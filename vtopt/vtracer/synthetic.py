"""A deterministic generator of synthetic logos in four kinds.

The embedded default data set: ``vtopt run`` needs no files. Each image is a
pure function of (kind, index, seed, size). Shapes are drawn at 4x and
downsampled, so edges are anti-aliased as in real logos.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .images import LogoImage

#: The kinds of logo, in the order a curriculum teaches them (simplest first).
KINDS = ("simple", "text", "gradient", "complex")
_SS = 4  # supersampling factor
_PALETTE = np.array(
    [
        (230, 57, 70), (29, 53, 87), (69, 123, 157), (244, 162, 97), (42, 157, 143),
        (38, 70, 83), (233, 196, 106), (231, 111, 81), (255, 183, 3), (2, 48, 71),
        (131, 56, 236), (58, 134, 255), (255, 0, 110), (6, 214, 160), (17, 17, 17),
        (120, 120, 120),
    ],
    dtype=np.uint8,
)
_WORDS = ("A", "VT", "Go", "ACME", "logo", "Q", "88", "Hi", "ZAP", "ok", "MW", "Rx")


def generate(kind: str, index: int, seed: int = 0, size: int = 128) -> LogoImage:
    """The ``index``-th synthetic logo of ``kind``, as an RGBA LogoImage."""
    if kind not in KINDS:
        raise ValueError(f"unknown synthetic kind {kind!r}; known: {list(KINDS)}")
    rng = np.random.default_rng([seed, KINDS.index(kind), index])
    s = size * _SS
    transparent = rng.random() < 0.25
    canvas = Image.new("RGBA", (s, s), (255, 255, 255, 0 if transparent else 255))
    draw = ImageDraw.Draw(canvas)
    if kind == "simple":
        for _ in range(int(rng.integers(1, 4))):
            _shape(draw, rng, s, _colour(rng))
    elif kind == "text":
        if rng.random() < 0.5:
            _shape(draw, rng, s, _colour(rng), big=True)
        _text(draw, rng, s)
    elif kind == "gradient":
        _gradient_shape(canvas, rng, s)
        if rng.random() < 0.5:
            _shape(ImageDraw.Draw(canvas), rng, s, _colour(rng))
    elif rng.random() < 0.6:
        _icon(draw, rng, s)
    else:
        for _ in range(int(rng.integers(6, 16))):
            outline = _colour(rng) if rng.random() < 0.3 else None
            _shape(draw, rng, s, _colour(rng, alpha=rng.random() < 0.3), outline=outline)
        if rng.random() < 0.5:
            _text(draw, rng, s)
    small = canvas.resize((size, size), Image.LANCZOS)
    return LogoImage.from_rgba(f"{kind}-{seed}-{index:04d}", kind, np.asarray(small), source=f"synthetic:{kind}")


def _colour(rng, alpha: bool = False) -> tuple[int, ...]:
    c = tuple(int(v) for v in _PALETTE[rng.integers(len(_PALETTE))])
    return c + ((int(rng.integers(120, 230)) if alpha else 255),)


def _box(rng, s, big=False):
    lo = 0.35 if big else 0.12
    w, h = (rng.uniform(lo, 0.8) * s for _ in range(2))
    x, y = rng.uniform(0.05 * s, 0.95 * s - w), rng.uniform(0.05 * s, 0.95 * s - h)
    return [x, y, x + w, y + h]


def _shape(draw, rng, s, fill, outline=None, big=False):
    box = _box(rng, s, big)
    width = int(rng.integers(2, 6) * _SS) if outline else 0
    what = rng.integers(4)
    if what == 0:
        draw.ellipse(box, fill=fill, outline=outline, width=width)
    elif what == 1:
        draw.rounded_rectangle(box, radius=float(rng.uniform(0, 0.3)) * (box[2] - box[0]), fill=fill,
                               outline=outline, width=width)
    else:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        r = min(box[2] - box[0], box[3] - box[1]) / 2
        n = int(rng.integers(3, 9))
        star = what == 3
        k = 2 * n if star else n
        angles = np.linspace(0, 2 * np.pi, k, endpoint=False) + rng.uniform(0, np.pi)
        radii = np.where(np.arange(k) % 2, r * 0.45, r) if star else np.full(k, r)
        pts = [(cx + rr * np.cos(a), cy + rr * np.sin(a)) for a, rr in zip(angles, radii)]
        draw.polygon(pts, fill=fill, outline=outline, width=width)


def _shade(colour, factor):
    rgb = np.array(colour[:3], np.float32)
    target = 255.0 if factor > 0 else 0.0
    return tuple(int(v) for v in rgb + (target - rgb) * abs(factor)) + (255,)


def _icon(draw, rng, s):
    """An emoji-like icon: a body with an outline, tonal shading and small details."""
    base = _colour(rng)
    box = _box(rng, s, big=True)
    outline = _shade(base, -0.6) if rng.random() < 0.6 else None
    width = int(rng.integers(1, 4) * _SS)
    draw.ellipse(box, fill=base, outline=outline, width=width) if rng.random() < 0.5 else \
        draw.rounded_rectangle(box, radius=0.25 * (box[2] - box[0]), fill=base, outline=outline, width=width)
    w, h = box[2] - box[0], box[3] - box[1]
    for _ in range(int(rng.integers(1, 4))):  # tonal patches (highlights, shadows)
        cx, cy = box[0] + rng.uniform(0.2, 0.8) * w, box[1] + rng.uniform(0.2, 0.8) * h
        rx, ry = rng.uniform(0.08, 0.3) * w, rng.uniform(0.08, 0.3) * h
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=_shade(base, rng.uniform(-0.35, 0.45)))
    for _ in range(int(rng.integers(2, 12))):  # small details: eyes, dots, sparkles
        r = rng.uniform(1.5, 7) * _SS
        cx, cy = rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_colour(rng) if rng.random() < 0.5 else (30, 30, 30, 255))
    for _ in range(int(rng.integers(0, 4))):  # thin strokes
        x0, y0 = rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])
        x1, y1 = x0 + rng.uniform(-0.3, 0.3) * w, y0 + rng.uniform(-0.3, 0.3) * h
        draw.line([x0, y0, x1, y1], fill=_shade(base, -0.5), width=int(rng.uniform(1, 4) * _SS))


def _text(draw, rng, s):
    word = _WORDS[rng.integers(len(_WORDS))]
    font = ImageFont.load_default(size=int(s * rng.uniform(0.5, 0.9) / max(1, len(word) ** 0.7)))
    x0, y0, x1, y1 = draw.textbbox((0, 0), word, font=font)
    x = (s - (x1 - x0)) / 2 - x0 + rng.uniform(-0.05, 0.05) * s
    y = (s - (y1 - y0)) / 2 - y0 + rng.uniform(-0.05, 0.05) * s
    draw.text((x, y), word, font=font, fill=_colour(rng))


def _gradient_shape(canvas: Image.Image, rng, s):
    c0, c1 = (np.array(_colour(rng)[:3], np.float32) for _ in range(2))
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    if rng.random() < 0.5:
        a = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(a) + yy * np.sin(a)
    else:
        cx, cy = rng.uniform(0.3, 0.7, 2)
        t = np.hypot(xx - cx, yy - cy)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    fill = (c0 + (c1 - c0) * t[..., None]).astype(np.uint8)
    mask = Image.new("L", (s, s), 0)
    _shape(ImageDraw.Draw(mask), rng, s, 255, big=True)
    grad = Image.fromarray(np.dstack([fill, np.full((s, s), 255, np.uint8)]), "RGBA")
    canvas.paste(grad, (0, 0), mask)


def synthetic_set(kinds, per_kind: int, seed: int, size: int) -> list[LogoImage]:
    return [generate(kind, i, seed, size) for kind in kinds for i in range(per_kind)]
