import json
import shutil

import pytest
from conftest import ICONS, TINY_RUN, expected_score, install_fake_plugin, write_config

from vtopt.apply.model import read_meta
from vtopt.cli import main


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny trained PPO policy and a fixed-preset model, made by `vtopt run`."""
    tmp = tmp_path_factory.mktemp("models")
    cfg = write_config(tmp, TINY_RUN)
    assert main(["-q", "run", str(cfg), "--out", str(tmp / "ppo")]) == 0
    assert main(["-q", "run", str(cfg), "--out", str(tmp / "preset"), "--set", "algorithm.name=preset",
                 "--set", "algorithm.params={preset: polygon}", "--set", "env.conversions_per_episode=2"]) == 0
    return tmp / "ppo" / "model.zip", tmp / "preset" / "model.zip"


def test_model_files_carry_their_metadata(models):
    meta = read_meta(models[0])
    assert meta["algorithm"] == "ppo" and meta["conversions_per_episode"] == 3
    assert read_meta(models[1])["algorithm"] == "preset"
    assert meta["postprocess"] == ["lossless"]  # the config's default, used by optimize with this model


def test_optimize_writes_one_svg_per_image_and_a_report(models, tmp_path, capsys):
    images = tmp_path / "in"
    shutil.copytree(ICONS, images)
    (images / "broken.png").write_bytes(b"this is not a png")
    out, report = tmp_path / "out", tmp_path / "report.json"
    code = main(["optimize", str(images), "--out", str(out), "--model", str(models[0]), "--budget", "3",
                 "--report", str(report), "--workers", "2"])
    assert code == 1  # one image failed, the others completed
    rows = json.loads(report.read_text())
    assert len(rows) == 5
    bad = [r for r in rows if r["error"]]
    assert len(bad) == 1 and "broken.png" in bad[0]["error"] and "not a readable image" in bad[0]["error"]
    for row in rows:
        if row["error"]:
            continue
        svg = out / (row["input"].rsplit("/", 1)[1].rsplit(".", 1)[0] + ".svg")
        assert row["output"] == str(svg) and svg.read_text().startswith("<svg")  # post-processed: no prolog
        assert len(svg.read_bytes()) == row["bytes"]
        assert set(row) >= {"input", "output", "parameters", "ssim", "bytes", "default_ssim", "default_bytes",
                            "score", "conversions", "seconds", "error"}
        assert 1 <= row["conversions"] <= 3 and row["score"] == pytest.approx(expected_score(row), abs=1e-9)
    printed = capsys.readouterr()
    assert "defaults" in printed.out and "\npolicy " in printed.out and "policy: the ppo model" in printed.out
    assert "4 of 5 images done, 1 failed" in printed.out
    # existing outputs are not overwritten silently
    assert main(["optimize", str(images / "crown.png"), "--out", str(out), "--model", str(models[0])]) == 1
    assert "--force" in capsys.readouterr().err


def test_evaluate_compares_methods_at_the_same_budget(models, tmp_path, capsys):
    report = tmp_path / "eval.json"
    code = main(["evaluate", str(ICONS), "--model", str(models[0]), "--budget", "3", "--preset-model",
                 str(models[1]), "--tpe-budget", "5", "--report", str(report), "--workers", "1",
                 "--methods", "policy,defaults,poster,photo,tuned,random,tpe"])
    assert code == 0
    captured = capsys.readouterr()
    out = captured.out
    for label in ("policy", "defaults", "poster", "photo", "tuned", "random", "tpe5"):
        assert label in out
    progress = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert len(progress) == 4 and max(map(len, progress)) <= 120  # one short line per image, seven methods or not
    rows = json.loads(report.read_text())
    by = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)
    assert all(len(v) == 4 for v in by.values())
    assert {r["conversions"] for r in by["defaults"]} == {1}
    assert {r["conversions"] for r in by["tuned"]} == {2}
    assert {r["conversions"] for r in by["random"]} == {3} and {r["conversions"] for r in by["tpe5"]} == {5}
    for r in by["tuned"]:  # the preset's parameters, or the defaults when they scored better
        assert r["parameters"]["mode"] == "polygon" or r["score"] == r["default_score"]
    for d, p in zip(by["defaults"], by["policy"]):
        assert d["input"] == p["input"] and d["default_score"] == p["default_score"]


def test_a_model_compared_by_name_is_named_under_the_table(models, capsys):
    assert main(["evaluate", str(ICONS), "--budget", "2", "--workers", "1",
                 "--methods", f"defaults,mine={models[0]}"]) == 0
    out = capsys.readouterr().out
    assert "\nmine " in out and f"(mine: the ppo model {models[0]})" in out
    # a model given a baseline's name is that model, and its footer says so (not the baseline's note)
    assert main(["evaluate", str(ICONS), "--budget", "2", "--workers", "1",
                 "--methods", f"defaults,chooser={models[0]}"]) == 0
    out = capsys.readouterr().out
    assert f"(chooser: the ppo model {models[0]})" in out and "models/chooser.zip" not in out


def test_unknown_method_and_bad_model_are_one_line_errors(models, tmp_path, capsys):
    assert main(["evaluate", str(ICONS), "--model", str(models[0]), "--methods", "policy,nosuch"]) == 1
    err = capsys.readouterr().err
    assert "--methods: 'nosuch' is none of" in err and "tpe" in err and "ppo" in err  # baselines and algorithms
    fake = tmp_path / "fake.zip"
    fake.write_text("not a model")
    assert main(["optimize", str(ICONS), "--out", str(tmp_path / "o"), "--model", str(fake)]) == 1
    err = capsys.readouterr().err
    assert "not a vtopt model file" in err and "Traceback" not in err


def test_a_crashing_worker_process_fails_only_its_images(models, tmp_path, monkeypatch, capsys):
    """A worker that dies (segfault, out of memory) makes error rows; the other images complete."""
    install_fake_plugin(tmp_path, monkeypatch, "crasher", "vtopt_crasher", "vtopt-crasher", "1.0", """
        import os
        from vtopt import hookimpl

        class Crasher:
            def learn(self, ctx): pass
            def save(self, path): pass
            def load(self, path): pass
            def start_image(self, image, default=None):
                if image.name == "crown":
                    os._exit(3)  # the whole worker process dies
            def observe(self, params, score, outcome=None): pass
            def predict(self, observation, deterministic=True):
                return None

        @hookimpl
        def vtopt_register_algorithms():
            return {"crasher": Crasher}
    """)
    report = tmp_path / "r.json"
    code = main(["-q", "evaluate", str(ICONS), "--methods", "crasher", "--workers", "2", "--report", str(report)])
    assert code == 1
    rows = {r["input"].rsplit("/", 1)[1]: r for r in json.loads(report.read_text())}
    assert "worker process failed" in rows["crown.png"]["error"]
    assert all(r["error"] is None for name, r in rows.items() if name != "crown.png")  # the others complete


def test_the_worst_ssim_column_reads_a_gain_as_plus_and_a_loss_as_minus():
    from vtopt.apply.apply import format_table

    row = {"images": 2, "mean_ssim": 0.99, "bytes_ratio": 0.8, "mean_score": 0.9, "conversions": 4.0, "seconds": 0.1}
    table = format_table({"gains": {**row, "worst_ssim_loss": -0.0454}, "loses": {**row, "worst_ssim_loss": 0.0021},
                          "failed": {"images": 0}}).splitlines()
    assert table[0].split()[4:6] == ["worst", "dSSIM"] and len(table[1]) == len(table[0])
    assert table[2].split()[:4] == ["gains", "2", "0.9900", "+0.0454"]
    assert table[3].split()[:4] == ["loses", "2", "0.9900", "-0.0021"]
    assert table[4].split() == ["failed", "0", "(every", "image", "failed)"]
    assert {len(line) for line in table[:4]} == {len(table[0])}  # the rows line up with the header
