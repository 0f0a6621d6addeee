"""The data set: ``kind: auto`` (real images sorted into the curriculum's kinds by a fixed rule on
their pixels), optional folders and the synthetic fallback."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_config
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


_FALLBACK = """\
run: {{name: t, seed: 0}}
data:
  synthetic: {{per_kind: 2, kinds: [simple], fallback: true}}
  folders: [{{path: {folder}, kind: auto, optional: true}}]
  validation_split: 0
  image_size: 64
"""


def test_a_missing_optional_folder_falls_back_to_synthetic_logos_with_warnings(tmp_path, pm, capsys):
    from structlog.testing import capture_logs

    from vtopt.config.checks import load_config
    from vtopt.env.data import load_dataset

    loaded = load_config(write_config(tmp_path, _FALLBACK.format(folder=tmp_path / "no-corpus")), pm=pm)
    with capture_logs() as logs:
        data = load_dataset(loaded)
    assert [im.kind for im in data.train] == ["simple", "simple"]
    events = {e["event"]: e for e in logs}
    assert "vtopt corpus" in events["data_folder_missing"]["hint"]
    assert "synthetic" in events["synthetic_fallback"]["reason"]


def test_a_folder_with_images_replaces_the_synthetic_fallback(tmp_path, pm):
    from vtopt.config.checks import load_config
    from vtopt.env.data import load_dataset

    (tmp_path / "logos").mkdir()
    Image.fromarray(_square()).save(tmp_path / "logos" / "square.png")
    Image.fromarray(_ramp()).save(tmp_path / "logos" / "ramp.png")
    loaded = load_config(write_config(tmp_path, _FALLBACK.format(folder=tmp_path / "logos")), pm=pm)
    data = load_dataset(loaded)
    assert sorted(im.kind for im in data.train) == ["gradient", "simple"]


def test_a_missing_folder_that_is_not_optional_is_still_an_error(tmp_path, pm):
    from vtopt.config.checks import load_config
    from vtopt.errors import ConfigError

    text = _FALLBACK.format(folder=tmp_path / "nope").replace(", optional: true", "")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(write_config(tmp_path, text), pm=pm)
