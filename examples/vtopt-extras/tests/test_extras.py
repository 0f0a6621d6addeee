"""Tests of the example plugins, written with vtopt's own fixtures (vtopt.testing).

The package is installed into a throwaway folder for these tests, never
into the user's environment: a real ``pip install`` (a wheel with its entry
points), put on ``sys.path`` (and ``PYTHONPATH`` for subprocesses) only while
they run, so vtopt discovers the plugin exactly as an installed package.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vtopt import Sample, convert, render

PACKAGE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def installed_extras(tmp_path_factory) -> Path:
    target, source = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("src") / "vtopt-extras"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__", "tests"))
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *isolation,
                    "--target", str(target), str(source)], check=True)
    return target


@pytest.fixture(autouse=True)
def _extras_on_path(installed_extras, monkeypatch):
    monkeypatch.syspath_prepend(str(installed_extras))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(installed_extras),
                                                                    os.environ.get("PYTHONPATH")])))
    for name in [m for m in sys.modules if m == "vtopt_extras" or m.startswith("vtopt_extras.")]:
        del sys.modules[name]  # imported afresh from the installed copy


def test_installed_package_is_listed(vtopt_pm):
    info = {i.name: i for i in vtopt_pm().plugins()}["extras"]
    assert info.distribution == "vtopt-extras" and info.version == "0.1.0"
    assert info.provides == {"algorithm": ["cem"], "curriculum": ["round_robin"], "metric": ["edges"],
                             "monitor": ["jsonl_metrics"]}


def test_edges_metric(vtopt_pm, vtopt_images):
    metric = vtopt_pm().create("metric", "edges")
    image = vtopt_images[0]
    state = metric.prepare(image)
    assert metric.compute(Sample(image, "", image.rgb, None), state) == 1.0
    svg = convert(image, {"filter_speckle": 16, "color_precision": 2})
    value = metric.compute(Sample(image, svg, render(svg, *image.size), None), state)
    assert 0.0 <= value < 1.0


def test_round_robin_cycles_kinds(vtopt_pm):
    rr = vtopt_pm().create("curriculum", "round_robin", {"episodes_per_kind": 2})
    rr.start(["a", "b"])
    seen = []
    for _ in range(6):
        seen.append(rr.stage())
        rr.record(rr.stage(), 0.0, 0)
    assert seen == ["a", "a", "b", "b", "a", "a"]


def test_a_run_with_all_four_components(vtopt_run):
    summary, run_dir = vtopt_run(
        "algorithm: {name: cem, params: {init_std: 0.6}}\n"
        "curriculum: {name: round_robin, params: {episodes_per_kind: 2}}\n"
        "reward: {weights: {ssim_rgb: 1.0, size: -0.02, edges: 0.05}, params: {edges: {threshold: 40.0}}}\n"
        "monitors: [{name: structlog, params: {console: false}}, {name: jsonl_metrics}]\n",
        overrides=["run.timesteps=96"],
    )
    assert summary["algorithm"] == "cem" and summary["total_timesteps"] == 96  # cem steps the env to learn
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == summary["episodes"] == 48  # 96 steps, 2 per episode (the defaults are its 1st conversion)
    kinds = [line["kind"] for line in lines]
    changes = sum(a != b for a, b in zip(kinds, kinds[1:]))
    assert len(set(kinds)) == 4 and 16 <= changes <= 24  # round_robin: a new kind every 2 episodes (uniform: ~36)
    with zipfile.ZipFile(run_dir / "model.zip") as zf:
        learned = json.loads(zf.read("cem.json"))
    assert learned["timesteps"] == 96 and learned["start_mean"] != [0.0] * len(learned["start_mean"])
    assert {r["conversions"] for r in summary["evaluation_rows"]} == {3}
    with zipfile.ZipFile(run_dir / "model.zip") as zf:
        meta = json.loads(zf.read("vtopt.json"))
    assert meta["reward_params"] == {"edges": {"threshold": 40.0}}  # optimize scores as the run did


def test_metric_params_from_the_config_take_effect(vtopt_pm, vtopt_images):
    from vtopt import make_scorer

    weights = {"ssim_rgb": 1.0, "edges": 1.0}
    scores = set()
    for threshold in (4.0, 80.0):
        scorer = make_scorer(vtopt_pm(), weights, metric_params={"edges": {"threshold": threshold}})
        assert scorer.metrics["edges"].threshold == threshold
        scores.add(round(scorer.evaluate(vtopt_images[6], {"filter_speckle": 16}).score, 6))
    assert len(scores) == 2


def test_a_ppo_run_feeds_the_monitor_and_curriculum(vtopt_run):
    summary, run_dir = vtopt_run(
        "curriculum: {name: round_robin, params: {episodes_per_kind: 3}}\n"
        "monitors: [{name: jsonl_metrics, params: {file: m.jsonl}}]\n"
    )
    lines = [json.loads(l) for l in (run_dir / "m.jsonl").read_text().splitlines()]
    assert len(lines) == summary["episodes"] > 0
    kinds = [l["kind"] for l in lines]
    assert kinds[:3] == [kinds[0]] * 3 and len(set(kinds)) > 1
    assert all(np.isfinite(l["improvement"]) for l in lines)


def test_the_cem_baseline_and_its_option(vtopt_pm, vtopt_run, vtopt_images, tmp_path):
    from PIL import Image

    (cem,) = [b for b in vtopt_pm().baselines(3) if b.name == "cem"]
    assert (cem.method.algorithm, cem.evaluate) == ("cem", False)  # untrained: only when asked for
    _, run_dir = vtopt_run("algorithm: {name: cem}\n", overrides=["run.timesteps=32"])
    image = tmp_path / "logo.png"
    Image.fromarray(vtopt_images[0].rgb).save(image)
    model = run_dir / "model.zip"
    done = subprocess.run([sys.executable, "-m", "vtopt", "evaluate", str(image), "--budget", "3", "--workers", "1",
                           "--methods", "defaults,cem", "--cem-model", str(model)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "\ncem " in out and f"(cem: cross-entropy search, trained: {model})" in out
