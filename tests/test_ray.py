"""The executors on a real local Ray instance: optimize (byte-identical to local) and sweeps."""

import json

import pytest
from conftest import ICONS, TINY_RUN, write_config

from vtopt.cli import main

ray = pytest.importorskip("ray")

SWEEP = TINY_RUN + """\
sweep:
  metric: mean_score
  space:
    algorithm.params.learning_rate: loguniform(0.0001, 0.001)
    algorithm.params.n_epochs: choice([1, 2])
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("raymodel")
    assert main(["-q", "run", str(write_config(tmp, TINY_RUN)), "--out", str(tmp / "run")]) == 0
    return tmp / "run" / "model.zip"


def test_optimize_on_ray_writes_the_same_svgs_as_local(local_ray, model, tmp_path):
    outs = {}
    for executor in ("local", "ray"):
        out = tmp_path / executor
        code = main(["-q", "optimize", str(ICONS), "--out", str(out), "--model", str(model), "--budget", "3",
                     "--executor", executor, "--report", str(tmp_path / f"{executor}.json")])
        assert code == 0
        outs[executor] = {p.name: p.read_bytes() for p in out.glob("*.svg")}
    assert len(outs["local"]) == 4 and outs["local"] == outs["ray"]
    rows = json.loads((tmp_path / "ray.json").read_text())
    assert [r["input"] for r in rows] == sorted(str(p) for p in ICONS.glob("*.png"))


def test_a_failed_image_on_ray_is_a_row(local_ray, model, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.png").write_text("nope")
    (tmp_path / "in" / "crown.png").write_bytes((ICONS / "crown.png").read_bytes())
    code = main(["-q", "optimize", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--model", str(model),
                 "--executor", "ray", "--report", str(tmp_path / "r.json")])
    assert code == 1
    rows = {r["input"].rsplit("/", 1)[1]: r for r in json.loads((tmp_path / "r.json").read_text())}
    assert rows["bad.png"]["error"] and rows["crown.png"]["error"] is None


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_two_trial_sweep(local_ray, tmp_path, capsys, executor):
    cfg = write_config(tmp_path, SWEEP)
    out = tmp_path / "sweep"
    assert main(["-q", "sweep", str(cfg), "--trials", "2", "--out", str(out), "--executor", executor]) == 0
    rows = json.loads((out / "sweep.json").read_text())
    assert len(rows) == 2 and rows[0]["score"] >= rows[1]["score"]
    for row in rows:
        assert 0.0001 <= row["algorithm.params.learning_rate"] <= 0.001
        assert row["algorithm.params.n_epochs"] in (1, 2)
        assert (tmp_path / "sweep" / row["trial"] / "summary.json").is_file()
    assert (out / "sweep.csv").read_text().count("\n") == 3
    printed = capsys.readouterr().out
    assert "learning_rate" in printed and "2 trials" in printed


def test_bad_sweep_space_is_a_config_error(tmp_path, capsys):
    cfg = write_config(tmp_path, TINY_RUN + "sweep:\n  space:\n    run.seed: normal(0, 1)\n")
    assert main(["sweep", str(cfg), "--samples", "2"]) == 2
    err = capsys.readouterr().err
    assert "$.sweep.space.run.seed" in err and "is not one of uniform" in err


def _killer_plugin(flag: str, main_pid: int, after: int):
    """A metric that kills the process it runs in once (as the OOM killer would): local classes, so that
    Ray's cloudpickle sends them by value to the actors."""
    import os
    import signal

    import vtopt

    class Killer:
        calls = 0

        def prepare(self, image):
            return None

        def compute(self, sample, state):
            Killer.calls += 1
            if os.getpid() != main_pid and Killer.calls > after:
                try:
                    os.close(os.open(flag, os.O_CREAT | os.O_EXCL))  # one actor only, however they race
                except FileExistsError:
                    return 0.0
                os.kill(os.getpid(), signal.SIGKILL)
            return 0.0

    class Plugin:
        @vtopt.hookimpl
        def vtopt_register_metrics(self):
            return {"killer": Killer}

    return Plugin()


RAY_RUN = TINY_RUN.replace("parallel_envs: 1", "parallel_envs: 2").replace(
    "timesteps: 96, checkpoint_every: 64", "timesteps: 128, checkpoint_every: 64")


def test_training_on_ray_actors_resumes_and_survives_a_killed_actor(local_ray, tmp_path):
    import os

    import vtopt
    from vtopt.training.checkpoints import latest_checkpoint

    out = tmp_path / "run"
    cfg = write_config(tmp_path, RAY_RUN)
    assert main(["-q", "run", str(cfg), "--out", str(out), "--executor", "ray", "--set", "run.timesteps=64"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["executor"] == "ray" and summary["n_envs"] == 2 and summary["total_timesteps"] == 64
    assert latest_checkpoint(out)[1]["timesteps"] == 64
    # resume, further, on Ray; a killed actor is replaced and the run completes
    assert main(["-q", "run", str(out / "config.yaml"), "--out", str(out), "--resume",
                 "--set", "run.timesteps=128"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed"] and summary["total_timesteps"] == 128
    flag = tmp_path / "killed"
    pm = vtopt.PluginManager()
    pm.register(_killer_plugin(str(flag), os.getpid(), 10), name="killer")
    cfg = write_config(tmp_path, RAY_RUN + "reward: {weights: {ssim_rgb: 1.0, size: -0.02, killer: 0.0}}\n"
                       "resources: {executor: ray}\n", name="kill.yaml")
    summary = vtopt.train(vtopt.load_config(cfg, pm=pm), tmp_path / "kill", pm)
    assert flag.exists() and summary["env_workers_replaced"] == 1 and summary["total_timesteps"] == 128


def test_a_faulty_metric_on_ray_actors_is_named_and_too_many_actors_are_refused(local_ray, tmp_path, capsys):
    import vtopt

    class Raising:
        def prepare(self, image):
            return None

        def compute(self, sample, state):
            if sample.defaults is not None:
                raise ZeroDivisionError("on an actor")
            return 0.0

    class Plugin:
        @vtopt.hookimpl
        def vtopt_register_metrics(self):
            return {"raising": Raising}

    pm = vtopt.PluginManager()
    pm.register(Plugin(), name="raising-plugin")
    cfg = write_config(tmp_path, RAY_RUN + "reward: {weights: {ssim_rgb: 1.0, raising: 0.1}}\n"
                       "resources: {executor: ray}\n")
    with pytest.raises(vtopt.VtoptError) as info:
        vtopt.train(vtopt.load_config(cfg, pm=pm), tmp_path / "run", pm)
    assert str(info.value) == ("plugin 'raising-plugin' (registered from code): metric 'raising'.compute: "
                               "ZeroDivisionError: on an actor")
    out = tmp_path / "three"
    assert main(["-q", "run", str(write_config(tmp_path, RAY_RUN, name="three.yaml")), "--out", str(out),
                 "--executor", "ray", "--set", "env.parallel_envs=3"]) == 1
    assert "env.parallel_envs is 3 but the Ray cluster has 2 CPUs" in capsys.readouterr().err


def _pid_logging_killer(log: str, victim: str):
    """A metric that notes which process converts which image, and SIGKILLs its actor the first time it
    meets ``victim`` (as the OOM killer would)."""
    import os
    import signal

    import vtopt

    class Killer:
        def prepare(self, image):
            return image.name

        def compute(self, sample, state):
            with open(log, "a") as fh:
                fh.write(f"{os.getpid()} {state}\n")
            if state == victim:
                try:
                    os.close(os.open(log + ".killed", os.O_CREAT | os.O_EXCL))  # once
                except FileExistsError:
                    return 0.0
                os.kill(os.getpid(), signal.SIGKILL)
            return 0.0

    class Plugin:
        @vtopt.hookimpl
        def vtopt_register_metrics(self):
            return {"killer": Killer}

    return Plugin()


def test_optimize_on_ray_retries_the_image_of_a_killed_actor_on_a_fresh_one(local_ray, tmp_path):
    import shutil

    import structlog.testing

    import vtopt
    from vtopt.apply.apply import Method, run_images

    files = []
    for i in range(3):  # six images, the first of them the victim
        for p in sorted(ICONS.glob("*.png"))[:2]:
            files.append(tmp_path / f"{i}-{p.name}")
            shutil.copy(p, files[-1])
    log = str(tmp_path / "pids.log")
    pm = vtopt.PluginManager()
    pm.register(_pid_logging_killer(log, files[0].stem), name="killer")
    executor = pm.create_executor("ray", None)
    with structlog.testing.capture_logs() as logs:
        rows = run_images(files, [None] * len(files), [Method("defaults", 1)], {"ssim_rgb": 1.0, "killer": 0.0}, 2,
                          pm=pm, executor=executor)
    assert (tmp_path / "pids.log.killed").exists()
    assert [r["error"] for r in rows] == [None] * len(files)  # the victim too: retried
    (replaced,) = [e for e in logs if e["event"] == "ray_actor_replaced"]
    assert replaced["retried"] and replaced["image"] == str(files[0])
    seen = [tuple(line.split()) for line in open(log).read().splitlines()]
    kill = [name for _, name in seen].index(files[0].stem)
    killed, retried = seen[kill][0], [pid for pid, name in seen if name == files[0].stem][-1]
    assert retried != killed and killed not in {pid for pid, _ in seen[kill + 1:]}
    assert len({pid for pid, _ in seen}) == 3  # the two actors, and the fresh one that replaced the dead one


def test_a_local_ray_start_keeps_token_auth_without_its_notice():
    import os
    import subprocess
    import sys

    from conftest import REPO

    code = ("import os\nfrom vtopt_ray import RayExecutor\nray = RayExecutor(num_cpus=1)._init()\n"
            "print('mode', os.environ['RAY_AUTH_MODE'])\nray.shutdown()\n")  # Ray sets it: token
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "plugins")])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and "mode token" in out.stdout, out.stderr[-2000:]
    assert "Token authentication" not in out.stderr  # Ray's notice, printed on every start when the mode is unset
