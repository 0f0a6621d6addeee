"""Faults, round 3: a shared run folder, damaged caches, memory, configs at the extremes, damaged histories."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import structlog.testing
from conftest import REPO, TINY_RUN, write_config

import vtopt
from vtopt.cli import main
from vtopt.files import temp_name
from vtopt.rundir import LOCK, RunDirLock


def _env():
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'plugins'}"}


# -- 1. one run per folder ----------------------------------------------------------------


def test_a_second_process_on_a_run_folder_is_refused_naming_the_holder(tmp_path, capsys):
    cfg = write_config(tmp_path, TINY_RUN.replace("timesteps: 96", "timesteps: 100000"))
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "vtopt", "-q", "run", str(cfg), "--out", str(out)],
                             env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ((out / LOCK).is_file() and (out / LOCK).read_text().strip()):
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert (out / LOCK).read_text().strip() == str(first.pid)
        for extra in ([], ["--force"], ["--resume"]):
            assert main(["run", str(cfg), "--out", str(out), *extra]) == 1
            err = capsys.readouterr().err.strip()
            assert err == (f"vtopt: error: {out}: in use by another vtopt process (pid {first.pid}); wait for it to "
                           "finish, or stop it, or choose another folder"), extra
        assert main(["report", str(out)]) == 1
        assert f"{out}: in use by another vtopt process (pid {first.pid})" in capsys.readouterr().err
        assert first.poll() is None  # the first run goes on, untouched
    finally:
        first.send_signal(signal.SIGKILL)  # as the OOM killer would: the kernel frees the lock
        first.wait()
    with RunDirLock(out) as lock:
        assert (out / LOCK).read_text().strip() == str(os.getpid()) and lock.fd is not None


def test_temp_names_are_unique_per_process(tmp_path):
    path = tmp_path / "config.yaml"
    here = temp_name(path)
    there = subprocess.run([sys.executable, "-c", f"from vtopt.files import temp_name; print(temp_name({str(path)!r}))"],
                           env=_env(), capture_output=True, text=True, check=True).stdout.strip()
    assert here.parent == path.parent and here.name.startswith(".config.yaml.") and str(here) != there
