"""What plugins give core instead of core naming them: config defaults, config checks, command-line
options, evaluation baselines and the curriculum's reference."""

import json

import pytest
from conftest import ICONS, TINY_RUN, install_fake_plugin, write_config

import vtopt
from vtopt.cli import main
from vtopt.config.checks import load_config
from vtopt.errors import ConfigError


class Defaults:
    @vtopt.hookimpl
    def vtopt_config_defaults(self):
        return {"algorithm": {"name": "a2c"}, "reward": {"weights": {"ssim": 1.0}}}


def test_plugins_fill_what_the_yaml_leaves_out_and_the_yaml_wins(vtopt_pm, tmp_path):
    pm = vtopt_pm()
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


def test_a_plugin_checks_its_own_settings_at_the_yaml_line(vtopt_pm, tmp_path):
    pm = vtopt_pm()
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
    assert [r["method"] for r in rows] == ["policy", "defaults", "mine-spline", "ppo", "portfolio", "chooser"]
    assert "(mine-spline: a plugin's baseline)" in out
    assert main(["evaluate", str(image), "--budget", "2", "--workers", "1", "--methods", "hidden,tpe",
                 "--report", str(report), "--force"]) != 0  # tpe went with the search plugin: named, it fails
    assert "--methods: 'tpe' is none of policy, defaults, NAME=MODEL.zip, the baselines (mine, hidden" in (
        capsys.readouterr().err)
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


def test_a_training_run_takes_its_baselines_and_reference_from_the_plugins(vtopt_pm, tmp_path):
    pm = vtopt_pm()
    plugin = RunBaselines()
    pm.register(plugin, name="run-baselines")
    summary = vtopt.train(load_config(write_config(tmp_path, TINY_RUN), pm=pm), tmp_path / "run", pm)
    assert sorted(summary["evaluation"]["baselines"]) == ["polygon", "poster-run", "random"]
    assert plugin.asked == [3]  # the staged curriculum reads the reference: asked once, at the run's budget


class ComponentDefaults:
    @vtopt.hookimpl
    def vtopt_config_defaults(self):
        return {"algorithm": {"name": "a2c", "params": {"n_steps": 8}}, "data": {"synthetic": {"per_kind": 7}}}


def test_a_default_fills_only_its_own_component_and_optional_sections(vtopt_pm, tmp_path):
    pm = vtopt_pm()
    pm.register(ComponentDefaults(), name="component-defaults")
    cfg = load_config(write_config(tmp_path, "data: {synthetic: {kinds: [simple]}}\n"), pm=pm).config
    assert (cfg.algorithm.name, cfg.algorithm.params) == ("a2c", {"n_steps": 8})
    assert (cfg.data.synthetic.kinds, cfg.data.synthetic.per_kind) == (["simple"], 7)
    other = load_config(write_config(tmp_path, "algorithm: {name: sac}\n", "sac.yaml"), pm=pm).config
    assert (other.algorithm.name, other.algorithm.params) == ("sac", {})  # a2c's params are not sac's


def test_without_a_plugins_default_the_error_says_which():
    blocked = vtopt.PluginManager(blocked=("sb3",))
    with pytest.raises(ConfigError) as err:
        vtopt.default_config(blocked)
    assert any(line.startswith("the plugins' defaults: $.algorithm: required key missing") and "blocked" in line
               for line in err.value.lines), err.value.lines
    assert vtopt.make_scorer(blocked, {"ssim_rgb": 1.0}).quality == "ssim_rgb"  # needs only the reward's defaults


def test_two_plugins_adding_one_option_are_both_named(vtopt_pm):
    pm = vtopt_pm()
    from vtopt.cli.commandline import _parser
    from vtopt.plugin.manager import PluginError

    class Clash:
        @vtopt.hookimpl
        def vtopt_add_options(self, command, parser):
            if command == "evaluate":
                parser.add_argument("--tpe-budget", type=int)

    pm.register(Clash(), name="clash")
    with pytest.raises(PluginError, match="plugin 'search'.*evaluate --tpe-budget is added by plugin 'clash' too"):
        _parser(pm)


def test_a_broken_plugin_leaves_version_and_init_working(tmp_path, monkeypatch, capsys):
    install_fake_plugin(tmp_path, monkeypatch, "broken", "vtopt_broken_plugin", "vtopt-broken", "0.1",
                        "raise ImportError('no such thing')\n")
    assert main(["--version"]) == 0
    assert main(["init", str(tmp_path / "my.yaml")]) == 0
    capsys.readouterr()
    assert main(["plugins"]) == 1
    assert "plugin 'broken'" in capsys.readouterr().err


def test_a_damaged_shipped_model_costs_only_its_baselines(vtopt_pm, tmp_path, monkeypatch):
    pm = vtopt_pm()
    import vtopt_portfolio

    junk = tmp_path / "portfolio.zip"
    junk.write_text("not a zip")
    monkeypatch.setattr(vtopt_portfolio, "PORTFOLIO_MODEL", junk)
    names = [b.name for b in pm.baselines(4)]
    assert "portfolio" not in names and {"polygon", "random", "tuned"} <= set(names)
    assert pm.reference_params(4) is None
    with pytest.raises(vtopt.VtoptError, match="not a vtopt model file"):  # asked for by name: it must load
        pm.baselines(4, {"portfolio_model": junk})


def test_an_older_run_without_the_newer_keys_resumes(vtopt_pm, tmp_path):
    pm = vtopt_pm()
    cfg = write_config(tmp_path, TINY_RUN)
    vtopt.train(load_config(cfg, pm=pm), tmp_path / "run", pm)
    saved = tmp_path / "run" / "config.yaml"
    text = saved.read_text()
    assert "  quality: ssim_rgb\n" in text
    saved.write_text(text.replace("  quality: ssim_rgb\n", ""))  # as a run of the previous version wrote it
    summary = vtopt.train(load_config(saved, ["run.timesteps=128"], pm), tmp_path / "run", pm, resume=True)
    assert summary["resumed"] and summary["total_timesteps"] >= 128


GHOST_PLUGIN = """
from vtopt import Baseline, Method, hookimpl

@hookimpl
def vtopt_baselines(budget):
    return [Baseline("ghost", Method("ghost", budget, algorithm="nosuchalg"), evaluate=False)]

@hookimpl
def vtopt_config_defaults():
    return {"reward": {"max_ssim_loss": 0.004}}
"""


def test_a_baseline_that_cannot_run_names_itself_and_its_plugin(tmp_path, monkeypatch, capsys):
    install_fake_plugin(tmp_path, monkeypatch, "ghosts", "vtopt_ghost_baselines", "vtopt-ghosts", "0.1", GHOST_PLUGIN)
    image = ICONS / "balloon.png"
    assert main(["evaluate", str(image), "--budget", "2", "--workers", "1", "--methods", "defaults,ghost"]) == 1
    err = capsys.readouterr().err
    assert "baseline 'ghost' of plugin 'ghosts': unknown algorithm 'nosuchalg'" in err
    # with no model among the methods, the plugins' default reward applies, its floor included
    assert main(["evaluate", str(image), "--budget", "2", "--workers", "1", "--methods", "defaults"]) == 0
    assert "quality floor: SSIM loss <= 0.004" in capsys.readouterr().out


def test_a_value_from_a_default_is_not_blamed_on_line_1_silently(vtopt_pm, tmp_path):
    pm = vtopt_pm()
    class BadDefault:
        @vtopt.hookimpl
        def vtopt_config_defaults(self):
            return {"env": {"conversions_per_episode": 1}}

    pm.register(BadDefault(), name="bad-default")
    cfg = write_config(tmp_path, "run: {name: x}\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg, pm=pm)
    assert err.value.lines == [f"{cfg}:1: $.env.conversions_per_episode: 1 is out of range: must be in [2, 1000] (the "
                               "defaults' conversion counts as one) (not set in this file: a default)"]


def test_hooks_get_the_host_and_the_reference_stops_at_the_first_answer(vtopt_pm):
    """``pm`` is the manager that calls the hook, plugins registered from code included (the built-ins
    load their model files through it); ``vtopt_reference_params`` is firstresult: an earlier answer
    that is not None ends the calls."""
    heard = []

    class Offers:
        @vtopt.hookimpl
        def vtopt_baselines(self, budget, pm):
            heard.append(("baselines", pm))
            return []

        @vtopt.hookimpl
        def vtopt_reference_params(self, conversions, pm):
            heard.append(("reference", pm))
            return None  # no answer: the next plugin is asked

    class First:
        @vtopt.hookimpl
        def vtopt_reference_params(self, conversions):
            heard.append(("first", conversions))
            return [{"mode": "spline"}]

    pm = vtopt_pm()
    pm.register(Offers(), name="offers")
    assert {b.name for b in pm.baselines(4)} >= {"portfolio", "polygon"}  # the built-ins' through the same pm
    assert pm.reference_params(4) is not None and heard == [("baselines", pm), ("reference", pm)]
    pm.register(First(), name="first")  # called first: its answer wins, and nobody else is asked
    heard.clear()
    assert pm.reference_params(5) == [{"mode": "spline"}] and heard == [("first", 5)]
