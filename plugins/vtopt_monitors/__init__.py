"""Built-in monitors: ``structlog`` (JSON lines + console lines)."""

from __future__ import annotations

from pathlib import Path

import structlog

from vtopt import hookimpl
from vtopt.errors import ParamError

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
        self._fh = open(Path(run.out_dir) / self.file, "a", encoding="utf-8")
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
    def vtopt_run_finished(self, summary):
        self._emit("run_finished", True, total_timesteps=summary["total_timesteps"],
                   wall_seconds=summary["wall_seconds"], env_steps_per_second=summary["env_steps_per_second"])
        if self._fh is not None:
            self._fh.close()
            self._fh, self._log = None, None


@hookimpl
def vtopt_register_monitors():
    return {"structlog": StructlogMonitor}
