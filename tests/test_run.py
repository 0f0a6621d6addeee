import json

import pytest
from conftest import TINY_RUN, expected_score, write_config
from stable_baselines3 import PPO

from vtopt import hookimpl
from vtopt.cli import main
from vtopt.config.checks import load_config
from vtopt.training.run import train


def _events(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("envs", [1, 2])
def test_tiny_run_end_to_end(tmp_path, capsys, envs):
    cfg = write_config(tmp_path, TINY_RUN)
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--set", f"env.parallel_envs={envs}"]) == 0
    printed = capsys.readouterr().out
    assert "evaluation on" in printed and "defaults" in printed
    for name in ("config.yaml", "run.json", "model.zip", "summary.json", "events.jsonl"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_timesteps"] >= 96 and summary["n_envs"] == envs
    assert summary["env_steps_per_second"] > 0 and summary["wall_seconds"] > 0
    ev = summary["evaluation"]
    assert ev["images"] == 4  # one per kind held out
    for key in ("mean_ssim", "default_mean_ssim", "mean_bytes", "default_mean_bytes", "mean_score", "default_mean_score"):
        assert 0 < ev[key]
    rows = summary["evaluation_rows"]
    for row in rows:  # every score is the reward of its SSIM and bytes, worked out independently
        assert row["score"] == pytest.approx(expected_score(row), abs=1e-9)
        assert row["default_score"] == pytest.approx(row["default_ssim"], abs=1e-9)  # size 0 for the defaults
    assert ev["mean_score"] == pytest.approx(sum(r["score"] for r in rows) / len(rows))
    assert ev["mean_improvement"] == pytest.approx(ev["mean_score"] - ev["default_mean_score"])
    assert summary["checkpoints"] and (out / summary["checkpoints"][0]).is_file()
    kinds = [e["event"] for e in _events(out)]
    for event in ("run_started", "stage_changed", "episode", "rollout", "checkpoint_saved", "evaluated", "run_finished"):
        assert event in kinds, event
    assert {"polygon", "random"} <= set(ev["baselines"]) and ev["baselines"]["random"]["images"] == 4
    model = PPO.load(out / "model.zip")
    assert model.observation_space.shape[0] > 0
    resolved = load_config(out / "config.yaml")
    assert resolved.config.env.parallel_envs == envs


def test_a_finished_run_is_not_overwritten_without_force(tmp_path, capsys):
    cfg = write_config(tmp_path, TINY_RUN)
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    assert main(["run", str(cfg), "--out", str(out)]) == 1
    assert "--force" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == "{}"


def test_code_registered_plugins_take_part_in_a_run(tmp_path, vtopt_pm):
    pm = vtopt_pm()
    calls = {"metric": 0, "events": []}

    class Sharp:
        def prepare(self, image):
            return None

        def compute(self, sample, state):
            calls["metric"] += 1
            return 0.0

    class Plugin:
        @hookimpl
        def vtopt_register_metrics(self):
            return {"sharp": Sharp}

        @hookimpl
        def vtopt_stage_changed(self, stage):
            calls["events"].append(stage)

    pm.register(Plugin(), name="mine")
    cfg = write_config(tmp_path, TINY_RUN + "reward:\n  weights: {ssim_rgb: 1.0, size: -0.02, sharp: 0.1}\n")
    summary = train(load_config(cfg, pm=pm), tmp_path / "run", pm)
    assert calls["metric"] > 0 and calls["events"][0] == "simple"
    assert summary["total_timesteps"] >= 96


def test_quiet_console_still_logs_every_event_to_the_file(tmp_path):
    cfg = write_config(tmp_path, TINY_RUN)
    assert main(["-q", "run", str(cfg), "--out", str(tmp_path / "run")]) == 0
    kinds = {e["event"] for e in _events(tmp_path / "run")}
    assert {"run_started", "episode", "evaluated", "run_finished"} <= kinds
