"""What a new user meets first: shipped samples, one-file output, reruns, and messages that say enough."""

import json

import numpy as np
from PIL import Image

from vtopt.cli import main
from vtopt.training.sweep import write_results
from vtopt.vtracer.images import IMAGE_SUFFIXES, SAMPLES, list_images


def test_samples_ship_with_their_licence_and_optimize_one_to_a_file(tmp_path, capsys):
    samples = list_images(SAMPLES)
    assert len(samples) == 24 and "MIT License" in (SAMPLES / "LICENSE.md").read_text()
    out = tmp_path / "sub" / "bird.svg"
    assert main(["optimize", str(samples[0]), "-o", str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert out.read_text().startswith("<svg") and f"1 of 1 images done; SVG in {out}" in printed
    assert "\npolicy " in printed and "policy: the chooser model " in printed  # evaluate's name; the footer says which
    assert main(["optimize", str(samples[0]), "-o", str(out)]) == 1
    assert f"{out}: exists; pass --force" in capsys.readouterr().err
    assert main(["optimize", "--samples", "-o", str(out)]) == 1
    assert "takes exactly one input image, got 24; use --out DIR" in capsys.readouterr().err


def test_optimize_to_stdout_keeps_the_table_off_it(tmp_path, capsys):
    assert main(["optimize", str(list_images(SAMPLES)[1]), "-o", "-", "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("<svg") and captured.out.rstrip().endswith("</svg>")
    assert "mean SSIM" in captured.err and "SVG on stdout" in captured.err


def test_skip_existing_reruns_only_the_missing_images(tmp_path, capsys):
    images = tmp_path / "in"
    images.mkdir()
    for src in list_images(SAMPLES)[:3]:
        (images / src.name).write_bytes(src.read_bytes())
    out = tmp_path / "out"
    assert main(["-q", "optimize", str(images), "--out", str(out), "--workers", "1"]) == 0
    svgs = sorted(out.glob("*.svg"))
    assert len(svgs) == 3
    svgs[0].unlink()
    svgs[1].write_text("kept")
    capsys.readouterr()
    assert main(["-q", "optimize", str(images), "--out", str(out), "--workers", "1"]) == 1
    assert "pass --force to overwrite them or --skip-existing to leave them" in capsys.readouterr().err
    assert main(["-q", "optimize", str(images), "--out", str(out), "--skip-existing", "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "skipping 2 image(s)" in captured.err and "1 of 1 images done" in captured.out
    assert svgs[0].read_text().startswith("<svg") and svgs[1].read_text() == "kept"
    assert main(["-q", "optimize", str(images), "--out", str(out), "--skip-existing"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_an_svg_much_larger_than_its_input_gets_a_note(tmp_path, capsys):
    rng = np.random.default_rng(0)
    photo = tmp_path / "noise.jpg"
    Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(photo, quality=30)
    report = tmp_path / "rows.json"
    assert main(["-q", "optimize", str(photo), "-o", str(tmp_path / "noise.svg"), "--report", str(report),
                 "--workers", "1"]) == 0
    (row,) = json.loads(report.read_text())
    assert row["bytes"] > 4 * photo.stat().st_size
    assert any("the input file's size: vector output suits flat-colour art" in n for n in row["notes"])
    assert "note: 1 SVG(s) over 4x their input file's size" in capsys.readouterr().err


def test_messages_that_finish_the_job(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nosuch.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"nosuch.yaml: no such file ({tmp_path / 'nosuch.yaml'})" in err and ":0:" not in err
    (tmp_path / "empty").mkdir()
    assert main(["optimize", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 1
    assert f"no images in this folder (accepted: {', '.join(IMAGE_SUFFIXES)})" in capsys.readouterr().err
    assert main(["evaluate"]) == 1
    assert "name an image or a folder of images, or pass --samples" in capsys.readouterr().err
    assert main(["evaluate", "--samples", "--methods", "random,defaults,random"]) == 1
    assert "more than one method labelled 'random'" in capsys.readouterr().err
    text = write_results([{"trial": "trial-000", "score": 5792.375}, {"trial": "trial-001", "score": 0.97531}],
                         tmp_path / "sweep", "mean_bytes")
    assert " 5792 " in text and "0.9753" in text and "5792.3750" not in text


def test_every_command_and_argument_has_help(capsys):
    import argparse

    from vtopt.cli.commandline import _parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    helped = {c.dest for c in sub._choices_actions if c.help}
    assert helped == set(sub.choices)
    for name, parser in sub.choices.items():
        bare = [a.dest for a in parser._actions if not a.help and a.dest != "help"]
        assert not bare, f"vtopt {name}: arguments without help: {bare}"
    assert main(["sweep", "--help"]) == 0
    out = capsys.readouterr().out
    assert "space:" in out and "loguniform(a, b)" in out and "metric:" in out


def test_reruns_keep_the_report_and_one_file_outputs_can_be_skipped(tmp_path, capsys):
    import glob
    import tempfile

    images = tmp_path / "in"
    images.mkdir()
    for src in list_images(SAMPLES)[:2]:
        (images / src.name).write_bytes(src.read_bytes())
    out, report = tmp_path / "out", tmp_path / "rows.json"
    assert main(["-q", "optimize", str(images), "--out", str(out), "--report", str(report), "--workers", "1"]) == 0
    first = sorted(out.glob("*.svg"))[0]
    first.unlink()
    assert main(["-q", "optimize", str(images), "--out", str(out), "--report", str(report), "--skip-existing",
                 "--workers", "1"]) == 0
    rows = json.loads(report.read_text())
    assert len(rows) == 2 and len({r["input"] for r in rows}) == 2  # the skipped image's row is kept
    one = tmp_path / "one.svg"
    one.write_text("kept")
    assert main(["-q", "optimize", str(images / first.name.replace(".svg", ".png")), "-o", str(one),
                 "--skip-existing"]) == 0
    assert one.read_text() == "kept" and "nothing to do" in capsys.readouterr().out
    assert main(["optimize", str(list_images(SAMPLES)[0]), "-o", "-", "--skip-existing"]) == 1
    assert "--skip-existing has nothing to skip" in capsys.readouterr().err
    before = set(glob.glob(f"{tempfile.gettempdir()}/vtopt-*"))
    assert main(["optimize", str(list_images(SAMPLES)[0]), "-o", "-", "--executor", "nosuch"]) == 1
    assert set(glob.glob(f"{tempfile.gettempdir()}/vtopt-*")) == before  # no temp folder left behind


def test_an_image_named_twice_is_done_once(tmp_path):
    report = tmp_path / "rows.json"
    sample = list_images(SAMPLES)[0]
    assert main(["-q", "evaluate", str(sample), "--samples", "--methods", "defaults", "--report", str(report)]) == 0
    assert len(json.loads(report.read_text())) == 24


def test_a_default_row_whose_dependency_is_missing_is_left_out_and_said(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "optuna", None)  # as if the tune extra were not installed
    assert main(["-q", "evaluate", str(list_images(SAMPLES)[0]), "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "note: tpe40 is left out: algorithm 'tpe': needs Optuna: pip install 'vtopt[tune]'" in captured.err
    assert "portfolio " in captured.out and "tpe40" not in captured.out
    assert main(["-q", "evaluate", str(list_images(SAMPLES)[0]), "--methods", "tpe"]) == 1  # asked for: an error
    assert "needs Optuna" in capsys.readouterr().err


def test_quiet_and_verbose_are_taken_after_the_command_too(tmp_path):
    from vtopt.cli.commandline import _parser

    assert _parser().parse_args(["optimize", "x.png", "-o", "y.svg", "-q"]).quiet is True
    assert _parser().parse_args(["-q", "optimize", "x.png", "-o", "y.svg"]).quiet is True  # not reset by the command
    assert _parser().parse_args(["optimize", "x.png", "-o", "y.svg"]).quiet is False
    assert main(["validate", str(tmp_path / "nosuch.yaml"), "-v"]) == 2


def test_exif_orientation_is_noted_and_an_unused_model_is_refused(tmp_path, capsys):
    img = Image.fromarray(np.zeros((64, 128, 3), np.uint8) + 200)
    exif = img.getexif()
    exif[0x0112] = 6  # rotated 90 degrees
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif)
    report = tmp_path / "rows.json"
    assert main(["-q", "optimize", str(path), "-o", str(tmp_path / "r.svg"), "--report", str(report)]) == 0
    assert "EXIF orientation 6 applied" in json.loads(report.read_text())[0]["notes"]
    assert main(["evaluate", str(path), "--model", str(tmp_path / "m.zip"), "--methods", "defaults"]) == 1
    assert "'policy' is not among --methods, so it would not be used" in capsys.readouterr().err
