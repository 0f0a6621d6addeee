"""Candidate pools and their labels: every candidate's real score on every training image.

Labelling is the expensive part of fitting a portfolio or a chooser (one
VTracer conversion, rendering and scoring per image and candidate), so the
labels are computed in worker processes, one per core, and kept in a cache
folder keyed by the pool and the reward: a second run on the same images
(the portfolio's after the chooser's, or a re-fit with other settings)
converts nothing again.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import structlog

from vtopt.params import DEFAULT_PARAMS, SPACE, action_to_params, check_params

log = structlog.get_logger(__name__)

#: VTracer CLI presets (cmdapp config.rs) and the polygon variant; the pool always starts with them.
PRESET_SETS: tuple[dict[str, Any], ...] = (
    {"mode": "polygon"},
    {"color_precision": 8},
    {"filter_speckle": 10, "color_precision": 8, "layer_difference": 48, "corner_threshold": 180},
)


def _focused(rng: np.random.Generator) -> dict[str, Any]:
    """A draw near where good logo settings lie (polygon or spline, moderate quantisation)."""
    return check_params({
        "mode": "polygon" if rng.random() < 0.7 else "spline",
        "hierarchical": "stacked" if rng.random() < 0.6 else "cutout",
        "filter_speckle": int(rng.integers(1, 12)),
        "color_precision": int(rng.integers(3, 9)),
        "layer_difference": int(round(float(np.exp(rng.uniform(np.log(6), np.log(80)))))),
        "corner_threshold": int(rng.integers(20, 140)),
        "length_threshold": float(rng.choice(np.arange(3.5, 8.01, 0.25))),
        "splice_threshold": int(rng.integers(15, 100)),
        "path_precision": int(rng.integers(0, 4)),
    })


def make_pool(size: int, seed: int, extra: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """``size`` distinct parameter sets: the presets, ``extra`` ones, then seeded draws
    (a quarter over the whole box, the rest focused); never the defaults, which are always tried."""
    rng = np.random.default_rng(seed)
    pool: list[dict[str, Any]] = []
    seen = {json.dumps(DEFAULT_PARAMS, sort_keys=True)}

    def add(params: dict[str, Any]) -> None:
        key = json.dumps(params, sort_keys=True)
        if key not in seen and len(pool) < size:
            seen.add(key)
            pool.append(params)

    for p in (*PRESET_SETS, *extra):
        add(check_params(dict(p)))
    draws = 0
    while len(pool) < size:
        draws += 1
        if draws > 100 * size:
            raise ValueError(f"could not draw {size} distinct parameter sets")
        if rng.random() < 0.25:
            add(action_to_params(rng.uniform(-1.0, 1.0, len(SPACE))))
        else:
            add(_focused(rng))
    return pool


# -- labelling ----------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init(scorer, pool) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER.update(scorer=scorer, pool=pool)


def _label_one(image) -> np.ndarray:
    """One row: the defaults' (score, ssim, bytes, paths), then (score, ssim, bytes) per candidate."""
    scorer, pool = _WORKER["scorer"], _WORKER["pool"]
    d = scorer.defaults(image)
    row = [d.score, d.ssim, d.svg_bytes, d.paths]
    for params in pool:
        o = scorer.evaluate(image, params)
        row += [o.score if o.ok else -1.0, o.ssim if o.ok else 0.0, o.svg_bytes if o.ok else 0]
    scorer.forget(image)
    return np.asarray(row, dtype=np.float64)


class Labels:
    """Scores of a pool on a list of images (rows in the images' order)."""

    def __init__(self, table: np.ndarray, pool_size: int):
        self.table = table
        self.k = pool_size

    @property
    def default_score(self) -> np.ndarray:
        return self.table[:, 0]

    @property
    def default_ssim(self) -> np.ndarray:
        return self.table[:, 1]

    @property
    def default_bytes(self) -> np.ndarray:
        return self.table[:, 2]

    @property
    def default_paths(self) -> np.ndarray:
        return self.table[:, 3]

    @property
    def scores(self) -> np.ndarray:
        """(images, candidates) scores; a failed conversion scores -1."""
        return self.table[:, 4::3]

    @property
    def ssim(self) -> np.ndarray:
        return self.table[:, 5::3]

    @property
    def bytes(self) -> np.ndarray:
        return self.table[:, 6::3]


def _cache_file(cache: Path, scorer, pool) -> Path:
    key = json.dumps({"pool": pool, "weights": scorer.weights, "floor": scorer.max_ssim_loss,
                      "metrics": sorted(scorer.metrics)}, sort_keys=True)
    return cache / f"labels-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"


def label(images: Sequence, scorer, pool: Sequence[dict[str, Any]], cache: Path | None = None,
          workers: int = 0) -> Labels:
    """Every candidate of ``pool`` on every image, in worker processes; cached by image content."""
    hashes = [hashlib.sha1(im.png).hexdigest() for im in images]
    known: dict[str, np.ndarray] = {}
    path = _cache_file(cache, scorer, pool) if cache is not None else None
    if path is not None and path.is_file():
        with np.load(path) as saved:
            known = dict(zip(saved["hashes"].tolist(), saved["table"]))
    todo = [i for i, h in enumerate(hashes) if h not in known]
    log.info("labelling", images=len(images), cached=len(images) - len(todo), candidates=len(pool),
             conversions=len(todo) * len(pool))
    if todo:
        workers = workers or os.cpu_count() or 1
        start = time.perf_counter()
        ctx = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(scorer, list(pool))) as ex:
            for n, (i, row) in enumerate(zip(todo, ex.map(_label_one, [images[i] for i in todo], chunksize=4))):
                known[hashes[i]] = row
                if (n + 1) % 100 == 0 or n + 1 == len(todo):
                    rate = (n + 1) * len(pool) / (time.perf_counter() - start)
                    log.info("labelled", images=n + 1, of=len(todo), conversions_per_s=round(rate, 1))
                    if path is not None and ((n + 1) % 500 == 0 or n + 1 == len(todo)):
                        _save(path, known)
    return Labels(np.stack([known[h] for h in hashes]), len(pool))


def _save(path: Path, known: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, hashes=np.array(list(known)), table=np.stack(list(known.values())))
    os.replace(tmp, path)
