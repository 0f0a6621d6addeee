"""What a training run does after every vector step, as a list of small parts.

As rl-baselines3-zoo composes stable-baselines3 callbacks, :class:`Driver`
calls its parts in order: each finished episode goes to every part, then
each part's ``step`` may stop the run (a signal, early stopping). Each part
keeps its own state, and a checkpoint's JSON holds all of it:

- :class:`Episodes`: the episode log, the monitors' episode and rollout events;
- :class:`CurriculumSync`: the curriculum's record, its kind weights given to
  the envs, its stage and the algorithm settings a stage overrides;
- :class:`StopOnSignal`: SIGINT/SIGTERM stop the run after the step;
- :class:`Evaluation`: the policy on the validation images every
  ``run.eval_every`` timesteps, the best model, early stop;
- :class:`vtopt.training.checkpoints.Checkpoints`: every ``run.checkpoint_every`` timesteps, the
  newest ``run.keep_checkpoints`` kept.

A part implements :class:`vtopt.training.parts.Part`.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from pathlib import Path
from typing import Any, Sequence

import structlog

from ..apply.model import save_model
from ..env.gymenv import VTracerEnv
from ..env.poolenv import PoolEnv, pool_meta
from ..env.scoring import Scorer, summarise
from ..env.search import search_image
from ..errors import VtoptError
from ..files import json_default
from ..plugin.components import RunInfo, StagedCurriculum, UpdatableAlgorithm
from ..plugin.manager import PluginManager
from ..vtracer.images import LogoImage
from .checkpoints import Checkpoints
from .parts import Part, Periodic
from .runfiles import BEST_MODEL, HISTORY

log = structlog.get_logger(__name__)
#: A rollout event needs this many seconds or timesteps since the previous one (off-policy learners
#: end a "rollout" every step).
ROLLOUT_MIN_SECONDS, ROLLOUT_MIN_STEPS = 2.0, 32


def evaluate(algorithm, images: Sequence[LogoImage], scorer: Scorer, conversions: int,
             baselines: dict[str, Any] | None = None, pool: Sequence[dict] | None = None,
             moves: bool = True, advisor=None) -> dict[str, Any]:
    """The deterministic policy on each image, against VTracer's defaults (and baselines); with a ``pool``
    in a :class:`vtopt.PoolEnv` of it, which converts every set for real (no replay)."""
    if not images:
        return {"images": 0, "rows": []}

    def run_all(algo):
        env = (PoolEnv(images, scorer, conversions, pool, moves=moves, advisor=advisor) if pool is not None
               else VTracerEnv(images, scorer, conversions))
        rows = [search_image(algo, env, i) for i in range(len(images))]
        for row in rows:
            row.pop("svg")
        return rows

    rows = run_all(algorithm)
    result = summarise(rows)
    kinds = sorted({r["kind"] for r in rows})
    result["per_kind"] = {k: {key: v for key, v in summarise([r for r in rows if r["kind"] == k]).items()}
                          for k in kinds}
    result["baselines"] = {label: summarise(run_all(algo)) for label, algo in (baselines or {}).items()}
    result["rows"] = rows
    return result


class Episodes(Part):
    """The episode count and recent episodes; each episode to history.jsonl and the monitors (its failed
    conversions to the log, each message once); the rollout summaries (``vtopt_rollout_finished``)."""

    def __init__(self):
        self.count = 0
        self.recent: deque[dict] = deque(maxlen=100)
        self.pending: list[dict] = []  # episodes since the previous rollout event
        self.last_rollout = (0.0, 0)  # (when, timesteps) of the previous rollout event, from begin on

    def begin(self, driver, timesteps):
        self.last_rollout = (time.perf_counter(), timesteps)

    def episode(self, driver, episode, timesteps):
        driver.say_failures(episode, timesteps)
        self.count += 1
        self.recent.append(episode)
        self.pending.append(episode)
        driver.record("episode", timesteps, kind=episode["kind"], improvement=episode["improvement"])
        driver.pm.episode_finished(driver.run, episode, timesteps)

    def rollout_end(self, driver, timesteps):
        now = time.perf_counter()
        t0, steps0 = self.last_rollout
        if now - t0 < ROLLOUT_MIN_SECONDS and timesteps - steps0 < ROLLOUT_MIN_STEPS:
            return  # off-policy learners end a "rollout" every step
        stats = summarise(self.pending) if self.pending else {"images": 0}
        stats = {k: v for k, v in stats.items() if v is not None}
        stats["steps_per_s"] = (timesteps - steps0) / max(now - t0, 1e-9)
        stats["failures"] = float(sum(e["failures"] for e in self.pending))
        driver.record("rollout", timesteps, **stats)
        driver.pm.rollout_finished(driver.run, timesteps, stats)
        self.pending = []
        self.last_rollout = (now, timesteps)

    def state(self, driver):
        return {"episodes": self.count, "recent": list(self.recent)}

    def restore(self, driver, state):
        self.count = state["episodes"]
        self.recent.extend(state["recent"])


class CurriculumSync(Part):
    """The curriculum hears every episode (with the reference's improvement, if its ``record`` takes
    it); its kind weights go to the envs when they change, and a new stage's algorithm overrides to
    the algorithm (:class:`vtopt.StagedCurriculum`, :class:`vtopt.UpdatableAlgorithm`)."""

    def __init__(self, curriculum, with_reference: bool):
        self.curriculum, self.with_reference = curriculum, with_reference
        self.weights: dict[str, float] = {}
        self.stage: str | None = None

    def call(self, driver: "Driver", method: str, *args, **kwargs):
        """A curriculum method; what it raises stops the run as a one-line PluginFault naming it."""
        with driver.pm.blame("curriculum", driver.run.config.curriculum.name, method):
            result = getattr(self.curriculum, method)(*args, **kwargs)
            if method == "state_dict":
                json.dumps(result, default=json_default)  # it must be JSON: say so here, not in a checkpoint
            return result

    def begin(self, driver, timesteps):
        self.sync(driver, timesteps, first=True)

    def episode(self, driver, episode, timesteps):
        reference = {"reference": episode.get("reference_improvement")} if self.with_reference else {}
        self.call(driver, "record", episode["kind"], episode["improvement"], timesteps, **reference)
        self.sync(driver, timesteps)

    def sync(self, driver: "Driver", timesteps: int, first: bool = False) -> None:
        weights = dict(self.call(driver, "weights"))
        if weights != self.weights:
            if not any(w > 0 for k, w in weights.items() if k in driver.run.kinds):
                raise VtoptError(f"curriculum gives no weight to any kind in the data: {weights}")
            driver.env.env_method("set_kind_weights", weights)
            self.weights = weights
        stage = self.call(driver, "stage")
        if first or stage != self.stage:
            staged = isinstance(self.curriculum, StagedCurriculum)
            overrides = self.call(driver, "algorithm_overrides") if staged else {}
            if overrides:
                if not isinstance(driver.algorithm, UpdatableAlgorithm):
                    raise VtoptError(f"the curriculum sets {sorted(overrides)} for stage {stage!r}, "
                                     f"but algorithm {driver.run.config.algorithm.name!r} cannot change settings mid-run")
                with driver.pm.blame("algorithm", driver.run.config.algorithm.name, "update"):
                    driver.algorithm.update(**overrides)
            # previous: None on a fresh run's start; on a resumed one, the stage its checkpoint was in
            driver.record("stage_changed", timesteps, previous=self.stage, stage=stage)
            driver.pm.stage_changed(driver.run, self.stage, stage, timesteps)
            self.stage = stage

    def state(self, driver):
        return {"curriculum": self.call(driver, "state_dict"), "stage": self.stage}

    def restore(self, driver, state):
        self.call(driver, "load_state_dict", state["curriculum"])
        self.stage = state["stage"]


class StopOnSignal(Part):
    """SIGINT/SIGTERM (seen by the run's handler, which sets ``Driver.signal``) stop the run after the step."""

    def step(self, driver, timesteps):
        if driver.signal is not None:
            driver.stop_reason = "signal"
            return False
        return True


class Evaluation(Periodic):
    """The policy on the validation images every ``run.eval_every`` timesteps (never the training env);
    the best so far saved as ``best_model.zip``; early stop after ``run.early_stop`` evaluations
    without a better score."""

    def __init__(self, validation: Sequence[LogoImage], every: int, patience: int):
        super().__init__(every)
        self.validation, self.patience = validation, patience
        self.evaluations: list[dict] = []  # brief: timesteps, mean_score, mean_ssim, bytes_ratio, per_kind
        self.best_score, self.stale = -math.inf, 0

    def due(self, driver, timesteps):
        self.evaluate(driver, timesteps)
        if self.patience and self.stale >= self.patience:
            log.info("early_stop", timesteps=timesteps, evaluations_without_improvement=self.stale)
            driver.stop_reason = "early_stop"
            return False
        return True

    def evaluate(self, driver: "Driver", timesteps: int, baselines: dict | None = None) -> dict[str, Any]:
        """The policy (and ``baselines``, {label: algorithm}) on the validation images; keeps the best model."""
        evaluation = evaluate(driver.algorithm, self.validation, driver.scorer, driver.run.config.env.conversions_per_episode,
                              baselines, driver.pool, driver.moves,
                              driver.advised.advisor if driver.advised else None)
        for row in evaluation["rows"]:
            driver.say_failures(row, timesteps)
        brief = {k: evaluation[k] for k in ("mean_score", "mean_ssim", "bytes_ratio", "mean_improvement")}
        brief["timesteps"] = timesteps
        brief["per_kind"] = {k: v["mean_score"] for k, v in evaluation["per_kind"].items()}
        repeat = bool(self.evaluations) and self.evaluations[-1]["timesteps"] == timesteps
        if not repeat:
            self.evaluations.append(brief)
        if evaluation["mean_score"] > self.best_score:
            self.best_score, self.stale = evaluation["mean_score"], 0
            driver.save(driver.run.out_dir / BEST_MODEL)
        elif not repeat:
            self.stale += 1
        if not repeat:
            driver.record("evaluated", timesteps, **{k: v for k, v in brief.items() if k != "timesteps"})
        driver.pm.evaluated(driver.run, evaluation, timesteps)
        return evaluation

    def state(self, driver):
        return {"evaluations": self.evaluations, "best_score": self.best_score, "stale": self.stale}

    def restore(self, driver, state):
        self.evaluations, self.best_score, self.stale = state["evaluations"], state["best_score"], state["stale"]


class Driver:
    """Receives every vector step (``TrainContext.on_step``) and hands it to its parts, in order."""

    def __init__(self, run: RunInfo, pm: PluginManager, env, curriculum, algorithm, scorer: Scorer,
                 validation: Sequence[LogoImage], record_reference: bool = False, pool: Sequence[dict] | None = None,
                 moves: bool = True, advised=None):
        cfg = run.config.run
        self.run, self.pm, self.env, self.algorithm, self.scorer = run, pm, env, algorithm, scorer
        self.pool = list(pool) if pool is not None else None  # env.actions: pool: the candidates ...
        self.moves = moves  # ... and whether refinement moves are actions too
        self.advised = advised  # ... and the advisor whose advice the policy observes (apply.model.Advised)
        self.episodes = Episodes()
        self.curriculum = CurriculumSync(curriculum, record_reference)
        self.evaluation = Evaluation(validation, cfg.eval_every, cfg.early_stop)
        self.checkpoints = Checkpoints(cfg.checkpoint_every, cfg.keep_checkpoints)
        self.parts: list[Part] = [self.episodes, self.curriculum, StopOnSignal(), self.evaluation, self.checkpoints]
        self.timesteps = 0
        self.seconds_before = 0.0  # training time of earlier segments (resumed runs)
        self.started = math.nan  # when this segment's training began (begin)
        self.signal: int | None = None
        self.stop_reason: str | None = None
        self.workers_replaced = 0
        self.history = None  # the open HISTORY file while the run goes
        self.failures_said: set[str] = set()

    def worker_replaced(self, slot: int, reason: str) -> None:
        self.workers_replaced += 1
        log.warning("env_worker_replaced", slot=slot, reason=reason, timesteps=self.timesteps)
        self.run.alert("env_worker_replaced", f"environment worker {slot} died ({reason}); a new one took its "
                       "place and its episode in flight was dropped", self.timesteps)

    def say_failures(self, row: dict[str, Any], timesteps: int) -> None:
        """Log an episode's (or an evaluated image's) failed conversions, each message once per run: the
        run's scorer does not log them (``Scorer.log_failures``), since an env elsewhere cannot."""
        for error in row.get("errors") or ():
            if error not in self.failures_said:
                self.failures_said.add(error)
                log.warning("conversion_failed", image=row["image"], error=error, timesteps=timesteps)

    # -- state -------------------------------------------------------------------------
    def train_seconds(self) -> float:
        """Training time so far, earlier segments of a resumed run included."""
        return self.seconds_before + (time.perf_counter() - self.started)

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"timesteps": self.timesteps}
        for part in self.parts:
            own = part.state(self)
            taken = set(own) & (set(state) | {"train_seconds"})
            if taken:
                raise ValueError(f"{type(part).__name__} keeps {sorted(taken)} in a checkpoint, which another part has")
            state.update(own)
        state["train_seconds"] = self.train_seconds()
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Every part's state from a checkpoint's JSON (:func:`vtopt.training.checkpoints.latest_checkpoint`)."""
        self.timesteps = state["timesteps"]
        self.seconds_before = state["train_seconds"]
        for part in self.parts:
            part.restore(self, state)

    def begin(self) -> None:
        path = self.run.out_dir / HISTORY
        kept = []
        if self.run.resumed and path.is_file():  # what came after the checkpoint is done again: drop it
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line)["timesteps"] <= self.timesteps:
                        kept.append(line + "\n")
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a killed run
        self.history = open(path, "w", encoding="utf-8")
        self.history.writelines(kept)
        self.started = time.perf_counter()
        for part in self.parts:
            part.begin(self, self.timesteps)

    # -- steps ---------------------------------------------------------------------------
    def on_step(self, infos, dones, timesteps: int) -> bool:
        """After every vector step: each finished episode to every part, then each part's step (a
        signal, evaluation with early stop, checkpoints). False: stop."""
        self.timesteps = timesteps
        for info in infos:
            if "vtopt_episode" in info:
                for part in self.parts:
                    part.episode(self, info["vtopt_episode"], timesteps)
        for part in self.parts:
            if not part.step(self, timesteps):
                return False
        return timesteps < self.run.total_timesteps  # learners collect whole rollouts: stop at the total

    def on_rollout_end(self, timesteps: int) -> None:
        for part in self.parts:
            part.rollout_end(self, timesteps)

    def record(self, event: str, timesteps: int, **fields: Any) -> None:
        """One line of the run's history (see :data:`vtopt.training.runfiles.HISTORY`)."""
        if self.history is not None:
            self.history.write(json.dumps({"event": event, "timesteps": timesteps, **fields},
                                          default=json_default) + "\n")
            self.history.flush()

    def end(self) -> None:
        if self.history is not None:
            self.history.close()
            self.history = None

    # -- files ---------------------------------------------------------------------------
    def save(self, path: Path) -> Path:
        cfg = self.run.config
        return save_model(self.algorithm, path, cfg.algorithm.name, cfg.algorithm.params,
                          cfg.env.conversions_per_episode, cfg.reward.weights,
                          {"timesteps": self.timesteps, "max_ssim_loss": cfg.reward.max_ssim_loss,
                           "reward_params": cfg.reward.params, "reward_quality": cfg.reward.quality,
                           "postprocess": list(cfg.postprocess), **pool_meta(self.pool, self.moves, self.advised)})

    def checkpoint(self, timesteps: int, prune: bool = True) -> Path:
        return self.checkpoints.write(self, timesteps, prune)

    def evaluate(self, timesteps: int, baselines: dict | None = None) -> dict[str, Any]:
        return self.evaluation.evaluate(self, timesteps, baselines)
