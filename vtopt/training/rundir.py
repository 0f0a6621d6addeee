"""A run directory made ready for a run: fresh, ``--force`` over an earlier one, or ``--resume``.

Its files are named in :mod:`vtopt.training.runfiles`. One process at a time works in a run
directory: :class:`RunDirLock` takes an exclusive ``flock`` on :data:`~vtopt.training.runfiles.LOCK`
before anything is written and holds it while the run (or ``vtopt report``) lasts; the kernel frees
it when the holder exits, however it dies.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from pathlib import Path
from typing import Any

import structlog

from ..config.checks import load_config
from ..config.schema import LoadedConfig
from ..errors import ConfigError, VtoptError
from ..files import atomic_write_text
from .checkpoints import latest_checkpoint
from .runfiles import BEST_MODEL, CHECKPOINTS, CONFIG, HISTORY, LOCK, MODEL, SUMMARY, resume_command

log = structlog.get_logger(__name__)

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
        saved = out_dir / CONFIG
        if not saved.is_file():
            raise VtoptError(f"{out_dir}: no run to resume (no {CONFIG})")
        try:  # loaded as a config is, so that a key a newer vtopt added (with its default) is no change
            old = load_config(saved).dump()
        except ConfigError:
            old = saved.read_text()
        changed = _changed_keys(old, loaded.dump())
        refused = sorted(set(changed) - set(RESUMABLE_CHANGES))
        if refused:
            raise VtoptError(f"{loaded.path}: differs from the run's config in {', '.join(refused)} (a resumed run "
                             f"may change only {', '.join(RESUMABLE_CHANGES)}); resume with: "
                             + resume_command(out_dir, "[--set run.timesteps=N]"))
        checkpoint = latest_checkpoint(out_dir)
        if checkpoint is None:
            raise VtoptError(f"{out_dir}: no complete checkpoint to resume from")
        if checkpoint[1]["timesteps"] >= cfg.run.timesteps and (out_dir / SUMMARY).is_file():
            raise VtoptError(f"{out_dir}: the run is complete ({checkpoint[1]['timesteps']} timesteps); nothing to "
                             "resume. To train further: " + resume_command(out_dir, "--set run.timesteps=N"))
        if checkpoint[1]["timesteps"] > cfg.run.timesteps:
            raise VtoptError(f"{loaded.path}: run.timesteps {cfg.run.timesteps} is below the {checkpoint[1]['timesteps']} "
                             "timesteps the run has done; a resumed run can only train further")
        if changed:
            log.info("resume_changes", **{k: changed[k][1] for k in changed})
            atomic_write_text(saved, loaded.dump())
        (out_dir / SUMMARY).unlink(missing_ok=True)
    else:
        prepare_out_dir(out_dir, force)
        atomic_write_text(out_dir / CONFIG, loaded.dump())
    return checkpoint


def prepare_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise VtoptError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any((out_dir / f).exists() for f in (SUMMARY, MODEL, HISTORY)):
        if not force:
            raise VtoptError(f"{out_dir}: already holds a run; choose another --out or pass --force to overwrite it")
        for f in (SUMMARY, MODEL, HISTORY, BEST_MODEL):
            (out_dir / f).unlink(missing_ok=True)
        shutil.rmtree(out_dir / CHECKPOINTS, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
