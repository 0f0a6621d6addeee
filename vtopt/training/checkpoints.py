"""A run's checkpoints: written every ``run.checkpoint_every`` timesteps, and the newest found again.

A checkpoint is three files beside each other in the run directory's ``checkpoints/``
(:mod:`vtopt.training.runfiles`): the model, then the RNG states (Python's, numpy's and torch's),
then the driver's state as JSON, written last: a checkpoint counts once its JSON exists. Resuming
(:func:`vtopt.training.rundir.open_run_dir`) takes the newest intact one (:func:`latest_checkpoint`),
restores the driver's parts from its JSON and the RNG states from its ``.rng``
(:func:`restore_rng`).
"""

from __future__ import annotations

import json
import pickle
import random
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from ..apply.model import META
from ..files import atomic_write_bytes, atomic_write_text, json_default
from .parts import Periodic
from .runfiles import CHECKPOINT_MODEL, CHECKPOINT_RNG, CHECKPOINT_STATE, CHECKPOINTS, checkpoint_model

log = structlog.get_logger(__name__)


class Checkpoints(Periodic):
    """Every ``run.checkpoint_every`` timesteps a checkpoint; the newest ``run.keep_checkpoints`` are kept."""

    def __init__(self, every: int, keep: int):
        super().__init__(every)
        self.keep = keep
        self.saved: list[str] = []  # model files relative to the run directory, oldest first

    def due(self, driver, timesteps):
        self.write(driver, timesteps)
        return True

    def write(self, driver: Any, timesteps: int, prune: bool = True) -> Path:
        """One checkpoint; with ``prune``, those beyond the newest ``keep`` are removed after it."""
        out_dir = driver.run.out_dir
        (out_dir / CHECKPOINTS).mkdir(exist_ok=True)
        name = checkpoint_model(timesteps)
        path = driver.save(out_dir / name)
        atomic_write_bytes(path.with_suffix(CHECKPOINT_RNG), pickle.dumps(rng_state()))
        if name not in self.saved:
            self.saved.append(name)
        old = self.saved[:-self.keep] if prune and self.keep else []
        self.saved = self.saved[len(old):]  # the state written next lists only what is kept
        atomic_write_text(path.with_suffix(CHECKPOINT_STATE), json.dumps(driver.state(), indent=1,
                                                                          default=json_default))
        driver.pm.checkpoint_saved(driver.run, path, timesteps)
        for name in old:  # the JSON first: a checkpoint without it no longer counts
            for suffix in (CHECKPOINT_STATE, CHECKPOINT_RNG, CHECKPOINT_MODEL):
                (out_dir / name).with_suffix(suffix).unlink(missing_ok=True)
        return path

    def state(self, driver):
        return {"checkpoints": self.saved}

    def restore(self, driver, state):
        self.saved = state["checkpoints"]


def latest_checkpoint(out_dir: Path) -> tuple[Path, dict] | None:
    """The newest intact checkpoint, as (model file, state): its JSON parses, its model is a whole zip
    and its RNG states unpickle. A damaged one is skipped with a warning that names it and says what
    is wrong."""
    for state_file in sorted((out_dir / CHECKPOINTS).glob(f"step_*{CHECKPOINT_STATE}"), reverse=True):
        model = state_file.with_suffix(CHECKPOINT_MODEL)
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
            pickle.loads(state_file.with_suffix(CHECKPOINT_RNG).read_bytes())
            return model, state
        except Exception as exc:  # any damage: say so, and try the one before
            log.warning("checkpoint_skipped", checkpoint=str(state_file.with_suffix("")),
                        problem=f"{type(exc).__name__}: {exc}")
    return None


def rng_state() -> dict[str, Any]:
    """The random number generators' states: Python's, numpy's, and torch's once it is imported."""
    state = {"random": random.getstate(), "numpy": np.random.get_state()}
    if "torch" in sys.modules:
        state["torch"] = sys.modules["torch"].get_rng_state()
    return state


def restore_rng(model: Path) -> None:
    """Set the generators to what the checkpoint of ``model`` saved (nothing when it saved none)."""
    rng_file = model.with_suffix(CHECKPOINT_RNG)
    if not rng_file.is_file():
        return
    state = pickle.loads(rng_file.read_bytes())
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    if "torch" in state:
        import torch

        torch.set_rng_state(state["torch"])
