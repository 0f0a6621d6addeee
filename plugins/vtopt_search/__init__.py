"""Built-in search algorithms: ``preset``, ``random`` and ``tpe``, and the baselines made of them.

They are the baselines a learned policy is compared with (``vtopt
evaluate``'s rows poster, photo, polygon, tuned, random and tpe; polygon
and random also in every evaluation of a training run), and ordinary
algorithms: ``vtopt run`` with ``algorithm.name: preset`` searches for the
single parameter set that scores best on average over the training images
(the *tuned fixed preset*) and saves it as a model; ``preset.zip`` beside
this module is the one shipped (``configs/preset.yaml`` made it).
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from vtopt import SPACE, Baseline, Method, ParamError, VtoptError, check_number, check_params, hookimpl

log = structlog.get_logger(__name__)

#: VTracer CLI presets (cmdapp config.rs), with the CLI's path_precision=2.
PRESETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "poster": {"color_precision": 8},
    "photo": {"filter_speckle": 10, "color_precision": 8, "layer_difference": 48, "corner_threshold": 180},
    "polygon": {"mode": "polygon"},
}


#: The tuned fixed preset shipped with this plugin (``tuned``, and where ``tpe`` starts).
TUNED_MODEL = Path(__file__).parent / "preset.zip"
TPE_BUDGET = 40


def _checked(key: str, params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise ParamError(key, "must be a mapping of VTracer parameters")
    try:
        return check_params(params)
    except ValueError as exc:
        raise ParamError(key, str(exc)) from None


def _suggest(trial) -> dict[str, Any]:
    params = {}
    for dim in SPACE:
        if dim.choices:
            params[dim.name] = trial.suggest_categorical(dim.name, list(dim.choices))
        elif dim.integer:
            params[dim.name] = trial.suggest_int(dim.name, int(dim.low), int(dim.high))
        else:
            params[dim.name] = trial.suggest_float(dim.name, dim.low, dim.high, step=dim.step)
    return check_params(params)


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ParamError(None, "needs Optuna: pip install 'vtopt[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _save_json(path: Path, data: dict) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("algorithm.json", json.dumps(data, indent=1))


def _load_json(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("algorithm.json"))


class _Search:
    """What the non-learning algorithms share: no training, a JSON state; each a
    :class:`vtopt.SearchAlgorithm` (what a conversion gave is ignored unless it needs it)."""

    def learn(self, ctx) -> None:
        pass

    def observe(self, params, score: float, outcome=None) -> None:
        pass

    def state(self) -> dict:
        return {}

    def save(self, path: Path) -> None:
        _save_json(path, self.state())

    def load(self, path: Path) -> None:
        self.__dict__.update(_load_json(path))


class Preset(_Search):
    """One fixed parameter set, converted once per image.

    params: ``preset`` (defaults, poster, photo, polygon) or ``params`` (a
    VTracer parameter mapping). With neither, ``vtopt run`` searches
    (Optuna TPE, ``trials`` parameter sets, each scored on ``images``
    training images) for the set with the best mean score.
    """

    def __init__(self, preset: str | None = None, params: dict | None = None, trials: int = 150,
                 images: int = 48, seed: int = 0):
        if preset is not None and preset not in PRESETS:
            raise ParamError("preset", f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        if preset is not None and params is not None:
            raise ParamError("params", "give either preset or params, not both")
        for key, value in (("trials", trials), ("images", images)):
            check_number(key, value, integer=True, low=1)
        self.params = _checked("params", params) if params is not None else (
            check_params(PRESETS[preset]) if preset is not None else None)
        self.trials, self.n_images, self.seed = trials, images, seed
        self.searched: dict | None = None
        self._done = False

    def learn(self, ctx) -> None:
        if self.params is not None:
            return
        optuna = _optuna()
        rng = np.random.default_rng(self.seed)
        pool = list(ctx.images)
        images = [pool[i] for i in rng.permutation(len(pool))[: self.n_images]]
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=self.seed))
        for start in ("defaults", "polygon"):
            study.enqueue_trial({d.name: check_params(PRESETS[start])[d.name] for d in SPACE})
        for i in range(self.trials):
            trial = study.ask()
            params = _suggest(trial)
            scores = [ctx.scorer.evaluate(im, params).score for im in images]
            value = float(np.mean(scores)) if all(map(math.isfinite, scores)) else -1.0
            study.tell(trial, value)
            if (i + 1) % 10 == 0 or i + 1 == self.trials:
                log.info("preset_search", trial=i + 1, of=self.trials, best=round(study.best_value, 5))
        self.params = _suggest(optuna.trial.FixedTrial(study.best_params))
        self.searched = {"images": len(images), "trials": self.trials, "mean_score": study.best_value}

    def state(self) -> dict:
        return {"params": self.params, "searched": self.searched}

    def start_image(self, image, default=None) -> None:
        self._done = False

    def predict(self, observation, deterministic: bool = True):
        if self._done or self.params is None:
            return None
        self._done = True
        return dict(self.params)


class RandomSearch(_Search):
    """Uniform random actions over the whole box, seeded per image (reproducible)."""

    def __init__(self, seed: int = 0):
        check_number("seed", seed, integer=True)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def state(self) -> dict:
        return {"seed": self.seed}

    def start_image(self, image, default=None) -> None:
        self.rng = np.random.default_rng([self.seed, zlib.crc32(image.name.encode())])

    def predict(self, observation, deterministic: bool = True):
        return self.rng.uniform(-1.0, 1.0, len(SPACE))


class TPE(_Search):
    """Per-image Optuna TPE over the whole box, its first trial ``start``.

    params: ``start`` (a preset name or a VTracer parameter mapping;
    default polygon), ``seed``, ``startup`` (random trials before TPE).
    """

    def __init__(self, start: str | dict = "polygon", seed: int = 0, startup: int = 8):
        _optuna()
        if isinstance(start, str):
            if start not in PRESETS:
                raise ParamError("start", f"unknown preset {start!r}; known: {', '.join(PRESETS)}")
            start = PRESETS[start]
        self.start = _checked("start", start)
        self.seed, self.startup = seed, startup
        self.study = self.trial = None

    def state(self) -> dict:
        return {"start": self.start, "seed": self.seed, "startup": self.startup}

    def start_image(self, image, default=None) -> None:
        optuna = _optuna()
        sampler = optuna.samplers.TPESampler(seed=self.seed + zlib.crc32(image.name.encode()),
                                             n_startup_trials=self.startup)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.study.enqueue_trial({d.name: self.start[d.name] for d in SPACE})

    def predict(self, observation, deterministic: bool = True):
        self.trial = self.study.ask()
        return _suggest(self.trial)

    def observe(self, params, score: float, outcome=None) -> None:
        if math.isfinite(score):
            self.study.tell(self.trial, score)
        else:
            self.study.tell(self.trial, state=_optuna().trial.TrialState.FAIL)


@hookimpl
def vtopt_register_algorithms():
    return {"preset": Preset, "random": RandomSearch, "tpe": TPE}


@hookimpl
def vtopt_add_options(command, parser):
    if command == "evaluate":
        parser.add_argument("--preset-model", type=Path, help="the tuned fixed preset of the tuned row, and where "
                                                              "tpe starts (default: the one shipped with vtopt)")
        parser.add_argument("--tpe-budget", type=int, default=TPE_BUDGET,
                            help=f"conversions per image for tpe (default {TPE_BUDGET})")


def _tuned_params(pm, path: Path | None) -> dict[str, Any] | None:
    """The tuned preset's parameters: from ``path`` (given: it must load), else from the shipped model
    (None, with a warning, if it is missing or damaged: the other baselines go on without it)."""
    from vtopt import load_model

    if path is None:
        try:
            return _tuned_params(pm, TUNED_MODEL)
        except VtoptError as exc:
            log.warning("baseline_unavailable", baseline="tuned", error=str(exc))
            return None
    algorithm, meta = load_model(pm, Path(path))
    if meta["algorithm"] != "preset" or algorithm.params is None:
        raise VtoptError(f"{path}: not a tuned preset model (its algorithm is {meta['algorithm']!r})")
    return algorithm.params


@hookimpl
def vtopt_baselines(budget, options, pm):
    tpe_budget = options.get("tpe_budget", TPE_BUDGET)
    if not isinstance(tpe_budget, int) or not 1 <= tpe_budget <= 1000:
        raise VtoptError(f"--tpe-budget {tpe_budget}: must be in [1, 1000]")
    out = [Baseline(name, Method(name, 2, algorithm="preset", params={"preset": name}), training=name == "polygon")
           for name in ("poster", "photo", "polygon")]
    tuned = _tuned_params(pm, options.get("preset_model"))
    if tuned is not None:
        out.append(Baseline("tuned", Method("tuned", 2, algorithm="preset", params={"params": tuned})))
    out.append(Baseline("random", Method("random", budget, algorithm="random"), training=True))
    out.append(Baseline("tpe", Method(f"tpe{tpe_budget}", tpe_budget, algorithm="tpe",
                                      params={"start": tuned or "polygon"})))
    return out
