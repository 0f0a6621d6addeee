"""A run directory owns its files: a fresh run, ``--force`` over an earlier one, or ``--resume``.

    config.yaml  run.json  model.zip  best_model.zip  summary.json  report.html
    history.jsonl (:data:`HISTORY`)  checkpoints/step_N.{zip,rng,json}  .lock (:data:`LOCK`)

One process at a time works in a run directory: :func:`lock_run_dir` takes an exclusive ``flock`` on
``.lock`` before anything is written and holds it while the run (or ``vtopt report``) lasts; the kernel
frees it when the holder exits, however it dies.

Monitors may add files of their own (``events.jsonl``, ``episodes.csv``); they
learn from :attr:`vtopt.RunInfo.resumed` whether to start them afresh.
"""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

import structlog

from ..apply.model import META
from ..config.checks import load_config
from ..config.schema import LoadedConfig
from ..errors import ConfigError, VtoptError
from ..files import atomic_write_text

log = structlog.get_logger(__name__)

#: The run's history, written by vtopt itself whatever the monitors (``report.html`` is drawn from
#: it): one JSON object per line, each with ``event`` and ``timesteps``:
#: ``episode`` (kind, improvement), ``rollout`` (the statistics of ``vtopt_rollout_finished``),
#: ``stage_changed`` (previous, stage), ``evaluated`` (mean_score, mean_ssim, bytes_ratio,
#: mean_improvement, per_kind).
HISTORY = "history.jsonl"


#: The lock file of a run directory; it holds the pid of the process that has the lock.
LOCK = ".lock"


class RunDirLock:
    """An exclusive lock on a run directory (made when ``create``), held until :meth:`release` or the
    process ends; a folder in use raises a one-line :class:`VtoptError` naming it and the holder's pid."""

    def __init__(self, out_dir: Path, create: bool = True):
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise VtoptError(f"{self.out_dir}: exists and is not a folder")
        self.fd: int | None = None
        if create:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        elif not self.out_dir.is_dir():  # nothing to lock; the caller says what is missing
            return
        self.fd = os.open(self.out_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            os.close(self.fd)
            raise VtoptError(f"{self.out_dir}: in use by another vtopt process (pid {holder}); wait for it to "
                             "finish, or stop it, or choose another folder") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def _holder(self) -> str:
        for _ in range(20):  # the holder writes its pid just after taking the lock
            pid = os.pread(self.fd, 32, 0).decode(errors="replace").strip()
            if pid:
                return pid
            time.sleep(0.05)
        return "unknown"

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor frees the flock
            self.fd = None

    def __enter__(self) -> RunDirLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


#: Config keys a resumed run may change: train further by raising ``run.timesteps``.
RESUMABLE_CHANGES = ("run.timesteps", "resources.executor", "resources.address")


def _changed_keys(old_yaml: str, new_yaml: str) -> dict[str, tuple[Any, Any]]:
    """``{"a.b.c": (old, new)}`` for every leaf that differs between two config dumps."""
    from ruamel.yaml import YAML

    def leaves(node, prefix=""):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from leaves(v, f"{prefix}{k}.")
        else:
            yield prefix[:-1], node

    yaml = YAML(typ="safe")
    old, new = dict(leaves(yaml.load(old_yaml))), dict(leaves(yaml.load(new_yaml)))
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


def open_run_dir(loaded: LoadedConfig, out_dir: Path, force: bool, resume: bool) -> tuple[Path, dict] | None:
    """Make ``out_dir`` ready for the run: fresh (refusing an earlier run unless ``force``), or resumed
    from its newest intact checkpoint, returned as (model file, state). A resumed run's config must be
    the run's own, but for :data:`RESUMABLE_CHANGES`."""
    cfg = loaded.config
    checkpoint = None
    if resume:
        saved = out_dir / "config.yaml"
        if not saved.is_file():
            raise VtoptError(f"{out_dir}: no run to resume (no config.yaml)")
        try:  # loaded as a config is, so that a key a newer vtopt added (with its default) is no change
            old = load_config(saved).dump()
        except ConfigError:
            old = saved.read_text()
        changed = _changed_keys(old, loaded.dump())
        refused = sorted(set(changed) - set(RESUMABLE_CHANGES))
        if refused:
            raise VtoptError(f"{loaded.path}: differs from the run's config in {', '.join(refused)} (a resumed run "
                             f"may change only {', '.join(RESUMABLE_CHANGES)}); resume with: "
                             f"vtopt run {saved} --out {out_dir} --resume [--set run.timesteps=N]")
        checkpoint = latest_checkpoint(out_dir)
        if checkpoint is None:
            raise VtoptError(f"{out_dir}: no complete checkpoint to resume from")
        if checkpoint[1]["timesteps"] >= cfg.run.timesteps and (out_dir / "summary.json").is_file():
            raise VtoptError(f"{out_dir}: the run is complete ({checkpoint[1]['timesteps']} timesteps); nothing to "
                             f"resume. To train further: vtopt run {saved} --out {out_dir} --resume "
                             f"--set run.timesteps=N")
        if checkpoint[1]["timesteps"] > cfg.run.timesteps:
            raise VtoptError(f"{loaded.path}: run.timesteps {cfg.run.timesteps} is below the {checkpoint[1]['timesteps']} "
                             "timesteps the run has done; a resumed run can only train further")
        if changed:
            log.info("resume_changes", **{k: changed[k][1] for k in changed})
            atomic_write_text(saved, loaded.dump())
        (out_dir / "summary.json").unlink(missing_ok=True)
    else:
        prepare_out_dir(out_dir, force)
        atomic_write_text(out_dir / "config.yaml", loaded.dump())
    return checkpoint


def latest_checkpoint(out_dir: Path) -> tuple[Path, dict] | None:
    """The newest intact checkpoint: its JSON parses, its model is a whole zip and its RNG states
    unpickle. A damaged one is skipped with a warning that names it and says what is wrong."""
    for state_file in sorted((out_dir / "checkpoints").glob("step_*.json"), reverse=True):
        model = state_file.with_suffix(".zip")
        try:
            state = json.loads(state_file.read_text())
            if not isinstance(state, dict) or not isinstance(state.get("timesteps"), int):
                raise ValueError("its state has no timesteps")
            with zipfile.ZipFile(model) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise zipfile.BadZipFile(f"{bad} fails its CRC check")
                if META not in zf.namelist():  # e.g. truncated onto a zip nested inside it
                    raise zipfile.BadZipFile(f"no {META} in it")
            pickle.loads(state_file.with_suffix(".rng").read_bytes())
            return model, state
        except Exception as exc:  # any damage: say so, and try the one before
            log.warning("checkpoint_skipped", checkpoint=str(state_file.with_suffix("")),
                        problem=f"{type(exc).__name__}: {exc}")
    return None


def prepare_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise VtoptError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any((out_dir / f).exists() for f in ("summary.json", "model.zip", HISTORY)):
        if not force:
            raise VtoptError(f"{out_dir}: already holds a run; choose another --out or pass --force to overwrite it")
        for f in ("summary.json", "model.zip", HISTORY):
            (out_dir / f).unlink(missing_ok=True)
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
        (out_dir / "best_model.zip").unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
