"""Built-in algorithms that learn from a labelled candidate pool: ``portfolio`` and ``chooser``.

Both start from a *pool* of VTracer parameter sets (the CLI presets, any
``extra`` sets such as the tuned preset, and seeded draws) and its *labels*:
every candidate's real score on every training image (:func:`vtopt.label`).

- ``portfolio``: VTracer's defaults plus the ``size`` pool candidates that,
  tried in a fixed order, maximise the mean best-of over the training images
  (picked greedily, so its first ``B - 1`` sets are the greedy portfolio of
  budget ``B``). With ``sets`` given it tries those, in order: ``vtopt
  evaluate``'s ``oracle`` row is a portfolio of the whole pool. ``portfolio.zip``
  beside this module is the one shipped (``configs/portfolio.yaml`` made it):
  ``evaluate``'s ``portfolio`` row, the ``oracle``'s pool, and the reference a
  curriculum measures mastery against (``vtopt_reference_params``).
- ``chooser``: a network that picks the next candidate for *this* image from
  its features and from what the earlier conversions returned
  (:mod:`.chooser`); trained on the labels by imitation with DAgger rounds.
"""

from __future__ import annotations

import inspect
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from vtopt import (
    DEFAULT_LABELS,
    DIAGNOSTICS,
    Baseline,
    Method,
    ParamError,
    VtoptError,
    check_number,
    check_param_names,
    check_params,
    hookimpl,
    image_kind,
    label,
    make_pool,
    params_key,
)

from . import chooser as net_lib

log = structlog.get_logger(__name__)
#: The fitted portfolio shipped with this plugin.
PORTFOLIO_MODEL = Path(__file__).parent / "portfolio.zip"


def _int(key: str, value: Any, low: int) -> int:
    return check_number(key, value, integer=True, low=low)


def _sets(key: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(p, dict) for p in value):
        raise ParamError(key, "must be a list of VTracer parameter mappings")
    try:
        return [check_params(p) for p in value]
    except ValueError as exc:
        raise ParamError(key, str(exc)) from None


def _features(image) -> np.ndarray:
    return np.concatenate([image.features, net_lib.palette_features(image.rgb)])


class _PoolLearner:
    """The pool and its labels, as both algorithms build them."""

    def _check_names(self, name: str, pool_params: dict) -> None:
        """Unknown params get the same "takes no parameter ...; it takes: ..." as every component."""
        own = [p for p in inspect.signature(type(self).__init__).parameters if p not in ("self", "pool_params")]
        check_param_names(f"algorithm {name!r}", pool_params,
                          [*own, *list(inspect.signature(_PoolLearner.__init__).parameters)[1:]])

    def __init__(self, pool: int = 64, seed: int = 0, extra: list | None = None, labels: str | None = DEFAULT_LABELS,
                 workers: int = 0):
        self.pool_size = _int("pool", pool, 1)
        self.seed = _int("seed", seed, 0)
        self.extra = _sets("extra", extra or [])
        self.workers = _int("workers", workers, 0)
        if labels is not None and not isinstance(labels, str):
            raise ParamError("labels", "must be a folder path (label cache) or null")
        self.labels_dir = labels
        self.pool: list[dict[str, Any]] = []
        self.fitted: dict[str, Any] = {}

    def _labels(self, ctx):
        self.pool = make_pool(self.pool_size, self.seed, self.extra)
        cache = Path(self.labels_dir).expanduser() if self.labels_dir else None
        return label(ctx.images, ctx.scorer, self.pool, cache, self.workers)


class Portfolio(_PoolLearner):
    """VTracer's defaults plus a fixed, ordered list of parameter sets.

    params: ``sets`` (a list of VTracer parameter mappings: no fitting), or
    ``size`` (sets to fit, default 7: enough for a budget of 8) with the pool
    params ``pool`` (candidates, default 64), ``seed``, ``extra`` (sets
    always in the pool), ``labels`` (label cache folder; null: none) and
    ``workers`` (labelling processes; 0: one per core).
    """

    def __init__(self, sets: list | None = None, size: int | None = None, **pool_params: Any):
        if sets is not None and (size is not None or pool_params):
            extra = sorted(pool_params) + (["size"] if size is not None else [])
            raise ParamError(extra[0], f"with sets given nothing is fitted: {', '.join(extra)} would be ignored")
        self._check_names("portfolio", pool_params)
        super().__init__(**pool_params)
        self.size = _int("size", 7 if size is None else size, 1)
        self.sets = _sets("sets", sets) if sets is not None else None
        self.step = 0

    def learn(self, ctx) -> None:
        if self.sets is not None:
            return
        labels = self._labels(ctx)
        order = net_lib.greedy_portfolio(labels.scores, labels.default_score, self.size)
        self.sets = [self.pool[c] for c in order]
        orders = np.tile(np.array(order), (len(ctx.images), 1))
        self.fitted = {"images": len(ctx.images), "pool": self.pool_size, "default": float(labels.default_score.mean()),
                       "best_of": {str(b): net_lib.best_of(labels.scores, labels.default_score, orders, b - 1)
                                   for b in range(2, self.size + 2)},
                       "oracle": float(np.maximum(labels.scores.max(1), labels.default_score).mean())}
        log.info("portfolio_fitted", **{k: v for k, v in self.fitted.items() if k != "best_of"},
                 best_of_4=self.fitted["best_of"].get("4"))

    def save(self, path: Path) -> None:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("algorithm.json", json.dumps({"sets": self.sets, "pool": self.pool, "fitted": self.fitted},
                                                     indent=1))

    def load(self, path: Path) -> None:
        with zipfile.ZipFile(path) as zf:
            data = json.loads(zf.read("algorithm.json"))
        self.sets, self.pool, self.fitted = data["sets"], data.get("pool", []), data.get("fitted", {})

    def start_image(self, image, default=None) -> None:
        self.step = 0

    def observe(self, params, score: float, outcome=None) -> None:
        pass  # a fixed order: what a set gave changes nothing

    def predict(self, observation, deterministic: bool = True):
        if not self.sets or self.step >= len(self.sets):
            return None
        self.step += 1
        return dict(self.sets[self.step - 1])


class Chooser(_PoolLearner):
    """A learned policy over the pool: which set to convert next, for this image, given what came back.

    params: the pool params of ``portfolio`` (``pool``, ``seed``, ``extra``,
    ``labels``, ``workers``), and for the network ``hidden`` (units per
    layer, 256), ``rounds`` (DAgger rounds, 3), ``epochs`` (per round, 20),
    ``steps`` (picks per image it is trained for, 7: budgets up to 8),
    ``random_orders`` (random pick orders per image in the first round, 4),
    ``learning_rate`` and ``holdout`` (share of the labelled images kept out
    of training to choose the round and the margin over the portfolio; a
    margin is kept only where the held-out gain holds up: ``chooser.holds_up``), and
    ``diagnostics`` (true: it also observes *where* each conversion, the
    defaults' included, differs from the image: ``vtopt.DIAGNOSTICS``).
    """

    def __init__(self, hidden: int = 256, rounds: int = 3, epochs: int = 20, steps: int = 7, random_orders: int = 4,
                 learning_rate: float = 1e-3, holdout: float = 0.15, diagnostics: bool = True, **pool_params: Any):
        self._check_names("chooser", pool_params)
        super().__init__(**pool_params)
        self.hidden = _int("hidden", hidden, 1)
        self.rounds = _int("rounds", rounds, 1)
        self.epochs = _int("epochs", epochs, 1)
        self.steps = _int("steps", steps, 1)
        self.random_orders = _int("random_orders", random_orders, 0)
        self.learning_rate = float(check_number("learning_rate", learning_rate, low=0, low_open=True))
        self.holdout = float(check_number("holdout", holdout, low=0, high=1, high_open=True))
        if not isinstance(diagnostics, bool):
            raise ParamError("diagnostics", f"must be true or false, not {diagnostics!r}")
        self.diagnostics = diagnostics
        self.policy: net_lib.Policy | None = None
        self._index: dict[tuple, int] = {}
        self._heads: dict[tuple, np.ndarray] = {}

    def learn(self, ctx) -> None:
        labels = self._labels(ctx)
        heads, sigs = self.observations(ctx.images, labels)
        self.policy, report = net_lib.fit(
            heads, sigs, labels.scores, labels.default_score, steps=self.steps, hidden=self.hidden, rounds=self.rounds,
            epochs=self.epochs, random_orders=self.random_orders, seed=self.seed, lr=self.learning_rate,
            holdout=self.holdout, threads=ctx.threads, families=np.array([image_kind(im) for im in ctx.images]))
        self.fitted = {"images": len(ctx.images), "pool": self.pool_size,
                       "default": float(labels.default_score.mean()), **report}
        self._index = {params_key(p): i for i, p in enumerate(self.pool)}

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        np.savez(buf, **self.policy.net.arrays())
        margins = [m if np.isfinite(m) else None for m in self.policy.margins]  # None: the portfolio's pick
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("algorithm.json", json.dumps({
                "pool": self.pool, "portfolio": self.policy.portfolio, "margins": margins,
                "diagnostics": self.diagnostics, "fitted": self.fitted}, indent=1))
            zf.writestr("net.npz", buf.getvalue())

    def load(self, path: Path) -> None:
        with zipfile.ZipFile(path) as zf:
            data = json.loads(zf.read("algorithm.json"))
            with np.load(io.BytesIO(zf.read("net.npz"))) as arrays:
                net = net_lib.Net.from_arrays(dict(arrays))
        margins = [m if m is not None else float("inf") for m in data["margins"]]
        self.policy = net_lib.Policy(net, data["portfolio"], margins)
        self.pool, self.fitted = data["pool"], data.get("fitted", {})
        self.diagnostics = bool(data.get("diagnostics", False))  # models made before they existed
        self._index = {params_key(p): i for i, p in enumerate(self.pool)}

    def observations(self, images, labels) -> tuple[np.ndarray, np.ndarray]:
        """What this chooser observes of labelled images: their heads (images, H), and every candidate's
        signals (images, candidates, S) as it would see them once tried."""
        heads = np.stack([self._head(im, labels.default_ssim[i], labels.default_bytes[i], labels.default_paths[i],
                                     labels.default_diagnostics[i]) for i, im in enumerate(images)])
        sigs = net_lib.signals(labels.scores, labels.ssim, labels.bytes, labels.default_score, labels.default_ssim,
                               labels.default_bytes)
        if self.diagnostics:
            diag = net_lib.diagnostic_signals(labels.diagnostics, labels.default_diagnostics)
            diag[labels.failed] = -1.0
            sigs = np.concatenate([sigs, diag], axis=-1)
        return heads, sigs

    def _head(self, image, ssim: float, nbytes: float, paths: float, diagnostics) -> np.ndarray:
        head = net_lib.image_head(_features(image), ssim, nbytes, paths)
        return np.concatenate([head, net_lib.diagnostic_head(diagnostics)]) if self.diagnostics else head

    def start_image(self, image, default=None) -> None:
        if default is None:
            raise ValueError("the chooser needs the defaults' result of each image (start_image(image, default=...))")
        if self.diagnostics and len(default.diagnostics) != len(DIAGNOSTICS):
            raise ValueError("this chooser observes where conversions went wrong: its results need their diagnostics")
        # an image's head is computed once (advising an environment, the same image comes back often)
        key = (image.source, image.name, default.score, default.svg_bytes)
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = self._head(image, default.ssim, default.svg_bytes, default.paths,
                                                 default.diagnostics)
        self.head = head
        self.default = default
        self.tried = np.zeros(len(self.pool), np.float32)
        self.sig = np.zeros((len(self.pool), 3 + len(DIAGNOSTICS) * self.diagnostics), np.float32)
        self.best = 0.0
        self.step = 0

    def observe(self, params, score: float, outcome=None) -> None:
        i = self._index.get(params_key(params))
        if i is None:
            return
        self.tried[i] = 1.0
        if not np.isfinite(score):
            self.sig[i] = -1.0
            return
        if outcome is None:
            raise ValueError("the chooser needs each conversion's whole result (observe(params, score, outcome=...))")
        d = self.default
        self.sig[i, :3] = net_lib.signals(score, outcome.ssim, outcome.svg_bytes, d.score, d.ssim, d.svg_bytes)
        if self.diagnostics:
            self.sig[i, 3:] = net_lib.diagnostic_signals(outcome.diagnostics, d.diagnostics)
        self.best = max(self.best, score - d.score)

    def predict(self, observation, deterministic: bool = True):
        if self.tried.all():
            return None
        state = net_lib.encode(self.head, self.tried, self.sig, self.best, self.step)
        self.step += 1
        return dict(self.pool[int(self.policy.picks(state[None], self.tried[None], self.step - 1)[0])])

    def advise(self) -> tuple[np.ndarray, int]:
        """For a policy that learns on top of this one (``env.pool.advisor``): every candidate's predicted
        gain now (units of 1/GAIN_SCALE, clipped to [-1, 1]; -1 once tried) and the candidate this
        chooser would pick (-1 when all are tried). Call :meth:`start_image` and :meth:`observe` as
        for :meth:`predict`; the step is the number of candidates tried (a refinement is not one)."""
        if self.tried.all():
            return np.full(len(self.pool), -1.0, np.float32), -1
        step = int(self.tried.sum())  # picks of the pool so far, as in training (refinements are not its steps)
        state = net_lib.encode(self.head, self.tried, self.sig, self.best, step)[None]
        q = self.policy.net.forward(state)
        gains = np.where(self.tried > 0, -1.0, np.clip(q[0], -1.0, 1.0)).astype(np.float32)
        return gains, int(self.policy.picks_from(q, self.tried[None], step)[0])


@hookimpl
def vtopt_register_algorithms():
    return {"portfolio": Portfolio, "chooser": Chooser}


def _fitted(pm, path: Path, for_oracle: bool = False) -> "Portfolio":
    from vtopt import load_model

    fitted, meta = load_model(pm, Path(path))
    if meta["algorithm"] != "portfolio" or not fitted.sets or (for_oracle and not fitted.pool):
        raise VtoptError(f"{path}: not a fitted portfolio model (its algorithm is {meta['algorithm']!r}"
                         + (", with no candidate pool for the oracle)" if meta["algorithm"] == "portfolio" else ")"))
    return fitted


@hookimpl
def vtopt_add_options(command, parser):
    if command == "evaluate":
        parser.add_argument("--portfolio-model", type=Path,
                            help="the fixed portfolio, also the oracle's pool (default: the one shipped with vtopt)")


@hookimpl
def vtopt_baselines(budget, options, pm):
    path = options.get("portfolio_model")
    if path is not None:
        fitted = _fitted(pm, path)  # asked for: it must load
    else:
        try:
            fitted = _fitted(pm, PORTFOLIO_MODEL)
        except VtoptError as exc:  # missing or damaged: the other baselines go on without these
            log.warning("baseline_unavailable", baseline="portfolio", error=str(exc))
            return []
    out = [Baseline("portfolio", Method("portfolio", budget, algorithm="portfolio", params={"sets": fitted.sets}))]
    from vtopt import shipped  # on use: loading model files is not needed to load this plugin

    try:  # the chooser shipped with vtopt (vtopt/models/chooser.zip, made by configs/chooser.yaml)
        chooser = shipped("chooser")
        out.append(Baseline("chooser", Method("chooser", budget, model=str(chooser)),
                            note=f"the chooser model {chooser}"))
    except VtoptError:
        pass
    if fitted.pool:
        out.append(Baseline("oracle", Method("oracle", len(fitted.pool) + 1, algorithm="portfolio",
                                             params={"sets": fitted.pool}), evaluate=False,
                            note="the per-image best of the portfolio's whole candidate pool, an upper reference, "
                                 "not a method"))
    return out


@hookimpl(trylast=True)
def vtopt_reference_params(conversions, pm):
    """The shipped portfolio's first ``conversions - 1`` sets: the best fixed settings at that budget."""
    try:
        return list(_fitted(pm, PORTFOLIO_MODEL).sets[: conversions - 1])
    except (VtoptError, ValueError, TypeError) as exc:
        log.warning("reference_unavailable", error=str(exc))
        return None
