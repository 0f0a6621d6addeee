"""Tests of the example plugins, written with vtopt's own fixtures (vtopt.testing)."""

import json

import numpy as np

from vtopt.components import Sample
from vtopt.vectorize import convert, render


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
        "reward: {weights: {ssim_rgb: 1.0, size: -0.02, edges: 0.05}}\n"
        "monitors: [{name: structlog, params: {console: false}}, {name: jsonl_metrics}]\n"
    )
    ev = summary["evaluation"]
    assert ev["images"] == 4 and ev["mean_score"] >= ev["default_mean_score"]
    assert {r["conversions"] for r in summary["evaluation_rows"]} == {3}
    assert (run_dir / "model.zip").is_file()


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
