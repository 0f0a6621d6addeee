"""Hostile inputs: every kind of bad or odd image file, each with its exact behaviour."""

import io
import json
import random

import numpy as np
import pytest
from conftest import TINY_RUN, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vtopt.cli import main
from vtopt.vtracer.images import ImageError, load_image
from vtopt.vtracer.params import DEFAULT_PARAMS
from vtopt.vtracer.vectorize import convert


def _logo(size=(40, 40), mode="RGBA"):
    a = np.full((size[1], size[0], 4), 255, np.uint8)
    a[size[1] // 4: 3 * size[1] // 4, size[0] // 4: 3 * size[0] // 4] = (200, 40, 40, 255)
    return Image.fromarray(a, "RGBA").convert(mode)


def _save(im, path, **kw):
    im.save(path, **kw)
    return path


def make_corpus(d):
    """name -> (path, expected: 'ok' | 'ok:<note>' | 'error:<phrase>')."""
    c = {}
    good = _save(_logo(), d / "good.png")
    c["good"] = (good, "ok")
    data = good.read_bytes()
    (d / "truncated.png").write_bytes(data[: len(data) // 2])
    c["truncated"] = (d / "truncated.png", "error:not a readable image")
    (d / "empty.png").write_bytes(b"")
    c["zero bytes"] = (d / "empty.png", "error:not a readable image")
    (d / "notes.png").write_text("this is text, not a picture\n")
    c["text"] = (d / "notes.png", "error:not a readable image")
    (d / "noise.jpg").write_bytes(random.Random(0).randbytes(5000))
    c["random bytes"] = (d / "noise.jpg", "error:not a readable image")
    c["1x1"] = (_save(Image.new("RGB", (1, 1), "red"), d / "dot.png"), "error:at least 8x8")
    c["too many pixels"] = (_save(Image.new("L", (5000, 4000), 0), d / "huge.png", optimize=True),
                            "error:over the limit of 16,000,000")
    a16 = (np.asarray(_logo(mode="L"), np.uint16) * 257)
    c["16-bit"] = (_save(Image.fromarray(a16.astype(np.uint16)), d / "sixteen.png"), "ok")
    pal = _logo(mode="RGB").convert("P", palette=Image.ADAPTIVE, colors=4)
    c["palette"] = (_save(pal, d / "palette.png", transparency=0), "ok")
    c["grayscale"] = (_save(_logo(mode="L"), d / "gray.png"), "ok")
    c["cmyk jpeg"] = (_save(_logo(mode="CMYK"), d / "cmyk.jpg", quality=95), "ok")
    c["fully transparent"] = (_save(Image.new("RGBA", (40, 40), (0, 0, 0, 0)), d / "clear.png"), "ok")
    part = _logo()
    part.putalpha(Image.linear_gradient("L").resize((40, 40)))
    c["partly transparent"] = (_save(part, d / "part.png"), "ok")
    frames = [_logo(mode="RGB"), Image.new("RGB", (40, 40), "blue")]
    c["animated gif"] = (_save(frames[0], d / "anim.gif", save_all=True, append_images=frames[1:]), "ok:first frame of 2")
    c["animated webp"] = (_save(frames[0], d / "anim.webp", save_all=True, append_images=frames[1:], lossless=True),
                          "ok:first frame of 2")
    tall = _logo(size=(40, 20), mode="RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    c["exif rotated"] = (_save(tall, d / "rotated.jpg", exif=exif.tobytes()), "ok")
    return c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    return d, make_corpus(d)


def test_each_case_is_handled_or_rejected_in_one_line(corpus):
    _, cases = corpus
    for name, (path, expected) in cases.items():
        if expected.startswith("error:"):
            with pytest.raises(ImageError) as info:
                load_image(path, "x")
            message = str(info.value)
            assert message.startswith(str(path)) and expected[6:] in message and "\n" not in message, name
        else:
            image = load_image(path, "x")
            assert image.rgba.shape[2] == 4, name
            assert convert(image, DEFAULT_PARAMS).startswith("<?xml"), name
            if expected.startswith("ok:"):
                assert expected[3:] in image.notes, name


def test_pixel_values_survive_odd_modes(corpus):
    _, cases = corpus
    sixteen = load_image(cases["16-bit"][0], "x").rgb
    assert sixteen.max() == 255 and sixteen.min() < 100  # scaled, not clipped to white
    rotated = load_image(cases["exif rotated"][0], "x")
    assert rotated.size == (20, 40)  # EXIF orientation applied
    clear = load_image(cases["fully transparent"][0], "x")
    assert (clear.rgb == 255).all()  # composited on the white background


def test_large_images_are_downscaled_when_asked(tmp_path):
    path = _save(Image.new("RGB", (6000, 3000), "white"), tmp_path / "big.jpg", quality=50)
    image = load_image(path, "x", max_pixels=2_000_000, downscale=True)
    w, h = image.size
    assert w * h <= 2_000_000 and abs(w / h - 2) < 0.05
    assert any("downscaled from 6000x3000" in n for n in image.notes)


def test_optimize_completes_the_good_images_and_reports_the_bad(corpus, tmp_path, capsys):
    folder, cases = corpus
    report, out = tmp_path / "r.json", tmp_path / "out"
    code = main(["-q", "optimize", str(folder), "--out", str(out), "--budget", "2", "--report", str(report),
                 "--workers", "2"])
    assert code == 1
    rows = {r["input"]: r for r in json.loads(report.read_text())}
    for name, (path, expected) in cases.items():
        row = rows[str(path)]
        if expected.startswith("error:"):
            assert row["error"] and expected[6:] in row["error"] and row["output"] is None, name
        else:
            assert row["error"] is None and (out / f"{path.stem}.svg").is_file(), name
    assert "first frame of 2" in rows[str(cases["animated gif"][0])]["notes"]
    # two inputs with one stem (anim.gif, anim.webp) get two outputs
    assert {rows[str(cases["animated gif"][0])]["output"], rows[str(cases["animated webp"][0])]["output"]} == \
        {str(out / "anim.svg"), str(out / "anim-2.svg")}
    assert not list(out.glob(".*.tmp"))


def test_training_reports_bad_images_at_load_and_completes(corpus, tmp_path):
    folder, cases = corpus
    cfg = write_config(tmp_path, TINY_RUN.replace("  synthetic: {per_kind: 3}\n", f"  synthetic: {{per_kind: 3}}\n  folders: [{{path: {folder}, kind: simple}}]\n"))  # noqa: E501
    assert main(["-q", "run", str(cfg), "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    rejected = " ".join(summary["images"]["rejected"])
    for name, (path, expected) in cases.items():
        assert (str(path) in rejected) == expected.startswith("error:"), name


def test_conversion_past_the_time_limit_is_abandoned(corpus, tmp_path):
    folder, cases = corpus
    report = tmp_path / "r.json"
    code = main(["-q", "optimize", str(cases["good"][0]), "--out", str(tmp_path / "o"), "--budget", "2",
                 "--report", str(report), "--conversion-timeout", "0.000001", "--workers", "1"])
    assert code == 1
    (row,) = json.loads(report.read_text())
    assert "did not finish within" in row["error"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(w=st.integers(8, 64), h=st.integers(8, 64), mode=st.sampled_from(["RGB", "RGBA", "L", "LA", "P", "1", "I;16"]),
       seed=st.integers(0, 2**16), fmt=st.sampled_from(["PNG", "GIF", "WEBP", "BMP", "TIFF"]))
def test_every_image_the_loader_accepts_converts(tmp_path, w, h, mode, seed, fmt):
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    else:
        im = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA").convert(mode)
    buf = io.BytesIO()
    try:
        im.save(buf, fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot hold this mode: nothing to load
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(buf.getvalue())
    try:
        image = load_image(path, "x")
    except ImageError:
        return
    assert convert(image, DEFAULT_PARAMS).startswith("<?xml")
