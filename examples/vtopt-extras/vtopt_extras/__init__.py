"""Example vtopt plugins: one component of each kind, and an ``evaluate`` baseline with its option.

Everything it needs comes from ``vtopt`` itself (``hookimpl``, ``ParamError``,
``check_number``, ``action_size``, ``Baseline``, ``Method``); the components
implement the interfaces ``vtopt.Algorithm``, ``vtopt.Metric``,
``vtopt.Curriculum`` and ``vtopt.Monitor`` (typing protocols: no base class).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from vtopt import Baseline, Method, ParamError, action_size, check_number, hookimpl


class CrossEntropySearch:
    """Cross-entropy search over the action box, with a starting distribution learned in training.

    ``learn`` steps the training environments with actions drawn from
    N(mean, std); each episode's best action that beat VTracer's defaults is
    remembered with its gain (the last ``memory`` of them), and mean and std
    are refitted to the ``elite_fraction`` with the largest gains (std at
    least half ``init_std``). On a new image the search starts
    from that distribution; after every conversion mean and std are refitted
    to the best ``elite_fraction`` of the actions tried on that image.
    """

    def __init__(self, elite_fraction: float = 0.5, init_std: float = 0.5, seed: int = 0, memory: int = 64):
        if not isinstance(elite_fraction, (int, float)) or not 0 < elite_fraction <= 1:
            raise ParamError("elite_fraction", "must be in (0, 1]")
        if not isinstance(init_std, (int, float)) or init_std <= 0:
            raise ParamError("init_std", "must be positive")
        check_number("memory", memory, integer=True, low=2)
        self.elite_fraction, self.init_std, self.seed, self.memory = float(elite_fraction), float(init_std), seed, memory
        self.start_mean = [0.0] * action_size()
        self.start_std = [self.init_std] * action_size()
        self.timesteps = 0

    def learn(self, ctx) -> None:
        if ctx.resume_from is not None:
            self.load(ctx.resume_from)
        self.timesteps = ctx.start_timesteps  # done before this segment (0 unless resumed)
        env, rng = ctx.env, np.random.default_rng([self.seed, self.timesteps])
        mean, std = np.array(self.start_mean), np.array(self.start_std)
        best = [(0.0, None)] * env.num_envs  # per env: (best step reward, its action) in the episode
        elites: list[tuple[float, np.ndarray]] = []  # recent episodes' best (gain, action)
        env.reset()
        while self.timesteps < ctx.total_timesteps:
            actions = np.clip(rng.normal(mean, std, (env.num_envs, action_size())), -1.0, 1.0).astype(np.float32)
            _, rewards, dones, infos = env.step(actions)
            self.timesteps += env.num_envs
            for i in range(env.num_envs):
                if rewards[i] > 0:  # a new best of the episode: its gain over the defaults is the rewards' sum
                    best[i] = (best[i][0] + float(rewards[i]), actions[i])
                if dones[i]:
                    if best[i][1] is not None:
                        elites = (elites + [best[i]])[-self.memory:]
                        top = sorted(elites, key=lambda e: e[0], reverse=True)
                        top = np.array([a for _, a in top[: max(1, int(len(top) * self.elite_fraction))]])
                        mean = top.mean(axis=0)
                        std = np.maximum(top.std(axis=0), self.init_std / 2) if len(top) > 1 else std
                    best[i] = (0.0, None)
            self.start_mean, self.start_std = mean.tolist(), std.tolist()
            if not ctx.on_step(infos, dones, self.timesteps):
                break

    def save(self, path: Path) -> None:
        keep = ("elite_fraction", "init_std", "start_mean", "start_std", "timesteps")
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("cem.json", json.dumps({k: getattr(self, k) for k in keep}))

    def load(self, path: Path) -> None:
        with zipfile.ZipFile(path) as zf:
            self.__dict__.update(json.loads(zf.read("cem.json")))

    def start_image(self, image, default=None) -> None:
        self.rng = np.random.default_rng([self.seed, len(image.name), sum(map(ord, image.name))])
        self.mean = np.array(self.start_mean)
        self.std = np.array(self.start_std)
        self.tried: list[tuple[float, np.ndarray]] = []

    def predict(self, observation, deterministic: bool = True):
        self.last = np.clip(self.rng.normal(self.mean, self.std), -1.0, 1.0)
        return self.last

    def observe(self, params, score: float, outcome=None) -> None:
        self.tried.append((score, self.last))
        ranked = sorted(self.tried, key=lambda t: t[0], reverse=True)
        elite = np.array([a for _, a in ranked[: max(1, int(len(ranked) * self.elite_fraction))]])
        self.mean = elite.mean(axis=0)
        self.std = np.maximum(elite.std(axis=0), 0.05) if len(elite) > 1 else self.std * 0.7


class EdgeAlignment:
    """F1 score of the edge maps (gradient magnitude above ``threshold``) of original and rendering."""

    def __init__(self, threshold: float = 24.0):
        if not isinstance(threshold, (int, float)) or threshold <= 0:
            raise ParamError("threshold", "must be positive")
        self.threshold = float(threshold)

    def _edges(self, gray: np.ndarray) -> np.ndarray:
        gx = np.zeros_like(gray)
        gy = np.zeros_like(gray)
        gx[:, 1:] = np.abs(np.diff(gray, axis=1))
        gy[1:, :] = np.abs(np.diff(gray, axis=0))
        return np.maximum(gx, gy) > self.threshold

    def prepare(self, image):
        return self._edges(image.gray)

    def compute(self, sample, state) -> float:
        got = self._edges(sample.gray)
        hits = float(np.logical_and(got, state).sum())
        total = float(got.sum() + state.sum())
        return 1.0 if total == 0 else 2.0 * hits / total


class RoundRobin:
    """Every kind in turn, ``episodes_per_kind`` episodes each."""

    def __init__(self, episodes_per_kind: int = 10):
        check_number("episodes_per_kind", episodes_per_kind, integer=True, low=1)
        self.per_kind = episodes_per_kind

    def start(self, kinds):
        self.kinds, self.index, self.count = list(kinds), 0, 0

    def weights(self):
        return {self.kinds[self.index]: 1.0}

    def stage(self):
        return self.kinds[self.index]

    def record(self, kind, score, timesteps):
        self.count += 1
        if self.count >= self.per_kind:
            self.index, self.count = (self.index + 1) % len(self.kinds), 0

    def state_dict(self):
        return {"index": self.index, "count": self.count}

    def load_state_dict(self, state):
        self.index, self.count = state["index"], state["count"]


class JsonlMetrics:
    """One JSON line per finished episode (kind, improvement, ssim, bytes ...) in the run directory."""

    def __init__(self, file: str = "metrics.jsonl"):
        if not isinstance(file, str) or "/" in file or not file:
            raise ParamError("file", "must be a plain file name")
        self.file = file
        self._fh = None

    @hookimpl
    def vtopt_run_started(self, run):
        self._fh = open(Path(run.out_dir) / self.file, "a" if run.resumed else "w", encoding="utf-8")  # fresh: anew

    @hookimpl
    def vtopt_episode_finished(self, episode, timesteps):
        keep = ("image", "kind", "improvement", "score", "ssim", "bytes", "default_bytes", "failures")
        self._fh.write(json.dumps({"timesteps": timesteps, **{k: episode[k] for k in keep}}) + "\n")

    @hookimpl
    def vtopt_run_finished(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    vtopt_run_aborted = hookimpl(vtopt_run_finished)


@hookimpl
def vtopt_register_algorithms():
    return {"cem": CrossEntropySearch}


@hookimpl
def vtopt_register_metrics():
    return {"edges": EdgeAlignment}


@hookimpl
def vtopt_register_curricula():
    return {"round_robin": RoundRobin}


@hookimpl
def vtopt_register_monitors():
    return {"jsonl_metrics": JsonlMetrics}


@hookimpl
def vtopt_add_options(command, parser):
    if command == "evaluate":
        parser.add_argument("--cem-model", help="a trained cem model file: its row joins evaluate's default rows")


@hookimpl
def vtopt_baselines(budget, options):
    """``cem``: cross-entropy search per image at the policy's budget, from a trained model
    (``--cem-model``, then one of ``evaluate``'s default rows) or from its untrained start (a row
    only when ``--methods`` names it)."""
    model = options.get("cem_model")  # options are empty in a training run and in `vtopt plugins`
    if model:
        return [Baseline("cem", Method("cem", budget, model=str(model)), note=f"cross-entropy search, trained: {model}")]
    return [Baseline("cem", Method("cem", budget, algorithm="cem"), evaluate=False,
                     note="cross-entropy search from its untrained start")]
