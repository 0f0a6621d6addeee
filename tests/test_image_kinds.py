"""``kind: auto``: real images sorted into the curriculum's kinds by a fixed rule on their pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vtopt.env.data import load_folder
from vtopt.vtracer.images import LogoImage, image_kind


def _image(rgb: np.ndarray) -> LogoImage:
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    return LogoImage.from_rgba("t", "x", rgba)


def _white(size=64):
    return np.full((size, size, 3), 255, np.uint8)


def _square():
    im = _white()
    im[16:48, 16:48] = (200, 30, 30)
    return im


def _ramp():
    im = _white()
    im[8:56, 8:56] = np.linspace(0, 255, 48).astype(np.uint8)[None, :, None]
    return im


def _stripes():
    im = _white()
    colours = [(255, 0, 0), (0, 160, 0), (0, 0, 255), (240, 200, 0), (120, 0, 160), (0, 150, 160), (90, 60, 20)]
    for i, c in enumerate(colours):
        im[8:56, 8 + 7 * i: 15 + 7 * i] = c
    return im


def _wordmark():
    im = _white()
    im[28:36, 2:62] = (20, 20, 20)
    return im


def _letters():
    im = _white()
    for i in range(7):
        im[20:44, 3 + 9 * i: 8 + 9 * i] = (20, 20, 120)
    return im


def test_the_rule_sorts_drawings_by_what_they_hold():
    assert image_kind(_image(_square())) == "simple"
    assert image_kind(_image(_ramp())) == "gradient"
    assert image_kind(_image(_stripes())) == "complex"
    assert image_kind(_image(_wordmark())) == "text"
    assert image_kind(_image(_letters())) == "text"


def test_an_auto_folder_gives_each_image_its_own_kind(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.fromarray(_square()).save(tmp_path / "square.png")
    Image.fromarray(_ramp()).save(tmp_path / "sub" / "ramp.png")
    images, rejected = load_folder(tmp_path, "auto", 64)
    assert not rejected
    assert {im.name: im.kind for im in images} == {"square": "simple", "ramp": "gradient"}
