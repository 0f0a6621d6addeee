"""Checkpoints, exact resume, signals, periodic evaluation, curricula that change mid-run."""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from conftest import write_config

from vtopt import Interrupted, hookimpl, load_config, train
from vtopt.apply.model import load_model
from vtopt.cli import main
from vtopt.plugin.manager import PluginManager
from vtopt.training.checkpoints import latest_checkpoint

LONG_RUN = """\
run: {name: long, seed: 3, timesteps: 1600, checkpoint_every: 256}
data: {synthetic: {per_kind: 3}, validation_split: 0.34, image_size: 48}
env: {conversions_per_episode: 3, parallel_envs: 2}
algorithm: {name: ppo, params: {n_steps: 64, batch_size: 64, n_epochs: 1}}
curriculum: {name: staged, params: {window: 4, max_timesteps: 200}}
monitors: [{name: structlog, params: {console: false}}]
"""


def _start(cfg, out, *extra):
    return subprocess.Popen([sys.executable, "-m", "vtopt", "-q", "run", str(cfg), "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(proc, out, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if list((out / "checkpoints").glob("step_*.json")):
            return
        if proc.poll() is not None:
            pytest.fail(f"run ended before its first checkpoint: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no checkpoint in time")


def test_sigkill_then_resume_counts_every_timestep_once(tmp_path):
    cfg, out = write_config(tmp_path, LONG_RUN), tmp_path / "run"
    proc = _start(cfg, out)
    _wait_for_checkpoint(proc, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    model, state = latest_checkpoint(out)
    assert 256 <= state["timesteps"] < 1600 and not (out / "summary.json").exists()
    assert main(["-q", "run", str(out / "config.yaml"), "--out", str(out), "--resume"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed"] and summary["total_timesteps"] == 1600
    algorithm, meta = load_model(PluginManager(), out / "model.zip")
    assert meta["timesteps"] == 1600 and algorithm.model.num_timesteps == 1600
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    saved = [e["timesteps"] for e in events if e["event"] == "checkpoint_saved"]
    assert saved == sorted(set(saved)) and saved[-1] == 1600  # resumed from the newest, none twice
    assert sum(e["event"] == "run_started" for e in events) == 2
    second = max(i for i, e in enumerate(events) if e["event"] == "run_started")
    resumed_stage = next(e for e in events[second:] if e["event"] == "stage_changed")
    assert resumed_stage["previous"] is not None  # the stage the checkpoint was in, not a fresh start's None


def test_sigterm_to_the_process_writes_a_checkpoint_and_exits_143(tmp_path):
    signum, code = signal.SIGTERM, 143
    cfg, out = write_config(tmp_path, LONG_RUN), tmp_path / "run"
    proc = _start(cfg, out)
    _wait_for_checkpoint(proc, out)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-2000:]
    assert "--resume" in err and "Traceback" not in err
    model, state = latest_checkpoint(out)
    load_model(PluginManager(), model)  # a valid, loadable checkpoint
    assert state["timesteps"] < 1600
    last = json.loads((out / "events.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "run_aborted" and "Interrupted" in last["reason"]


class _Interrupter:
    """A monitor that sends this process SIGINT at its 5th episode, as Ctrl-C would."""

    def __init__(self):
        self.episodes = 0

    @hookimpl
    def vtopt_episode_finished(self, timesteps):
        self.episodes += 1
        if self.episodes == 5:
            os.kill(os.getpid(), signal.SIGINT)


class _InterrupterPlugin:
    @hookimpl
    def vtopt_register_monitors(self):
        return {"interrupter": _Interrupter}


def test_sigint_in_process_stops_after_the_step_with_a_checkpoint(tmp_path):
    pm = PluginManager()
    pm.register(_InterrupterPlugin(), name="interrupter")
    cfg = write_config(tmp_path, LONG_RUN.replace("parallel_envs: 2", "parallel_envs: 1").replace(
        "monitors: [{name: structlog, params: {console: false}}]",
        "monitors: [{name: structlog, params: {console: false}}, {name: interrupter}]"))
    with pytest.raises(Interrupted) as info:
        train(load_config(cfg, pm=pm), tmp_path / "run", pm)
    assert info.value.exit_code == 130 and "SIGINT" in str(info.value)
    model, state = latest_checkpoint(tmp_path / "run")
    assert state["timesteps"] == state["episodes"] * 2 == 10  # stopped right after the 5th episode's step
    load_model(PluginManager(), model)
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "run_aborted" and "Interrupted" in events[-1]["reason"]


class _Constant:
    """Steps the env with random actions (so evaluations come round) but always proposes the same set:
    every evaluation scores the same, so early stopping must stop it."""

    def learn(self, ctx):
        env, steps = ctx.env, ctx.start_timesteps
        env.reset()
        while steps < ctx.total_timesteps:
            _, _, dones, infos = env.step(np.zeros((env.num_envs, env.action_space.shape[0]), np.float32))
            steps += env.num_envs
            if not ctx.on_step(infos, dones, steps):
                break

    def save(self, path):
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("constant.json", "{}")

    def load(self, path):
        pass

    def predict(self, observation, deterministic=True):
        return {"mode": "polygon"}


class _ConstantPlugin:
    @hookimpl
    def vtopt_register_algorithms(self):
        return {"constant": _Constant}


def test_early_stop_stops_a_run_that_no_longer_improves(tmp_path):
    pm = PluginManager()
    pm.register(_ConstantPlugin(), name="constant")
    cfg = write_config(tmp_path, LONG_RUN.replace("checkpoint_every: 256", "checkpoint_every: 0, eval_every: 128, "
                                                  "early_stop: 2").replace("parallel_envs: 2", "parallel_envs: 1")
                       .replace("algorithm: {name: ppo, params: {n_steps: 64, batch_size: 64, n_epochs: 1}}",
                                "algorithm: {name: constant}"))
    summary = train(load_config(cfg, pm=pm), tmp_path / "run", pm)
    # the best at 128; no better at 256 and 384: two evaluations without improvement
    assert summary["stopped"] == "early_stop" and summary["total_timesteps"] == 384
    assert [e["timesteps"] for e in summary["evaluations"]] == [128, 256, 384]
    assert len({e["mean_score"] for e in summary["evaluations"]}) == 1


def test_resume_refuses_another_config_and_a_run_without_checkpoints(tmp_path, capsys):
    cfg = write_config(tmp_path, LONG_RUN.replace("checkpoint_every: 256", "checkpoint_every: 0")
                       .replace("timesteps: 1600", "timesteps: 64"))
    out = tmp_path / "run"
    assert main(["-q", "run", str(cfg), "--out", str(out)]) == 0
    assert main(["-q", "run", str(cfg), "--out", str(out), "--resume"]) == 1
    assert "no complete checkpoint" in capsys.readouterr().err
    assert main(["-q", "run", str(cfg), "--out", str(out), "--resume", "--set", "run.seed=9",
                 "--set", "run.timesteps=96"]) == 1
    err = capsys.readouterr().err
    assert "differs from the run's config in run.seed (a resumed run may change only run.timesteps, resources.executor" in err


def test_a_finished_run_is_not_retrained_and_can_be_extended(tmp_path, capsys):
    cfg = write_config(tmp_path, LONG_RUN.replace("checkpoint_every: 256", "checkpoint_every: 64")
                       .replace("timesteps: 1600", "timesteps: 128"))
    out = tmp_path / "run"
    assert main(["-q", "run", str(cfg), "--out", str(out)]) == 0
    first = json.loads((out / "summary.json").read_text())
    assert main(["-q", "run", str(cfg), "--out", str(out), "--resume"]) == 1
    assert "the run is complete (128 timesteps); nothing to resume" in capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text()) == first  # left as it was
    assert main(["-q", "run", str(cfg), "--out", str(out), "--resume", "--set", "run.timesteps=192"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed"] and summary["total_timesteps"] == 192
    assert "timesteps: 192" in (out / "config.yaml").read_text()
    assert summary["checkpoints"][-1].endswith("step_000000192.zip")


def test_periodic_evaluation_keeps_the_best_model(tmp_path):
    cfg = write_config(tmp_path, LONG_RUN.replace("checkpoint_every: 256", "checkpoint_every: 0, eval_every: 128, early_stop: 2")
                       .replace("parallel_envs: 2", "parallel_envs: 1"))
    out = tmp_path / "run"
    assert main(["-q", "run", str(cfg), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    evals = summary["evaluations"]
    assert len(evals) >= 3 and all(set(e["per_kind"]) == {"simple", "text", "gradient", "complex"} for e in evals)
    assert summary["best_score"] == max(e["mean_score"] for e in evals)
    assert (out / "best_model.zip").is_file()
    best = [e["timesteps"] for e in evals if e["mean_score"] == summary["best_score"]][0]
    assert load_model(PluginManager(), out / "best_model.zip")[1]["timesteps"] == best


def test_stage_overrides_change_algorithm_settings(tmp_path):
    pm = PluginManager()
    ppo = pm.create("algorithm", "ppo", {"n_steps": 32, "batch_size": 32, "learning_rate": 0.001})
    ppo.update(learning_rate=0.0001, ent_coef=0.05)
    assert ppo.pending == {"learning_rate": 0.0001, "ent_coef": 0.05}
    cfg = write_config(tmp_path, LONG_RUN.replace("timesteps: 1600", "timesteps: 256").replace(
        "curriculum: {name: staged, params: {window: 4, max_timesteps: 200}}",
        "curriculum: {name: staged, params: {window: 4, max_timesteps: 64, overrides: {complex: {ent_coef: 0.02}}}}"))
    assert main(["-q", "run", str(cfg), "--out", str(tmp_path / "run")]) == 0
    model, _ = load_model(pm, tmp_path / "run" / "model.zip")
    assert model.model.ent_coef == 0.02


def test_adaptive_curriculum_follows_learning_progress(vtopt_pm):
    pm = vtopt_pm()
    ad = pm.create("curriculum", "adaptive", {"window": 2, "floor": 0.2})
    ad.start(["a", "b"])
    assert ad.weights() == {"a": 0.5, "b": 0.5}
    for score in (0.0, 0.0, 0.1, 0.1):  # a: progress 0.1
        ad.record("a", score, 0)
    for score in (0.0, 0.0, 0.0, 0.0):  # b: no progress
        ad.record("b", score, 0)
    w = ad.weights()
    assert w["a"] == pytest.approx(0.9) and w["b"] == pytest.approx(0.1)
    restored = pm.create("curriculum", "adaptive", {"window": 2})
    restored.start(["a", "b"])
    restored.load_state_dict(json.loads(json.dumps(ad.state_dict())))
    assert restored.weights() == w


def test_resume_cannot_go_below_what_was_trained(tmp_path, capsys):
    cfg = write_config(tmp_path, LONG_RUN.replace("timesteps: 1600", "timesteps: 128")
                       .replace("checkpoint_every: 256", "checkpoint_every: 64"))
    out = tmp_path / "run"
    assert main(["-q", "run", str(cfg), "--out", str(out)]) == 0
    (out / "summary.json").unlink()  # as if stopped after its last checkpoint
    assert main(["-q", "run", str(out / "config.yaml"), "--out", str(out), "--resume", "--set", "run.timesteps=64"]) == 1
    assert "run.timesteps 64 is below the 128 timesteps the run has done" in capsys.readouterr().err
