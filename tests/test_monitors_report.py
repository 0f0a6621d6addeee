"""The built-in monitors in a real run, alerts, and the HTML report opened in headless Chromium."""

import csv
import json
import os
import shutil
import subprocess

import pytest
from conftest import TINY_RUN, write_config

from vtopt import hookimpl
from vtopt.cli import main

MONITORS = """\
monitors:
  - {name: structlog, params: {console: false}}
  - {name: progress, params: {every: 0.01}}
  - {name: csv}
  - {name: tensorboard}
  - {name: alerts, params: {patience: 1, drop: 0.5}}
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mon")
    cfg = write_config(tmp, TINY_RUN.replace("monitors: [{name: structlog, params: {console: false}}]\n", MONITORS)
                       .replace("checkpoint_every: 64}", "checkpoint_every: 64, eval_every: 32}"))
    assert main(["-q", "run", str(cfg), "--out", str(tmp / "run")]) == 0
    return tmp / "run"


def test_csv_has_one_row_per_episode(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = list(csv.DictReader((run_dir / "episodes.csv").open()))
    assert len(rows) == summary["episodes"] > 0
    assert set(rows[0]) >= {"timesteps", "kind", "improvement", "ssim", "bytes", "default_bytes"}


def test_tensorboard_scalars_are_written(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "eval/mean_score" in tags and "rollout/steps_per_s" in tags
    assert len(acc.Scalars("eval/mean_score")) >= 3


def test_progress_prints_plain_lines_when_not_a_tty(tmp_path, capfd):
    cfg = write_config(tmp_path, TINY_RUN.replace("monitors: [{name: structlog, params: {console: false}}]\n",
                                                  "monitors: [{name: progress, params: {every: 0.01}}]\n"))
    assert main(["-q", "run", str(cfg), "--out", str(tmp_path / "run")]) == 0
    lines = [l for l in capfd.readouterr().err.splitlines() if "timesteps (" in l]
    assert len(lines) >= 2 and "\r" not in "".join(lines)
    assert "96/96 timesteps (100%)" in lines[-1] and "steps/s" in lines[-1] and "ETA" in lines[-1]


def test_alerts_monitor_rules(vtopt_pm):
    pm = vtopt_pm()
    alerts = []

    class Run:
        class config:
            class env:
                conversions_per_episode = 3

        def alert(self, alert, message, timesteps):
            alerts.append(alert)

    mon = pm.create("monitor", "alerts", {"patience": 2, "failure_rate": 0.1, "drop": 0.01})
    run = Run()
    for t, score in enumerate((0.95, 0.96, 0.94, 0.955)):
        mon.vtopt_evaluated(run=run, evaluation={"mean_score": score}, timesteps=t)
    mon.vtopt_evaluated(run=run, evaluation={"mean_score": 0.9}, timesteps=3)  # the final repeat: ignored
    assert alerts == ["score_drop", "no_improvement"]
    mon.vtopt_rollout_finished(run=run, timesteps=0, stats={"images": 10, "failures": 1.0})  # 5%: fine
    mon.vtopt_rollout_finished(run=run, timesteps=0, stats={"images": 10, "failures": 5.0})  # 25%
    assert alerts[-1] == "failures" and len(alerts) == 3


def test_alerts_reach_every_plugin_and_the_event_log(tmp_path, vtopt_pm):
    pm = vtopt_pm()
    heard = []

    class Raiser:
        @hookimpl
        def vtopt_evaluated(self, run, timesteps):
            run.alert("custom", "something to look at", timesteps)

        @hookimpl
        def vtopt_alert(self, alert, message):
            heard.append((alert, message))

    pm.register(Raiser())
    from vtopt.config.checks import load_config
    from vtopt.training.run import train

    train(load_config(write_config(tmp_path, TINY_RUN), pm=pm), tmp_path / "run", pm)
    assert heard and heard[0] == ("custom", "something to look at")
    events = [json.loads(l) for l in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "alert" and e["alert"] == "custom" for e in events)


def test_report_opens_in_headless_chromium_with_every_image_decoded(run_dir, tmp_path):
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text()
    assert "Learning curves" in page and "Curriculum stages" in page and "Gallery" in page
    assert "http://" not in page and "https://" not in page  # self-contained
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed here")
    out = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=10000", "--dump-dom",
         (run_dir / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    import re

    body = re.search(r'<body data-images-total="(\d+)" data-images-decoded="(\d+)"', out.stdout)
    assert body, out.stdout[:500] + out.stderr[-1000:]
    total, decoded = map(int, body.groups())
    # 3 learning-curve charts + 4 gallery images x 3 (original, defaults, policy)
    assert total >= 15 and decoded == total


def test_the_history_and_the_report_need_no_monitor(tmp_path):
    from conftest import TINY_RUN, write_config

    from vtopt.cli import main

    cfg = write_config(tmp_path, TINY_RUN.replace("monitors: [{name: structlog, params: {console: false}}]",
                                                  "monitors: []\nrun: {name: bare, seed: 1, timesteps: 96, "
                                                  "eval_every: 48}").replace(
        "run: {name: tiny, seed: 1, timesteps: 96, checkpoint_every: 64}\n", ""))
    out = tmp_path / "run"
    assert main(["-q", "run", str(cfg), "--out", str(out)]) == 0
    assert not (out / "events.jsonl").exists()
    lines = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    events = [e["event"] for e in lines]
    assert events.count("episode") == summary["episodes"] and events[0] == "stage_changed"
    assert events.count("evaluated") == len(summary["evaluations"]) >= 2 and "rollout" in events
    assert all(isinstance(e["timesteps"], int) for e in lines)
    page = (out / "report.html").read_text()
    assert 'alt="learning curves"' in page and 'alt="per-kind curves"' in page
