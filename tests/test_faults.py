"""Misbehaving plugins and dying workers: one line naming the plugin, and training that survives what it can."""

import json
import multiprocessing
import os
import signal

import pytest
import structlog
import structlog.testing
from conftest import ICONS, TINY_RUN, write_config

import vtopt
from vtopt.apply.apply import Method, run_images
from vtopt.training.checkpoints import latest_checkpoint


class _Metric:
    """Returns ``value`` (or raises) from its ``after``-th call in an env worker process on."""

    def __init__(self, mode: str = "nan", after: int = 0, flag: str = ""):
        self.mode, self.after, self.flag, self.calls = mode, after, flag, 0

    def prepare(self, image):
        return None

    def compute(self, sample, state):
        if sample.defaults is None:
            return 0.0  # the defaults' conversions (made at loading) are not counted
        self.calls += 1
        in_worker = multiprocessing.parent_process() is not None
        if self.mode == "nan":
            return float("nan")
        if self.mode == "raise" and self.calls > self.after:
            raise ZeroDivisionError("the metric divided by zero")
        if self.mode == "kill" and in_worker and self.calls > self.after:
            try:
                os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL))  # one worker only, however they race
            except FileExistsError:
                return 0.0
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would, once
        return 0.0


class _Monitor:
    @vtopt.hookimpl
    def vtopt_episode_finished(self, episode):
        raise RuntimeError("the monitor's disk is gone")


class FaultyPlugin:
    @vtopt.hookimpl
    def vtopt_register_metrics(self):
        return {"faulty": _Metric}

    @vtopt.hookimpl
    def vtopt_register_monitors(self):
        return {"broken": _Monitor}


def _train(tmp_path, extra: str, name="run"):
    pm = vtopt.PluginManager()
    pm.register(FaultyPlugin(), name="faulty-plugin")
    keys = {line.split(":")[0] for line in extra.splitlines()}
    base = "".join(line + "\n" for line in TINY_RUN.splitlines() if line.split(":")[0] not in keys)
    cfg = write_config(tmp_path, base + extra, name=f"{name}.yaml")
    return pm, vtopt.train(vtopt.load_config(cfg, pm=pm), tmp_path / name, pm)


@pytest.mark.parametrize("envs, after", [(1, 60), (2, 40)])
def test_a_metric_that_raises_stops_training_in_one_line_with_a_checkpoint(tmp_path, envs, after):
    reward = (f"reward: {{weights: {{ssim_rgb: 1.0, faulty: 0.1}}, params: {{faulty: {{mode: raise, after: {after}}}}}}}\n"
              f"env: {{conversions_per_episode: 3, parallel_envs: {envs}}}\n"
              "run: {name: faulty, seed: 1, timesteps: 192, checkpoint_every: 16}\n")
    with pytest.raises(vtopt.VtoptError) as info:  # with 2 subprocess envs this once hung for ever
        _train(tmp_path, reward)
    message = str(info.value)
    assert message == ("plugin 'faulty-plugin' (registered from code): metric 'faulty'.compute: "
                       "ZeroDivisionError: the metric divided by zero")
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "run_aborted" and "ZeroDivisionError" in events[-1]["reason"]
    saved = [e["timesteps"] for e in events if e["event"] == "checkpoint_saved"]
    assert len(saved) >= 2 and saved[-1] >= saved[-2] and saved[-1] < 192  # periodic ones, then one at the fault
    assert latest_checkpoint(tmp_path / "run")[1]["timesteps"] == saved[-1]


def test_a_metric_that_raises_fails_only_its_image_in_optimize(tmp_path):
    pm = vtopt.PluginManager()
    pm.register(FaultyPlugin(), name="faulty-plugin")
    files = sorted(ICONS.glob("*.png"))[:2]
    rows = run_images(files, [None, None], [Method("random", 3, algorithm="random")],
                      {"ssim_rgb": 1.0, "faulty": 0.1}, 1, pm=pm, metric_params={"faulty": {"mode": "raise"}})
    assert len(rows) == 2
    for row in rows:
        assert "plugin 'faulty-plugin' (registered from code): metric 'faulty'.compute: ZeroDivisionError" in row["error"]


def test_a_nan_metric_is_a_failed_conversion_never_a_reward(tmp_path):
    _, summary = _train(tmp_path, "reward: {weights: {ssim_rgb: 1.0, faulty: 0.1}, params: {faulty: {mode: nan}}}\n")
    assert summary["total_timesteps"] == 96 and summary["training_recent"]["images"] > 0
    # every conversion beyond the defaults failed: nothing beat the defaults, and nothing scored NaN
    assert all(r["score"] == r["default_score"] for r in summary["evaluation_rows"])
    assert summary["training_recent"]["mean_improvement"] == 0.0


def test_a_monitor_that_raises_is_disabled_and_training_goes_on(tmp_path):
    _, summary = _train(tmp_path, "monitors: [{name: structlog, params: {console: false}}, {name: broken}]\n")
    assert summary["stopped"] == "completed" and summary["total_timesteps"] == 96
    (error,) = summary["monitors_disabled"].values()
    assert "monitor 'broken'.vtopt_episode_finished: RuntimeError: the monitor's disk is gone" in error
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "alert" and e["alert"] == "monitor_disabled" for e in events)


def test_a_monitor_with_on_error_stop_stops_the_run(tmp_path):
    with pytest.raises(vtopt.VtoptError, match="monitor 'broken'.vtopt_episode_finished: RuntimeError"):
        _train(tmp_path, "monitors: [{name: broken, on_error: stop}]\n")
    assert latest_checkpoint(tmp_path / "run") is not None  # what was learned is kept


def test_a_killed_env_worker_is_replaced_and_the_run_completes(tmp_path):
    flag = tmp_path / "killed-once"
    _, summary = _train(tmp_path, "reward: {weights: {ssim_rgb: 1.0, faulty: 0.0}, params: {faulty: "
                        f"{{mode: kill, after: 6, flag: '{flag}'}}}}}}\n"
                        "env: {conversions_per_episode: 3, parallel_envs: 2}\n")
    assert flag.exists()  # a worker really was killed
    assert summary["stopped"] == "completed" and summary["total_timesteps"] == 96
    assert summary["env_workers_replaced"] == 1
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    alerts = [e for e in events if e["event"] == "alert" and e["alert"] == "env_worker_replaced"]
    assert len(alerts) == 1 and "killed by signal 9" in alerts[0]["message"]


LONG = TINY_RUN.replace("timesteps: 96, checkpoint_every: 64", "timesteps: 128, checkpoint_every: 32")


def test_keep_checkpoints_keeps_the_newest(tmp_path):
    from vtopt.cli import main

    cfg = write_config(tmp_path, LONG.replace("checkpoint_every: 32", "checkpoint_every: 32, keep_checkpoints: 2"))
    assert main(["-q", "run", str(cfg), "--out", str(tmp_path / "run")]) == 0
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == [f"step_{t:09d}.{s}" for t in (96, 128) for s in ("json", "rng", "zip")]
    assert (tmp_path / "run" / "best_model.zip").is_file()
    listed = json.loads((tmp_path / "run" / "checkpoints" / "step_000000128.json").read_text())["checkpoints"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert listed == summary["checkpoints"] == ["checkpoints/step_000000096.zip", "checkpoints/step_000000128.zip"]


@pytest.mark.parametrize("damage", ["rng", "zip", "json"])
def test_a_damaged_checkpoint_is_skipped_with_a_warning(tmp_path, damage):
    from vtopt.cli import main

    cfg, out = write_config(tmp_path, LONG), tmp_path / "run"
    assert main(["-q", "run", str(cfg), "--out", str(out), "--set", "run.timesteps=96"]) == 0
    newest = out / "checkpoints" / f"step_{96:09d}.{damage}"
    newest.write_bytes(newest.read_bytes()[: len(newest.read_bytes()) // 2])
    with structlog.testing.capture_logs() as logs:
        model, state = latest_checkpoint(out)
    assert state["timesteps"] == 64 and model.name == "step_000000064.zip"
    (skipped,) = [e for e in logs if e["event"] == "checkpoint_skipped"]
    assert skipped["checkpoint"].endswith("step_000000096") and skipped["log_level"] == "warning"
    assert main(["-q", "run", str(out / "config.yaml"), "--out", str(out), "--resume"]) == 0  # from 64 to 96


def test_a_full_disk_names_the_file(tmp_path, monkeypatch, capsys):
    import errno

    from vtopt.cli import main
    from vtopt.files import atomic_write_bytes

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", full)
    with pytest.raises(OSError) as info:
        atomic_write_bytes(tmp_path / "x.json", b"{}")
    assert info.value.filename == str(tmp_path / "x.json") and not list(tmp_path.iterdir())  # no partial file
    cfg = write_config(tmp_path, TINY_RUN)
    assert main(["-q", "run", str(cfg), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert f"vtopt: error: {tmp_path / 'run'}/" in err and "No space left on device" in err


class _Crashing:
    def learn(self, ctx):
        pass

    def save(self, path):
        pass

    def load(self, path):
        pass

    def predict(self, observation, deterministic=True):
        raise KeyError("no such thing")


class CrashingPlugin:
    @vtopt.hookimpl
    def vtopt_register_algorithms(self):
        return {"crashing": _Crashing}


def test_an_algorithm_that_raises_fails_its_image_naming_the_plugin():
    pm = vtopt.PluginManager()
    pm.register(CrashingPlugin(), name="crash-plugin")
    files = sorted(ICONS.glob("*.png"))[:1]
    (row,) = run_images(files, [None], [Method("mine", 3, algorithm="crashing")], {"ssim_rgb": 1.0}, 1, pm=pm)
    assert row["error"].endswith("PluginFault: plugin 'crash-plugin' (registered from code): algorithm 'crashing'"
                                 ".search: KeyError: 'no such thing'")


def test_a_full_disk_at_a_periodic_checkpoint_is_not_the_algorithms_fault(tmp_path, monkeypatch):
    import errno

    import vtopt.training.checkpoints

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(vtopt.training.checkpoints, "atomic_write_bytes", full)  # the checkpoint's .rng, written inside learn
    with pytest.raises(OSError) as info:
        _train(tmp_path, "")
    assert not isinstance(info.value, vtopt.PluginFault) and info.value.filename.endswith("step_000000064.rng")


def test_hook_wrappers_are_refused_at_registration():
    class Wrapping:
        @vtopt.hookimpl(wrapper=True)
        def vtopt_alert(self, alert):
            return (yield)

    with pytest.raises(vtopt.VtoptError, match="vtopt_alert is a hook wrapper"):
        vtopt.PluginManager().register(Wrapping(), name="wrapping")


def test_a_failed_conversion_is_logged_once_in_training(tmp_path):
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        _train(tmp_path, "reward: {weights: {ssim_rgb: 1.0, faulty: 0.1}, params: {faulty: {mode: nan}}}\n")
    failed = [e for e in logs if e.get("event") == "conversion_failed"]
    errors = [e["error"] for e in failed]
    assert errors and len(errors) == len(set(errors)), errors  # each failure said once, by one owner:
    assert all("timesteps" in e for e in failed)  # the driver, which sees envs on any executor
