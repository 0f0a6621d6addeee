"""Where a conversion differs from its image: cheap measurements for a policy to observe.

A score says *how much* a conversion lost; these say *where*, so that a
policy can tell a conversion that blurred the edges (try a finer corner or
splice threshold) from one that merged the fills' colours (a finer colour
precision or layer difference) or dropped small parts (a lower speckle
filter). Each is computed from the image's pixels and the rendered SVG,
which the scorer already holds, in about a millisecond at 256 px; each lies
in [0, 1], 0 where nothing went wrong:

- ``edge_error``: mean absolute colour error on the image's edges;
- ``flat_error``: mean absolute colour error away from them;
- ``fill_colour_error``: the share of flat pixels off by more than
  :data:`OFF_COLOUR` (a fill of the wrong colour, not a blurred border);
- ``parts_lost`` / ``parts_added``: the change in the number of separate
  parts (connected foreground regions), relative to the image's;
- ``strokes_broken``: the share of thin-stroke pixels drawn as background.
"""

from __future__ import annotations

import attrs
import numpy as np

#: The measurements, in the order :func:`diagnose` returns them.
DIAGNOSTICS = ("edge_error", "flat_error", "fill_colour_error", "parts_lost", "parts_added", "strokes_broken")
#: Raised whenever what :func:`diagnose` measures changes (a threshold included): labels made before are made again.
DIAGNOSE_VERSION = 1

#: A flat pixel whose mean channel error exceeds this (of 255) has the wrong colour.
OFF_COLOUR = 24.0
#: A pixel is foreground when its darkest channel is below this (images are composited on white).
BACKGROUND = 245
#: Parts smaller than this many pixels are not counted (antialiasing crumbs).
MIN_PART = 4


@attrs.frozen
class Reference:
    """What :func:`diagnose` needs of an image, computed once per image."""

    rgb: np.ndarray  # uint8 HxWx3
    edges: np.ndarray  # bool HxW
    thin: np.ndarray  # bool HxW: foreground pixels of strokes at most 2 px wide
    parts: int


def _parts(foreground: np.ndarray) -> int:
    import cv2

    n, _, stats, _ = cv2.connectedComponentsWithStats(foreground.astype(np.uint8), connectivity=8)
    return int((stats[1:, cv2.CC_STAT_AREA] >= MIN_PART).sum()) if n > 1 else 0


def reference(rgb: np.ndarray) -> Reference:
    """Prepare an image (uint8 HxWx3) for :func:`diagnose`."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    kernel = np.ones((3, 3), np.uint8)
    gradient = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, kernel)
    edges = cv2.dilate((gradient > 24).astype(np.uint8), kernel) > 0
    fg = _foreground(rgb).astype(np.uint8)
    thin = (fg > 0) & (cv2.erode(fg, kernel) == 0)
    return Reference(np.ascontiguousarray(rgb, dtype=np.uint8), edges, thin, _parts(fg))


def _foreground(rgb: np.ndarray) -> np.ndarray:
    """Where the darkest channel is below :data:`BACKGROUND` (OpenCV: numpy's reduction over channels is slow)."""
    import cv2

    r, g, b = cv2.split(np.ascontiguousarray(rgb))
    return cv2.min(cv2.min(r, g), b) < BACKGROUND


_MEAN_OF_CHANNELS = np.full((1, 3), 1.0 / 3.0, np.float32)


def diagnose(ref: Reference, rendered: np.ndarray) -> tuple[float, ...]:
    """The :data:`DIAGNOSTICS` of a rendering (uint8 HxWx3, the image's size) against its image."""
    import cv2

    # the mean absolute error over the channels, per pixel (OpenCV: a tenth of numpy's time)
    error = cv2.transform(cv2.absdiff(np.ascontiguousarray(rendered, dtype=np.uint8), ref.rgb).astype(np.float32),
                          _MEAN_OF_CHANNELS)
    flat = ~ref.edges
    edge_error = float(error[ref.edges].mean()) / 255.0 if ref.edges.any() else 0.0
    flat_error = float(error[flat].mean()) / 255.0 if flat.any() else 0.0
    off = float((error[flat] > OFF_COLOUR).mean()) if flat.any() else 0.0
    fg = _foreground(rendered)
    parts = _parts(fg)
    base = max(ref.parts, 1)
    lost = min(max(ref.parts - parts, 0) / base, 1.0)
    added = min(max(parts - ref.parts, 0) / base, 1.0)
    broken = float((~fg[ref.thin]).mean()) if ref.thin.any() else 0.0
    return (min(edge_error, 1.0), min(flat_error, 1.0), off, lost, added, broken)
