"""What plugins give core instead of core naming them: config defaults, config checks, command-line
options, evaluation baselines and the curriculum's reference."""

import json

import pytest
from conftest import ICONS, TINY_RUN, install_fake_plugin, write_config

import vtopt
from vtopt.cli import main
from vtopt.config import load_config
from vtopt.errors import ConfigError


class Defaults:
    @vtopt.hookimpl
    def vtopt_config_defaults(self):
        return {"algorithm": {"name": "a2c"}, "reward": {"weights": {"ssim": 1.0}}}


def test_plugins_fill_what_the_yaml_leaves_out_and_the_yaml_wins(pm, tmp_path):
    bare = write_config(tmp_path, "run: {name: x}\n")
    cfg = load_config(bare, pm=pm).config
    assert (cfg.algorithm.name, cfg.curriculum.name, cfg.reward.quality) == ("ppo", "staged", "ssim_rgb")
    assert cfg.reward.weights == {"ssim_rgb": 1.0, "size": -0.02}
    assert [m.name for m in cfg.monitors] == ["structlog"] and cfg.resources.executor == "local"

    pm.register(Defaults(), name="defaults-plugin")  # called before the built-ins, which are trylast
    cfg = load_config(bare, pm=pm).config
    assert (cfg.algorithm.name, cfg.reward.weights, cfg.reward.quality) == ("a2c", {"ssim": 1.0}, "ssim_rgb")
    # the YAML wins, and a mapping such as the weights is taken whole, never merged with a default
    mine = write_config(tmp_path, "algorithm: {name: ppo}\nreward: {weights: {ssim_rgb: 1.0}}\n", "mine.yaml")
    cfg = load_config(mine, pm=pm).config
    assert (cfg.algorithm.name, cfg.reward.weights) == ("ppo", {"ssim_rgb": 1.0})


def test_core_has_no_default_component_of_its_own(tmp_path):
    pm = vtopt.PluginManager(blocked=("sb3",))
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, "run: {name: x}\n"), pm=pm)
    assert any("$.algorithm" in line and "required key missing" in line for line in err.value.lines), err.value.lines


class OwnCheck:
    @vtopt.hookimpl
    def vtopt_check_config(self, config, curriculum):
        if config.curriculum.name == "uniform" and config.env.conversions_per_episode < 3:
            return [("env.conversions_per_episode", "uniform here needs 3 conversions or more")]
        return []


def test_a_plugin_checks_its_own_settings_at_the_yaml_line(pm, tmp_path):
    pm.register(OwnCheck(), name="own-check")
    cfg = write_config(tmp_path, "curriculum: {name: uniform}\nenv:\n  conversions_per_episode: 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg, pm=pm)
    assert err.value.lines == [f"{cfg}:3: $.env.conversions_per_episode: uniform here needs 3 conversions or more"]
    load_config(write_config(tmp_path, "curriculum: {name: uniform}\n", "ok.yaml"), pm=pm)

    class Broken:
        @vtopt.hookimpl
        def vtopt_check_config(self):
            raise KeyError("oops")

    pm.register(Broken(), name="broken-check")
    with pytest.raises(vtopt.PluginFault, match="broken-check.*vtopt_check_config.*KeyError"):
        load_config(cfg, pm=pm)


BASELINE_PLUGIN = """
from pathlib import Path
from vtopt import Baseline, Method, hookimpl

@hookimpl
def vtopt_add_options(command, parser):
    if command == "evaluate":
        parser.add_argument("--mine-mode", default="polygon", help="VTracer's mode in the mine row")

@hookimpl
def vtopt_baselines(budget, options):
    mode = options.get("mine_mode", "polygon")
    return [Baseline("mine", Method(f"mine-{mode}", 2, algorithm="portfolio", params={"sets": [{"mode": mode}]}),
                     note="a plugin's baseline"),
            Baseline("hidden", Method("hidden", budget, algorithm="portfolio", params={"sets": [{"mode": "polygon"}]}),
                     evaluate=False)]
"""


def test_evaluate_rows_and_options_come_from_the_plugins(tmp_path, monkeypatch, capsys):
    install_fake_plugin(tmp_path, monkeypatch, "mine", "vtopt_mine_baselines", "vtopt-mine", "0.3", BASELINE_PLUGIN)
    monkeypatch.setenv("VTOPT_BLOCK_PLUGINS", "search")  # the built-in search baselines go with their plugin
    assert main(["plugins"]) == 0
    listing = capsys.readouterr().out
    assert "baseline: mine, hidden (on request)" in listing and "poster" not in listing

    image = ICONS / "balloon.png"
    report = tmp_path / "rows.json"
    assert main(["evaluate", str(image), "--budget", "2", "--workers", "1", "--mine-mode", "spline",
                 "--report", str(report)]) == 0
    out = capsys.readouterr().out
    rows = json.loads(report.read_text())
    assert [r["method"] for r in rows] == ["policy", "defaults", "mine-spline", "portfolio"]
    assert "(mine-spline: a plugin's baseline)" in out
    assert main(["evaluate", str(image), "--budget", "2", "--workers", "1", "--methods", "hidden,tpe",
                 "--report", str(report), "--force"]) != 0  # tpe went with the search plugin: named, it fails
    assert "unknown algorithm 'tpe'" in capsys.readouterr().err
    assert main(["evaluate", str(image), "--budget", "2", "--workers", "1", "--methods", "defaults,hidden",
                 "--report", str(report), "--force"]) == 0
    assert [r["method"] for r in json.loads(report.read_text())] == ["defaults", "hidden"]


class RunBaselines:
    def __init__(self):
        self.asked = []

    @vtopt.hookimpl
    def vtopt_baselines(self, budget):
        return [vtopt.Baseline("poster-run", vtopt.Method("poster-run", budget, algorithm="preset",
                                                          params={"preset": "poster"}), training=True)]

    @vtopt.hookimpl
    def vtopt_reference_params(self, conversions):
        self.asked.append(conversions)
        return [{"mode": "polygon"}]


def test_a_training_run_takes_its_baselines_and_reference_from_the_plugins(pm, tmp_path):
    plugin = RunBaselines()
    pm.register(plugin, name="run-baselines")
    summary = vtopt.train(load_config(write_config(tmp_path, TINY_RUN), pm=pm), tmp_path / "run", pm)
    assert sorted(summary["evaluation"]["baselines"]) == ["polygon", "poster-run", "random"]
    assert plugin.asked == [3]  # the staged curriculum reads the reference: asked once, at the run's budget
