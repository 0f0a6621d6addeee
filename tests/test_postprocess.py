"""Post-processors: the built-in lossless pass draws the same picture, a broken one costs nothing, and a
third party adds one from code or through an entry point."""

import json
import re

import numpy as np
import pytest
from conftest import ICONS, REPO, install_fake_plugin, write_config

import vtopt
from vtopt import DEFAULT_PARAMS, POSTPROCESS_TOLERANCE, Method, PluginManager, hookimpl, run_images
from vtopt.cli import main
from vtopt.errors import ConfigError
from vtopt.vtracer.images import SAMPLES, list_images, load_image

WEIGHTS = {"ssim_rgb": 1.0, "size": -0.02}
TEST_ICONS = list_images(ICONS) + list_images(SAMPLES)


def test_lossless_draws_the_test_icons_the_same_in_fewer_bytes(vtopt_pm):
    """On every test icon, polygon and spline output: the kept SVG is within the tolerance of the
    unprocessed one, its pixels nearly all equal, and it is smaller; on polygon output (integer
    coordinates) svgo's result is always kept."""
    pm = vtopt_pm()
    scorer = vtopt.make_scorer(pm)
    lossless = pm.create("postprocessor", "lossless")
    from vtopt.apply.postprocess import postprocess

    kept = {"polygon": 0, "spline": 0}
    for path in TEST_ICONS:
        image = load_image(path, "input")
        for mode in kept:
            raw = scorer.evaluate(image, {**DEFAULT_PARAMS, "mode": mode}, keep_svg=True)
            post = postprocess(raw, image, scorer, [("lossless", lossless)], pm)
            if not post.applied:
                assert post.outcome is raw and "SSIM is" in post.notes[0], (path.name, mode, post.notes)
                continue
            kept[mode] += 1
            assert raw.ssim - post.outcome.ssim <= POSTPROCESS_TOLERANCE, (path.name, mode)
            assert post.outcome.svg_bytes < 0.8 * raw.svg_bytes, (path.name, mode)
            moved = np.abs(vtopt.render(post.outcome.svg, *image.size).astype(int)
                           - vtopt.render(raw.svg, *image.size).astype(int)) > 16
            assert moved.mean() < 1e-3, (path.name, mode, moved.mean())  # anti-aliasing at a few edge pixels
    assert kept["polygon"] == len(TEST_ICONS)
    assert kept["spline"] >= len(TEST_ICONS) - 4  # the few past the tolerance fell back (asserted above)


class Blank:
    """Parses and renders, but draws nothing: the SSIM check must catch it."""

    def process(self, svg):
        return svg.split("<path", 1)[0] + "</svg>"


class Raises:
    def process(self, svg):
        raise RuntimeError("cannot handle this")


class Garbage:
    def process(self, svg):
        return "<svg"


class BreakPlugin:
    @hookimpl
    def vtopt_register_postprocessors(self):
        return {"blank": Blank, "raises": Raises, "garbage": Garbage}


def test_a_broken_post_processor_keeps_the_unprocessed_svg_with_a_note(tmp_path):
    pm = PluginManager()
    pm.register(BreakPlugin(), name="breaker")
    files = list_images(ICONS)[:2]
    outputs = [str(tmp_path / f"{f.stem}.svg") for f in files]
    rows = run_images(files, outputs, [Method("defaults", 1)], WEIGHTS, workers=1, pm=pm,
                      postprocess=["blank", "raises", "garbage", "lossless"])
    unprocessed = run_images(files, [None, None], [Method("defaults", 1)], WEIGHTS, workers=1, pm=pm,
                             postprocess=["blank", "raises", "garbage"])
    for row, plain in zip(rows, unprocessed):
        assert row["error"] is None and row["postprocess"] == ["lossless"]  # the good one still ran
        notes = " | ".join(row["notes"])
        assert re.search(r"'blank' dropped: its SVG's SSIM is [0-9.e-]+ below the unprocessed one's", notes)
        assert "'raises' dropped: " in notes and "'breaker' (registered from code)" in notes
        assert "cannot handle this" in notes
        assert "'garbage' dropped: SVG could not be parsed for rendering" in notes
        assert row["raw_bytes"] == row["default_bytes"] > row["bytes"]
        assert plain["postprocess"] == [] and plain["bytes"] == plain["raw_bytes"] == plain["default_bytes"]
        assert plain["ssim"] == plain["default_ssim"] and len(plain["notes"]) == 3
        svg = (tmp_path / f"{row['input'].rsplit('/', 1)[1][:-4]}.svg").read_text()
        assert len(svg.encode()) == row["bytes"] and "<path" in svg


def test_the_guide_s_third_party_post_processor_registered_from_code_runs(capsys):
    text = (REPO / "docs" / "plugins.md").read_text().split("## Writing a post-processor", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    namespace = {"ICON": str(list_images(ICONS)[0])}
    exec(compile(block, "docs/plugins.md", "exec"), namespace)
    raw, _, kept, names = capsys.readouterr().out.split(maxsplit=3)
    svg = vtopt.convert(load_image(list_images(ICONS)[0], "input"), DEFAULT_PARAMS)
    assert int(raw) == len(svg) and int(kept) == len(svg) - svg.index("<svg")  # VTracer's prolog and comment
    assert names.strip() == "['strip_prolog']"


def test_an_installed_post_processor_runs_from_the_command_line(tmp_path, monkeypatch, capsys):
    install_fake_plugin(tmp_path, monkeypatch, "minify", "vtopt_minify", "vtopt-minify", "0.2", """
        from vtopt import hookimpl

        class Newlines:
            def process(self, svg):
                return svg.replace("\\n", "")

        @hookimpl
        def vtopt_register_postprocessors():
            return {"newlines": Newlines}
        """)
    report = tmp_path / "r.json"
    icon = list_images(ICONS)[0]
    assert main(["-q", "evaluate", str(icon), "--methods", "defaults", "--postprocess", "newlines",
                 "--report", str(report), "--workers", "1"]) == 0
    (row,) = json.loads(report.read_text())
    assert row["postprocess"] == ["newlines"] and row["bytes"] < row["raw_bytes"] == row["default_bytes"]
    assert "post-processed by newlines" in capsys.readouterr().out
    assert main(["plugins"]) == 0
    assert "newlines" in capsys.readouterr().out


def test_evaluate_post_processes_every_row_the_defaults_included_against_the_raw_defaults(tmp_path, capsys):
    icon, report = list_images(ICONS)[:2], tmp_path / "r.json"
    assert main(["-q", "evaluate", *map(str, icon), "--methods", "defaults,policy", "--report", str(report),
                 "--workers", "1"]) == 0
    out = capsys.readouterr().out
    rows = json.loads(report.read_text())
    assert {r["method"] for r in rows} == {"defaults", "policy"} and "post-processed by lossless" in out
    for row in rows:
        assert row["postprocess"] == ["lossless"] and row["bytes"] < row["raw_bytes"]
        assert row["default_score"] == row["default_ssim"]  # scores against the raw defaults' bytes
    defaults = [r for r in rows if r["method"] == "defaults"]
    assert all(r["score"] > r["default_score"] for r in defaults)
    assert main(["-q", "evaluate", *map(str, icon), "--methods", "defaults", "--postprocess", "none",
                 "--report", str(report), "--force", "--workers", "1"]) == 0
    for row in json.loads(report.read_text()):
        assert row["postprocess"] == [] and row["bytes"] == row["raw_bytes"] == row["default_bytes"]
        assert row["score"] == row["default_score"]
    assert "post-processed" not in capsys.readouterr().out


@pytest.mark.parametrize("value, message", [
    ("none,lossless", "'none' is not a registered post-processor; available: lossless"),
    ("lossless,lossless", "'lossless' named more than once"),
    (",", "name post-processors (comma-separated) or 'none'"),
])
def test_bad_postprocess_options_are_one_line(value, message, capsys):
    assert main(["evaluate", str(list_images(ICONS)[0]), "--methods", "defaults", "--postprocess", value]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_config_section_is_checked_and_recorded(tmp_path, vtopt_pm):
    pm = vtopt_pm()
    path = write_config(tmp_path, "postprocess: [lossless, shrink]\n")
    with pytest.raises(ConfigError) as exc:
        vtopt.load_config(path, pm=pm)
    assert "config.yaml:1: $.postprocess[1]: unknown postprocessor 'shrink'; available: lossless (from metrics)" \
        in str(exc.value)
    path = write_config(tmp_path, "postprocess: lossless\n")
    with pytest.raises(ConfigError, match=r"\$\.postprocess: expected a list of post-processor names"):
        vtopt.load_config(path, pm=pm)
    assert vtopt.load_config(write_config(tmp_path, "run: {name: x}\n"), pm=pm).config.postprocess == ["lossless"]
    assert vtopt.load_config(write_config(tmp_path, "postprocess: []\n"), pm=pm).config.postprocess == []


def _model_with(tmp_path, postprocess):
    """The shipped policy with its recorded ``postprocess`` replaced."""
    import zipfile

    from vtopt.apply.model import META, shipped

    src, dst = shipped("policy"), tmp_path / "policy.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == META:
                data = json.dumps({**json.loads(data), "postprocess": postprocess}).encode()
            zout.writestr(item, data)
    return dst


def test_optimize_follows_the_model_s_postprocess_unless_told(tmp_path, capsys):
    icon, out = list_images(ICONS)[0], tmp_path / "out.svg"
    model = _model_with(tmp_path, [])
    assert main(["-q", "optimize", str(icon), "-o", str(out), "--model", str(model), "--workers", "1"]) == 0
    assert out.read_text().startswith("<?xml")  # the model's run turned the pass off
    assert main(["-q", "optimize", str(icon), "-o", str(out), "--model", str(model), "--force",
                 "--postprocess", "lossless", "--workers", "1"]) == 0
    assert out.read_text().startswith("<svg")
    capsys.readouterr()
    model = _model_with(tmp_path, ["shrink"])
    assert main(["-q", "optimize", str(icon), "-o", str(out), "--model", str(model), "--force"]) == 1
    assert f"{model}: postprocess: 'shrink' is not a registered post-processor" in capsys.readouterr().err
