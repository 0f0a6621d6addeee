"""`vtopt corpus`: icons from an Iconify JSON package, drawn by vtopt's renderer."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from vtopt.cli import main
from vtopt.cli.corpus import ICON_SETS, LOGO_VALIDATION, allowed_icons, build_corpus, check_sets, logo_split
from vtopt.errors import VtoptError


def _fake_package(cache, name, version, icons=None):
    """A package tarball as `npm pack` leaves it, so that nothing is fetched (``icons``: name -> icon)."""
    icons = {
        "prefix": name, "width": 16, "height": 16,
        "icons": icons or {
            "red-square": {"body": '<path fill="#f00" d="M2 2h12v12H2z"/>'},
            "blue-bar": {"body": '<path fill="#00f" d="M0 6h32v4H0z"/>', "width": 32},  # wide: centred
            "white-only": {"body": '<path fill="#fff" d="M0 0h16v16H0z"/>'},  # invisible on white: skipped
        },
    }
    cache.mkdir(parents=True, exist_ok=True)
    data = json.dumps(icons).encode()
    with tarfile.open(cache / f"iconify-json-{name}-{version}.tgz", "w:gz") as tar:
        info = tarfile.TarInfo("package/icons.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def test_build_corpus_renders_centred_icons_on_white(tmp_path):
    s = ICON_SETS["flat-color-icons"]
    _fake_package(tmp_path / "cache", s.name, s.version)
    counts = build_corpus(tmp_path / "out", [s.name], per_set=10, size=64, cache=tmp_path / "cache",
                          progress=lambda line: None)
    assert counts == {s.name: 2}
    folder = tmp_path / "out" / s.name
    assert sorted(p.name for p in folder.glob("*.png")) == ["blue-bar.png", "red-square.png"]
    assert "MIT" in (folder / "LICENSE.txt").read_text()
    red = np.asarray(Image.open(folder / "red-square.png"))
    assert red.shape == (64, 64, 3)
    assert tuple(red[32, 32]) == (255, 0, 0) and tuple(red[2, 2]) == (255, 255, 255)
    bar = np.asarray(Image.open(folder / "blue-bar.png"))  # 32x16 viewBox fitted to the width, centred
    assert tuple(bar[32, 32]) == (0, 0, 255) and tuple(bar[5, 32]) == (255, 255, 255)


@pytest.mark.parametrize("name", ["fluent-emoji-flat", "fluent-emoji", "logos-extra", "simple-icons", "devicon",
                                  "skill-icons", "vscode-icons"])
def test_validation_and_brand_sets_are_refused(name):
    with pytest.raises(VtoptError, match="never training data: .*(validation family|held out)"):
        check_sets([name])


def test_logos_are_drawn_from_the_allow_list_only_with_a_fixed_validation_split(tmp_path):
    s = ICON_SETS["logos"]
    allowed = allowed_icons(s)
    train, val = logo_split(allowed)
    assert len(val) == LOGO_VALIDATION and not set(train) & set(val) and len(train) + len(val) == len(allowed)
    assert logo_split(allowed) == (train, val)  # fixed, whatever the corpus seed
    icons = {n: {"body": '<path fill="#0a0" d="M2 2h12v12H2z"/>'} for n in (*allowed,)}
    icons["not-on-the-list"] = {"body": '<path fill="#f00" d="M2 2h12v12H2z"/>'}
    cache = tmp_path / "cache"
    _fake_package(cache, "logos", s.version, icons)
    counts = build_corpus(tmp_path / "out", ["logos"], per_set=3, size=16, cache=cache, progress=lambda line: None,
                          validation=tmp_path / "val")
    drawn = {p.stem for p in (tmp_path / "out" / "logos").glob("*.png")}
    held = {p.stem for p in (tmp_path / "val" / "logos").glob("*.png")}
    assert counts == {"logos": 3, "logos (validation)": LOGO_VALIDATION}
    assert len(drawn) == 3 and drawn <= set(train) and held == set(val)
    assert "not-on-the-list" not in drawn | held


def test_corpus_command_names_unknown_sets(tmp_path, capsys):
    assert main(["corpus", str(tmp_path), "--sets", "nosuchset"]) == 1
    assert "unknown icon set 'nosuchset'" in capsys.readouterr().err


def test_the_logo_validation_split_never_lies_where_training_reads(tmp_path):
    s = ICON_SETS["logos"]
    allowed = allowed_icons(s)
    _, val = logo_split(allowed)
    cache = tmp_path / "cache"
    _fake_package(cache, "logos", s.version, {n: {"body": '<path fill="#0a0" d="M2 2h12v12H2z"/>'} for n in allowed})
    out = tmp_path / "out"
    with pytest.raises(VtoptError, match="must lie outside the corpus"):
        build_corpus(out, ["logos"], per_set=1, size=16, cache=cache, progress=lambda line: None,
                     validation=out / "validation")
    stale = out / "logos" / f"{val[0]}.png"  # drawn for training by an older allow-list
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    build_corpus(out, ["logos"], per_set=1, size=16, cache=cache, progress=lambda line: None,
                 validation=tmp_path / "val")
    assert not stale.exists() and (tmp_path / "val" / "logos" / f"{val[0]}.png").is_file()
