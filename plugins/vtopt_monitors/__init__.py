"""Built-in monitors: ``structlog`` (JSON lines + console lines), ``progress``,
``csv`` (episode metrics), ``tensorboard`` (scalars) and ``alerts``."""

from __future__ import annotations

import csv
import math
import sys
import time
from pathlib import Path

import structlog

from vtopt import ParamError, check_number, hookimpl

_ROUND = 5


def _clean(value):
    """JSON-friendly scalars, rounded for the eye."""
    if isinstance(value, float):
        return round(value, _ROUND)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return value


class StructlogMonitor:
    """Every event as a JSON line in ``RUN_DIR/<file>``; the main ones on the console.

    params: ``file`` (default ``events.jsonl``), ``console`` (default true),
    ``episodes`` (write every episode to the file; default true).
    """

    def __init__(self, file: str = "events.jsonl", console: bool = True, episodes: bool = True):
        if not isinstance(file, str) or not file or "/" in file or file.startswith("."):
            raise ParamError("file", "must be a plain file name inside the run directory")
        if not isinstance(console, bool):
            raise ParamError("console", "must be true or false")
        if not isinstance(episodes, bool):
            raise ParamError("episodes", "must be true or false")
        self.file, self.console, self.episodes = file, console, episodes
        self._fh = None
        self._log = None

    def _emit(self, event: str, to_console: bool, **fields):
        fields = _clean(fields)
        if self._log is not None:
            self._log.info(event, **fields)
        if to_console and self.console:
            structlog.get_logger("vtopt").info(event, **fields)

    @hookimpl
    def vtopt_run_started(self, run):
        self._fh = open(Path(run.out_dir) / self.file, "a" if run.resumed else "w", encoding="utf-8")
        self._log = structlog.wrap_logger(
            structlog.PrintLogger(self._fh),
            processors=[structlog.processors.TimeStamper(fmt="iso", utc=True), structlog.processors.JSONRenderer()],
            wrapper_class=structlog.BoundLogger,  # the file gets every event, whatever the console's level
        )
        self._emit("run_started", True, name=run.name, total_timesteps=run.total_timesteps, n_envs=run.n_envs,
                   kinds=run.kinds, out_dir=run.out_dir)

    @hookimpl
    def vtopt_episode_finished(self, episode, timesteps):
        if self.episodes:
            self._emit("episode", False, timesteps=timesteps, **episode)

    @hookimpl
    def vtopt_rollout_finished(self, timesteps, stats):
        self._emit("rollout", True, timesteps=timesteps, **stats)

    @hookimpl
    def vtopt_stage_changed(self, previous, stage, timesteps):
        self._emit("stage_changed", True, previous=previous, stage=stage, timesteps=timesteps)

    @hookimpl
    def vtopt_evaluated(self, evaluation, timesteps):
        brief = {k: v for k, v in evaluation.items() if k not in ("rows", "per_kind")}
        self._emit("evaluated", True, timesteps=timesteps, **brief)
        if self._log is not None:
            self._log.info("evaluation_detail", per_kind=_clean(evaluation.get("per_kind")),
                           rows=_clean(evaluation.get("rows")))

    @hookimpl
    def vtopt_checkpoint_saved(self, path, timesteps):
        self._emit("checkpoint_saved", True, path=path, timesteps=timesteps)

    @hookimpl
    def vtopt_alert(self, alert, message, timesteps):
        self._emit("alert", False, alert=alert, message=message, timesteps=timesteps)

    @hookimpl
    def vtopt_run_aborted(self, reason):
        self._emit("run_aborted", True, reason=reason)
        if self._fh is not None:
            self._fh.close()
            self._fh, self._log = None, None

    @hookimpl
    def vtopt_run_finished(self, summary):
        self._emit("run_finished", True, total_timesteps=summary["total_timesteps"],
                   wall_seconds=summary["wall_seconds"], env_steps_per_second=summary["env_steps_per_second"])
        if self._fh is not None:
            self._fh.close()
            self._fh, self._log = None, None


def _check(name, value, ok, what):
    if not ok(value):
        raise ParamError(name, what)


def _positive(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


class ProgressMonitor:
    """Stage, timesteps, steps/s, recent mean improvement and ETA.

    On a terminal one line is redrawn in place; otherwise (CI, a log file) a
    plain line is written every ``every`` seconds (default 10).
    """

    def __init__(self, every: float = 10.0, stream: str = "stderr"):
        _check("every", every, _positive, "must be a positive number of seconds")
        _check("stream", stream, lambda v: v in ("stderr", "stdout"), "must be stderr or stdout")
        self.every, self.stream_name = float(every), stream
        self.stage, self.recent, self.last_print = None, [], 0.0

    @property
    def stream(self):
        return sys.stderr if self.stream_name == "stderr" else sys.stdout

    @hookimpl
    def vtopt_run_started(self, run):
        self.total, self.t0 = run.total_timesteps, time.perf_counter()
        self.tty = self.stream.isatty()
        self.start_steps = None

    @hookimpl
    def vtopt_stage_changed(self, stage):
        self.stage = stage

    @hookimpl
    def vtopt_episode_finished(self, episode, timesteps):
        self.recent = (self.recent + [(episode["score"], episode["improvement"])])[-100:]
        self._show(timesteps)

    def _show(self, timesteps, force=False):
        now = time.perf_counter()
        if self.start_steps is None:
            self.start_steps = timesteps
        if not force and now - self.last_print < (0.5 if self.tty else self.every):
            return
        self.last_print = now
        rate = (timesteps - self.start_steps) / max(now - self.t0, 1e-9)
        eta = (self.total - timesteps) / rate if rate > 0 else math.inf
        n = len(self.recent) or float("nan")
        score = sum(s for s, _ in self.recent) / n if self.recent else float("nan")
        gain = sum(g for _, g in self.recent) / n if self.recent else float("nan")
        line = (f"[{self.stage or '-'}] {timesteps}/{self.total} timesteps ({100 * timesteps / self.total:.0f}%) "
                f"{rate:.1f} steps/s  recent score {score:.4f} ({gain:+.4f} vs defaults)  ETA {_duration(eta)}")
        if self.tty:
            self.stream.write("\r" + line.ljust(100))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    @hookimpl
    def vtopt_run_finished(self, summary):
        self._show(summary["total_timesteps"], force=True)
        if self.tty:
            self.stream.write("\n")

    @hookimpl
    def vtopt_run_aborted(self):
        if self.tty:
            self.stream.write("\n")


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class CsvMonitor:
    """One row per finished episode in ``RUN_DIR/<file>`` (default ``episodes.csv``)."""

    COLUMNS = ("timesteps", "image", "kind", "improvement", "score", "default_score", "ssim", "default_ssim",
               "bytes", "default_bytes", "failures")

    def __init__(self, file: str = "episodes.csv"):
        _check("file", file, lambda v: isinstance(v, str) and v and "/" not in v, "must be a plain file name")
        self.file = file
        self._fh = None

    @hookimpl
    def vtopt_run_started(self, run):
        path = Path(run.out_dir) / self.file
        new = not run.resumed or not path.exists() or path.stat().st_size == 0
        self._fh = open(path, "w" if new else "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)
        if new:
            self._writer.writerow(self.COLUMNS)

    @hookimpl
    def vtopt_episode_finished(self, episode, timesteps):
        self._writer.writerow([timesteps] + [episode[c] for c in self.COLUMNS[1:]])
        self._fh.flush()

    @hookimpl
    def vtopt_run_finished(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    vtopt_run_aborted = hookimpl(vtopt_run_finished)


class TensorBoardMonitor:
    """Scalars for TensorBoard in ``RUN_DIR/<folder>`` (needs ``pip install tensorboard``)."""

    def __init__(self, folder: str = "tensorboard"):
        _check("folder", folder, lambda v: isinstance(v, str) and v and "/" not in v, "must be a plain folder name")
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise ParamError(None, "needs the tensorboard package: pip install 'vtopt[tensorboard]'") from None
        self.folder = folder
        self.writer = None

    @hookimpl
    def vtopt_run_started(self, run):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(Path(run.out_dir) / self.folder))

    @hookimpl
    def vtopt_rollout_finished(self, timesteps, stats):
        for key, value in stats.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(f"rollout/{key}", value, timesteps)

    @hookimpl
    def vtopt_evaluated(self, evaluation, timesteps):
        for key in ("mean_score", "mean_ssim", "bytes_ratio", "mean_improvement"):
            if evaluation.get(key) is not None:
                self.writer.add_scalar(f"eval/{key}", evaluation[key], timesteps)
        for kind, row in evaluation.get("per_kind", {}).items():
            self.writer.add_scalar(f"eval_kind/{kind}", row["mean_score"], timesteps)

    @hookimpl
    def vtopt_run_finished(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    vtopt_run_aborted = hookimpl(vtopt_run_finished)


class AlertsMonitor:
    """Warns (an ``alert`` event and a console line) when a run goes wrong.

    - ``patience``: the evaluation score has not improved for this many evaluations;
    - ``failure_rate``: more than this share of a rollout's conversions failed;
    - ``drop``: an evaluation scores this much below the best one so far.
    """

    def __init__(self, patience: int = 3, failure_rate: float = 0.05, drop: float = 0.01):
        check_number("patience", patience, integer=True, low=1)
        _check("failure_rate", failure_rate, _positive, "must be a positive share")
        _check("drop", drop, _positive, "must be a positive score difference")
        self.patience, self.failure_rate, self.drop = patience, float(failure_rate), float(drop)
        self.best, self.stale = -math.inf, 0

    @hookimpl
    def vtopt_rollout_finished(self, run, timesteps, stats):
        episodes = stats.get("images", 0)
        conversions = episodes * (run.config.env.conversions_per_episode - 1)
        if conversions and stats.get("failures", 0) / conversions > self.failure_rate:
            run.alert("failures", f"{stats['failures']:.0f} of {conversions} conversions failed in the last "
                      f"rollout (over {self.failure_rate:.0%})", timesteps)

    @hookimpl
    def vtopt_evaluated(self, run, evaluation, timesteps):
        if timesteps == getattr(self, "last_timesteps", None):
            return  # the final evaluation repeats the last periodic one
        self.last_timesteps = timesteps
        score = evaluation["mean_score"]
        if score < self.best - self.drop:
            run.alert("score_drop", f"evaluation score {score:.4f} is {self.best - score:.4f} below the best "
                      f"({self.best:.4f})", timesteps)
        if score > self.best:
            self.best, self.stale = score, 0
        else:
            self.stale += 1
            if self.stale == self.patience:
                run.alert("no_improvement", f"no better evaluation score in {self.stale} evaluations "
                          f"(best {self.best:.4f})", timesteps)


@hookimpl
def vtopt_register_monitors():
    return {"structlog": StructlogMonitor, "progress": ProgressMonitor, "csv": CsvMonitor,
            "tensorboard": TensorBoardMonitor, "alerts": AlertsMonitor}


@hookimpl(trylast=True)
def vtopt_config_defaults():
    return {"monitors": [{"name": "structlog"}]}
