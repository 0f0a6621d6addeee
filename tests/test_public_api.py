"""The public API is `vtopt` itself; plugins registered from code reach every worker and trial."""

import ast
import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ICONS, REPO, TINY_RUN, write_config

import vtopt
from vtopt.apply.apply import Method, run_images
from vtopt.cli import main
from vtopt.config.distributions import parse_distribution


def _vtopt_imports(path):
    """(line, text) of every import of a vtopt module other than `vtopt` itself."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vtopt.") and node.level == 0:
            found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if a.name.startswith("vtopt.")]
    return found


def test_plugins_and_examples_import_only_the_public_api():
    files = sorted((REPO / "plugins").rglob("*.py")) + sorted((REPO / "examples").rglob("*.py"))
    assert len(files) >= 12
    offending = [f"{p.relative_to(REPO)}:{line}: {text}" for p in files for line, text in _vtopt_imports(p)]
    assert not offending, "\n".join(offending)


def test_every_public_name_resolves_and_import_vtopt_stays_light():
    for name in vtopt.__all__:
        assert getattr(vtopt, name) is not None, name
    assert isinstance(vtopt.Distribution("uniform", (0, 1)).sample(np.random.default_rng(0)), float)
    out = subprocess.run([sys.executable, "-c", "import sys, vtopt; print(sorted(m for m in ('torch', 'gymnasium', "
                          "'stable_baselines3', 'vtracer') if m in sys.modules))"], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def _const_plugin():
    """A plugin registered from code (a local class: it travels by value to Ray, by fork to local workers)."""

    class Const:
        def prepare(self, image):
            return None

        def compute(self, sample, state):
            return 1.0

    class ConstPlugin:
        @vtopt.hookimpl
        def vtopt_register_metrics(self):
            return {"const": Const}

    return ConstPlugin()


@pytest.fixture(params=["local", "ray"])
def executor_pm(request):
    """(executor name, a plugin manager with the code-registered ``const`` metric), on both executors."""
    if request.param == "ray":
        request.getfixturevalue("local_ray")
    pm = vtopt.PluginManager()
    pm.register(_const_plugin(), name="const-plugin")
    return request.param, pm


def test_a_metric_registered_from_code_reaches_image_workers(executor_pm, tmp_path):
    executor, pm = executor_pm
    files = sorted(ICONS.glob("*.png"))[:2]
    methods = [Method("defaults", 1), Method("random", 3, algorithm="random")]  # evaluate's rows
    base = {"ssim_rgb": 1.0, "size": -0.02}
    plain = run_images(files, [None] * 2, methods, base, 2)
    rows = run_images(files, [None] * 2, methods, {**base, "const": 0.5}, 2, pm=pm,
                      executor=pm.create("executor", executor))
    assert all(r["error"] is None for r in rows + plain)
    for with_const, without in zip(rows, plain):  # the workers scored with the code-registered metric
        assert with_const["default_score"] == pytest.approx(without["default_score"] + 0.5, abs=1e-9)
    optimize = [Method("ppo", 3, algorithm="random")]
    out = [str(tmp_path / f"{i}.svg") for i in range(2)]
    rows = run_images(files, out, optimize, {**base, "const": 0.5}, 2, pm=pm, executor=pm.create("executor", executor))
    assert all(r["error"] is None and (tmp_path / r["output"]).is_file() for r in rows)


def test_a_metric_registered_from_code_reaches_sweep_trials(executor_pm, tmp_path):
    executor, pm = executor_pm
    cfg = write_config(tmp_path, TINY_RUN.replace("timesteps: 96", "timesteps: 32")
                       + "reward: {weights: {ssim_rgb: 1.0, size: -0.02, const: 0.5}}\n")
    loaded = vtopt.load_config(cfg, pm=pm)
    trial = vtopt.Trial(str(cfg), (), loaded.config.run.timesteps, pm.portable())
    space = {"run.seed": parse_distribution("randint(0, 100)")}
    rows = pm.create("executor", executor).run_sweep(trial, space, 1, tmp_path / "sweep", loaded.config.sweep
                                                     or _fifo())
    assert len(rows) == 1 and rows[0]["score"] is not None and not rows[0].get("error"), rows
    summary = json.loads((tmp_path / "sweep" / rows[0]["trial"] / "summary.json").read_text())
    assert summary["evaluation"]["default_mean_score"] > 1.1  # ssim (< 1) + 0.5: scored with the metric


class ModuleLevelConst:
    """A plugin class at module level: it pickles by reference, so spawned workers get it too."""

    @vtopt.hookimpl
    def vtopt_register_metrics(self):
        return {"const": _Const}


class _Const:
    def prepare(self, image):
        return None

    def compute(self, sample, state):
        return 1.0


def test_spawned_workers_get_importable_plugins_and_a_clear_error_for_others(tmp_path):
    files = sorted(ICONS.glob("*.png"))[:2]  # two: one image runs in the calling process
    weights = {"ssim_rgb": 1.0, "const": 0.5}
    pm = vtopt.PluginManager()
    pm.register(ModuleLevelConst(), name="module-level")
    spawn = pm.create("executor", "local", {"start_method": "spawn"})
    rows = run_images(files, [None, None], [Method("defaults", 1)], weights, 1, pm=pm, executor=spawn)
    assert all(row["error"] is None and row["default_score"] > 1.2 for row in rows)
    pm = vtopt.PluginManager()
    pm.register(_const_plugin(), name="local-class")
    with pytest.raises(vtopt.VtoptError, match="cannot be sent to spawn worker processes .*_const_plugin.<locals>"):
        run_images(files, [None, None], [Method("defaults", 1)], weights, 1, pm=pm, executor=spawn)


def _fifo():
    from vtopt.config.schema import SweepConfig

    return SweepConfig()


def test_force_starts_the_monitors_files_afresh(tmp_path):
    cfg = write_config(tmp_path, TINY_RUN.replace("checkpoint_every: 64", "checkpoint_every: 0")
                       .replace("params: {console: false}}]", "params: {console: false, file: log.jsonl}}, {name: csv}]"))
    out = tmp_path / "run"
    for extra in ([], ["--force"]):
        assert main(["-q", "run", str(cfg), "--out", str(out), *extra]) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader((out / "episodes.csv").open()))
    assert len(rows) == summary["episodes"]
    events = [json.loads(line)["event"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert events.count("run_started") == 1


def test_asha_is_refused_by_the_local_executor(tmp_path, capsys):
    cfg = write_config(tmp_path, TINY_RUN + "sweep:\n  scheduler: asha\n  space:\n    run.seed: randint(0, 9)\n")
    assert main(["-q", "sweep", str(cfg), "--trials", "1", "--out", str(tmp_path / "s")]) == 1
    assert "the local executor runs every trial to the end" in capsys.readouterr().err


def test_a_module_plugin_travels_by_name_with_the_managers_settings(tmp_path, monkeypatch):
    import pickle

    (tmp_path / "my_metrics_mod.py").write_text(
        "import vtopt\n\nclass One:\n    def prepare(self, image):\n        return None\n\n"
        "    def compute(self, sample, state):\n        return 1.0\n\n"
        "@vtopt.hookimpl\ndef vtopt_register_metrics():\n    return {'one': One}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_metrics_mod

    pm = vtopt.PluginManager(blocked=("search",))
    pm.register(my_metrics_mod, name="mine")
    restored = pickle.loads(pickle.dumps(pm.portable())).manager()
    assert restored.components("metric")["one"].plugin == "mine"
    assert "random" not in restored.components("algorithm")  # the blocked plugin stays blocked


#: String constants in core that equal a built-in component's name but mean something else.
NOT_COMPONENTS = {
    "ssim": "the rows' SSIM column (the quality metric's value)",
    "paths": "the command line's image paths",
    "polygon": "a value of VTracer's mode parameter",
    "random": "the random module's state in a checkpoint",
    "uniform": "a sweep distribution",
}


def test_core_names_no_built_in_component(vtopt_pm):
    pm = vtopt_pm()
    names = {n for kind in ("algorithm", "curriculum", "metric", "monitor", "executor") for n in pm.components(kind)}
    names |= {b.name for b in pm.baselines(4)} | {b.method.label for b in pm.baselines(4)}
    assert {"ppo", "staged", "ssim_rgb", "structlog", "local", "preset", "portfolio", "tpe40"} <= names
    found = [f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}"
             for path in sorted((REPO / "vtopt").rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Constant) and node.value in names - set(NOT_COMPONENTS)]
    assert not found, "\n".join(found)
