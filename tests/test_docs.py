"""docs/plugins.md stays true: every hook documented with its arguments, and the walk-through runs."""

import inspect
import json
import re

from conftest import REPO

import vtopt.plugin.hookspecs as hookspecs

DOC = (REPO / "docs" / "plugins.md").read_text()


def test_every_hook_is_in_the_reference_with_its_arguments():
    documented = dict(re.findall(r"^### `(vtopt_\w+)\(([^)]*)\)`", DOC, flags=re.M))
    specs = {n: getattr(hookspecs, n) for n in dir(hookspecs) if n.startswith("vtopt_")}
    assert set(documented) == set(specs), set(documented) ^ set(specs)
    for name, func in specs.items():
        args = [a.strip() for a in documented[name].split(",") if a.strip()]
        assert args == list(inspect.signature(func).parameters), name
        assert (func.__doc__ or "").strip(), f"{name} has no docstring in vtopt/plugin/hookspecs.py"


def test_the_walkthrough_runs(tmp_path, monkeypatch, capsys):
    section = DOC.split("## Write your first plugin", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/plugins.md", "exec"), namespace)
    summary = json.loads((tmp_path / "first-run" / "summary.json").read_text())
    mean, default = map(float, capsys.readouterr().out.split()[-2:])
    assert (mean, default) == (summary["evaluation"]["mean_score"], summary["evaluation"]["default_mean_score"])
    assert summary["total_timesteps"] == 64
    # the colours metric took part: the defaults' score is their SSIM plus 0.02 x colours (in (0, 1])
    assert 0 < default - summary["evaluation"]["default_mean_ssim"] <= 0.02 + 1e-9


def test_the_algorithm_example_trains_its_timesteps(vtopt_run):
    section = DOC.split("## Writing an algorithm", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace: dict = {}
    exec(compile(block, "docs/plugins.md", "exec"), namespace)
    summary, run_dir = vtopt_run("algorithm: {name: random_walk, params: {seed: 1}}", plugins=[namespace["WalkPlugin"]()])
    assert summary["algorithm"] == "random_walk" and summary["total_timesteps"] == 64
    assert summary["episodes"] == 32 and {r["conversions"] for r in summary["evaluation_rows"]} == {3}


def test_programmatic_example_runs(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(REPO / "examples" / "programmatic.py"), str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "trained 192 timesteps" in out.stdout and "held-out images: SSIM" in out.stdout
    assert (tmp_path / "run" / "summary.json").is_file()


def test_the_gymnasium_example_trains_without_sb3(capsys):
    section = DOC.split("## The environment for other RL libraries", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    exec(compile(block, "docs/plugins.md", "exec"), {})
    assert "best return of the last generation:" in capsys.readouterr().out


def test_the_env_is_registered_with_gymnasium_and_passes_its_checker():
    import subprocess
    import sys

    code = ("import gymnasium as gym, vtopt\n"
            "from gymnasium.utils.env_checker import check_env\n"
            "env = gym.make('vtopt/VTracer-v0', conversions=3)\n"
            "check_env(env.unwrapped, skip_render_check=True)\n"
            "env = gym.make('vtopt:vtopt/VTracer-v0', reward={'ssim_rgb': 1.0}, conversions=2)\n"
            "print(env.unwrapped.scorer.weights, len(env.unwrapped.images))\n")
    out = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "{'ssim_rgb': 1.0} 24"
