"""The name of every file vtopt writes in a run directory, spelt here and nowhere else.

    config.yaml  run.json  model.zip  best_model.zip  summary.json  report.html  history.jsonl
    checkpoints/step_N.{zip,rng,json}  .lock

:mod:`vtopt.training.rundir` owns the directory (fresh, ``--force``, ``--resume``, its lock) and
:mod:`vtopt.training.checkpoints` the checkpoints. Monitors may add files of their own
(``events.jsonl``, ``episodes.csv``); they learn from :attr:`vtopt.RunInfo.resumed` whether to start
them afresh. A sweep's folder holds :data:`SWEEP_ROWS`, :data:`SWEEP_TABLE` and a run directory per
trial.
"""

from __future__ import annotations

from pathlib import Path

CONFIG = "config.yaml"  # the resolved config: what a resumed run must match
RUN_INFO = "run.json"  # the command line, package versions, the checkpoint resumed from
MODEL = "model.zip"  # the final model
BEST_MODEL = "best_model.zip"  # the best evaluated so far
SUMMARY = "summary.json"  # written last: a run with one is finished
REPORT = "report.html"
#: The run's history, written by vtopt itself whatever the monitors (``report.html`` is drawn from
#: it): one JSON object per line, each with ``event`` and ``timesteps``:
#: ``episode`` (kind, improvement), ``rollout`` (the statistics of ``vtopt_rollout_finished``),
#: ``stage_changed`` (previous, stage), ``evaluated`` (mean_score, mean_ssim, bytes_ratio,
#: mean_improvement, per_kind).
HISTORY = "history.jsonl"
#: The lock file of a run directory; it holds the pid of the process that has the lock.
LOCK = ".lock"
CHECKPOINTS = "checkpoints"  # the folder of checkpoints
#: A checkpoint is three files: the model, then the RNG states, then the driver's state (last: a
#: checkpoint counts once it exists).
CHECKPOINT_MODEL, CHECKPOINT_RNG, CHECKPOINT_STATE = ".zip", ".rng", ".json"
SWEEP_ROWS, SWEEP_TABLE = "sweep.json", "sweep.csv"  # a sweep's results, in its folder


def checkpoint_model(timesteps: int) -> str:
    """A checkpoint's model file, relative to the run directory (the other two share its stem)."""
    return f"{CHECKPOINTS}/step_{timesteps:09d}{CHECKPOINT_MODEL}"


def resume_command(out_dir: Path, settings: str = "") -> str:
    """The command that continues the run in ``out_dir`` (with ``settings``, e.g. ``--set run.timesteps=N``)."""
    return f"vtopt run {Path(out_dir) / CONFIG} --out {out_dir} --resume" + (f" {settings}" if settings else "")
