"""vtopt.training.rundir on its own: the lock, a fresh or forced run directory, resuming, and which
checkpoint counts (files written here as a run writes them; no training)."""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import pytest
from structlog.testing import capture_logs

from vtopt.apply.model import META
from vtopt.config.checks import load_config
from vtopt.errors import VtoptError
from vtopt.testing import TINY_CONFIG
from vtopt.training.checkpoints import latest_checkpoint
from vtopt.training.rundir import RunDirLock, open_run_dir, prepare_out_dir
from vtopt.training.runfiles import HISTORY, LOCK


def _checkpoint(out, timesteps: int) -> str:
    """A checkpoint as the run writes one: model zip (with vtopt's metadata), RNG states, JSON state last."""
    base = out / "checkpoints" / f"step_{timesteps:09d}"
    base.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(base.with_suffix(".zip"), "w") as zf:
        zf.writestr("policy.pth", b"weights" * 100)
        zf.writestr(META, json.dumps({"timesteps": timesteps}))
    base.with_suffix(".rng").write_bytes(pickle.dumps({"random": None}))
    base.with_suffix(".json").write_text(json.dumps({"timesteps": timesteps}))
    return str(base)


def test_one_process_at_a_time_holds_a_run_directory(tmp_path):
    out = tmp_path / "run"
    with RunDirLock(out) as lock:
        assert (out / LOCK).read_text() == f"{os.getpid()}\n"
        with pytest.raises(VtoptError, match=f"^{out}: in use by another vtopt process \\(pid {os.getpid()}\\); "):
            RunDirLock(out)  # another open file description: flock refuses it as it would another process
    assert lock.fd is None
    RunDirLock(out).release()  # free again once released
    assert RunDirLock(tmp_path / "missing", create=False).fd is None and not (tmp_path / "missing").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(VtoptError, match=f"^{tmp_path / 'file'}: exists and is not a folder$"):
        RunDirLock(tmp_path / "file")


def test_an_earlier_run_is_refused_or_cleared_with_force_keeping_other_files(tmp_path):
    out = tmp_path / "run"
    prepare_out_dir(out, force=False)  # a new folder
    for name in ("summary.json", "model.zip", "best_model.zip", HISTORY, "notes.txt"):
        (out / name).write_text("x")
    _checkpoint(out, 64)
    with pytest.raises(VtoptError, match=f"^{out}: already holds a run; choose another --out or pass --force"):
        prepare_out_dir(out, force=False)
    prepare_out_dir(out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # what is not the run's stays
    (tmp_path / "file").write_text("x")
    with pytest.raises(VtoptError, match="file: exists and is not a folder"):
        prepare_out_dir(tmp_path / "file", force=True)


def test_the_newest_intact_checkpoint_counts_and_each_damaged_one_is_named(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    ok = _checkpoint(tmp_path, 64)
    cut = _checkpoint(tmp_path, 128)
    data = open(cut + ".zip", "rb").read()
    open(cut + ".zip", "wb").write(data[: len(data) // 2])  # a model cut short
    no_state = _checkpoint(tmp_path, 192)
    open(no_state + ".json", "w").write('{"episodes": 3}')
    no_rng = _checkpoint(tmp_path, 1000)  # zero-padded: 1000 sorts after 192
    os.unlink(no_rng + ".rng")
    with capture_logs() as logs:
        model, state = latest_checkpoint(tmp_path)
    assert (str(model), state) == (ok + ".zip", {"timesteps": 64})
    skipped = {e["checkpoint"]: e["problem"] for e in logs if e["event"] == "checkpoint_skipped"}
    assert list(skipped) == [no_rng, no_state, cut]  # newest first
    assert skipped[no_rng].startswith("FileNotFoundError") and "step_000001000.rng" in skipped[no_rng]
    assert skipped[no_state] == "ValueError: its state has no timesteps"
    assert skipped[cut].startswith("BadZipFile")


def _loaded(tmp_path, overrides=()):
    path = tmp_path / "c.yaml"
    path.write_text(TINY_CONFIG)
    return load_config(path, list(overrides))


def test_resume_continues_the_run_s_own_config_and_only_trains_further(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(VtoptError, match=f"^{out}: no run to resume \\(no config.yaml\\)$"):
        open_run_dir(_loaded(tmp_path), out, force=False, resume=True)
    assert open_run_dir(_loaded(tmp_path), out, force=False, resume=False) is None
    assert load_config(out / "config.yaml").config.run.timesteps == 64
    with pytest.raises(VtoptError, match=f"^{out}: no complete checkpoint to resume from$"):
        open_run_dir(_loaded(tmp_path), out, force=False, resume=True)
    _checkpoint(out, 64)
    (out / "summary.json").write_text("{}")
    with pytest.raises(VtoptError, match=f"^{out}: the run is complete \\(64 timesteps\\); nothing to resume. "
                                         "To train further: vtopt run .* --set run.timesteps=N$"):
        open_run_dir(_loaded(tmp_path), out, force=False, resume=True)
    changed = _loaded(tmp_path, ["run.seed=5", "env.conversions_per_episode=4", "run.timesteps=128"])
    with pytest.raises(VtoptError, match="c.yaml: differs from the run's config in env.conversions_per_episode, "
                                         "run.seed \\(a resumed run may change only run.timesteps, "):
        open_run_dir(changed, out, force=False, resume=True)
    with pytest.raises(VtoptError, match="c.yaml: run.timesteps 32 is below the 64 timesteps the run has done"):
        (out / "summary.json").unlink()
        open_run_dir(_loaded(tmp_path, ["run.timesteps=32"]), out, force=False, resume=True)
    (out / "summary.json").write_text("{}")
    model, state = open_run_dir(_loaded(tmp_path, ["run.timesteps=128"]), out, force=False, resume=True)
    assert model.name == "step_000000064.zip" and state == {"timesteps": 64}
    assert load_config(out / "config.yaml").config.run.timesteps == 128  # the further run's total, saved
    assert not (out / "summary.json").exists()  # the run is no longer complete
