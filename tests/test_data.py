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


def test_a_missing_optional_folder_falls_back_to_synthetic_logos_with_warnings(tmp_path, vtopt_pm, capsys):
    pm = vtopt_pm()
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


def test_a_folder_with_images_replaces_the_synthetic_fallback(tmp_path, vtopt_pm):
    pm = vtopt_pm()
    from vtopt.config.checks import load_config
    from vtopt.env.data import load_dataset

    (tmp_path / "logos").mkdir()
    Image.fromarray(_square()).save(tmp_path / "logos" / "square.png")
    Image.fromarray(_ramp()).save(tmp_path / "logos" / "ramp.png")
    loaded = load_config(write_config(tmp_path, _FALLBACK.format(folder=tmp_path / "logos")), pm=pm)
    data = load_dataset(loaded)
    assert sorted(im.kind for im in data.train) == ["gradient", "simple"]


def test_a_missing_folder_that_is_not_optional_is_still_an_error(tmp_path, vtopt_pm):
    pm = vtopt_pm()
    from vtopt.config.checks import load_config
    from vtopt.errors import ConfigError

    text = _FALLBACK.format(folder=tmp_path / "nope").replace(", optional: true", "")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(write_config(tmp_path, text), pm=pm)


def _logos(kinds: dict[str, int]) -> list[LogoImage]:
    return [LogoImage.from_rgba(f"{kind}{i}", kind, np.dstack([_square(), np.full((64, 64), 255, np.uint8)]))
            for kind, n in kinds.items() for i in range(n)]


def test_the_split_is_per_kind_seeded_whole_and_leaves_a_lone_image_for_training():
    from vtopt.env.data import split

    images = _logos({"simple": 10, "text": 2, "gradient": 1})
    train, validation = split(images, 0.25, seed=3)
    assert sorted(im.name for im in train + validation) == sorted(im.name for im in images)  # nothing lost or doubled
    assert sorted(im.kind for im in validation) == ["simple", "simple", "text"]  # floor(10 * .25); one at least
    assert [im.name for im in split(images, 0.25, seed=3)[1]] == [im.name for im in validation]
    assert {tuple(im.name for im in split(images, 0.25, seed=s)[1]) for s in range(6)} != {
        tuple(im.name for im in validation)}  # another seed draws others
    train, validation = split(images, 0, seed=3)
    assert validation == [] and sorted(im.name for im in train) == sorted(im.name for im in images)


def test_a_folder_s_sub_folders_are_kinds_hidden_ones_skipped_and_bad_files_named(tmp_path):
    for sub in ("text", ".cache", "simple"):
        (tmp_path / sub).mkdir()
    Image.fromarray(_square()).save(tmp_path / "top.png")
    Image.fromarray(_wordmark()).save(tmp_path / "text" / "word.png")
    Image.fromarray(_square()).save(tmp_path / ".cache" / "hidden.png")
    (tmp_path / "simple" / "broken.png").write_bytes(b"not a png")
    images, rejected = load_folder(tmp_path, None, 64)
    assert sorted((im.name, im.kind) for im in images) == [("top", "mixed"), ("word", "text")]
    assert len(rejected) == 1 and str(tmp_path / "simple" / "broken.png") in rejected[0]
    named, _ = load_folder(tmp_path, "logos", 64)  # a kind given: the folder alone, every image that kind
    assert [(im.name, im.kind) for im in named] == [("top", "logos")]


def test_a_folder_of_nothing_usable_and_an_empty_data_set_name_the_config(tmp_path, vtopt_pm):
    from vtopt.config.checks import load_config
    from vtopt.env.data import load_dataset
    from vtopt.errors import VtoptError

    (tmp_path / "logos").mkdir()
    (tmp_path / "logos" / "broken.png").write_bytes(b"not a png")
    text = _FALLBACK.format(folder=tmp_path / "logos").replace("fallback: true", "fallback: false")
    loaded = load_config(write_config(tmp_path, text), pm=vtopt_pm())
    with pytest.raises(VtoptError, match=f"^{loaded.path}: data folder {tmp_path / 'logos'} holds no usable image "
                                         r"\(1 rejected\); first: .*broken.png"):
        load_dataset(loaded)
    loaded = load_config(write_config(tmp_path, _FALLBACK.format(folder=tmp_path / "gone")
                                      .replace("synthetic: {per_kind: 2, kinds: [simple], fallback: true}",
                                               "synthetic: null")))
    with pytest.raises(VtoptError, match=fr"^{loaded.path}: the data set is empty \(0 file\(s\) rejected\)"):
        load_dataset(loaded)
