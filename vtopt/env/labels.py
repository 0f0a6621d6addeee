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
import math
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import structlog

from ..config.schema import default_section
from ..errors import ConfigError
from ..plugin.manager import PluginManager
from ..vtracer.params import DEFAULT_PARAMS, SPACE, action_to_params, check_params
from ..vtracer.vectorize import renderer_name
from .diagnose import DIAGNOSE_VERSION, DIAGNOSTICS

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
    import cv2

    cv2.setNumThreads(1)  # one labelling process per core already
    _WORKER.update(scorer=scorer, pool=pool)


def _label_one(task) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The defaults' :data:`HEAD` row, the asked candidates' :data:`CELL` rows, and which of those to keep
    on disk (not a conversion abandoned at the time limit: it may finish another time)."""
    image, wanted = task
    scorer, pool = _WORKER["scorer"], _WORKER["pool"]
    d = scorer.defaults(image)
    cells, keep = [], []
    for j in wanted:
        o = scorer.evaluate(image, pool[j])
        good = o.ok and math.isfinite(o.score) and math.isfinite(o.ssim)
        if good and len(o.diagnostics) != len(DIAGNOSTICS):
            raise ValueError(f"a labelled result has {len(o.diagnostics)} diagnostics, not {len(DIAGNOSTICS)}")
        # a failure scores far below
        cells.append([o.score, o.ssim, o.svg_bytes, *o.diagnostics] if good else [FAILED] + [0.0] * (CELL - 1))
        keep.append(good or "did not finish within" not in (o.error or ""))
    scorer.forget(image)
    return (np.array([d.score, d.ssim, d.svg_bytes, d.paths, *d.diagnostics]),
            np.array(cells, dtype=np.float64).reshape(-1, CELL), np.array(keep, bool))


FAILED = -1.0  # the label of a failed conversion: far below any real score

#: Per image, the defaults' (score, ssim, bytes, paths, diagnostics...); per image and candidate
#: (score, ssim, bytes, diagnostics...): the widths of a label table's parts.
HEAD = 4 + len(DIAGNOSTICS)
CELL = 3 + len(DIAGNOSTICS)


class Labels:
    """Scores of a pool on a list of images (rows in the images' order): per image the defaults'
    :data:`HEAD` values, then :data:`CELL` values per candidate."""

    def __init__(self, table: np.ndarray):
        self.table = table
        if table.ndim != 2 or (table.shape[1] - HEAD) % CELL:
            raise ValueError(f"a label table of shape {table.shape} is not {HEAD} + {CELL} x candidates wide")

    @property
    def candidates(self) -> int:
        return (self.table.shape[1] - HEAD) // CELL

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
    def default_diagnostics(self) -> np.ndarray:
        """(images, :data:`DIAGNOSTICS`) of the defaults' conversions."""
        return self.table[:, 4:HEAD]

    @property
    def _cells(self) -> np.ndarray:
        return self.table[:, HEAD:].reshape(len(self.table), self.candidates, CELL)

    @property
    def scores(self) -> np.ndarray:
        """(images, candidates) scores; a failed conversion scores -1."""
        return self._cells[..., 0]

    @property
    def ssim(self) -> np.ndarray:
        return self._cells[..., 1]

    @property
    def bytes(self) -> np.ndarray:
        return self._cells[..., 2]

    @property
    def diagnostics(self) -> np.ndarray:
        """(images, candidates, :data:`DIAGNOSTICS`); zeros for a failed conversion."""
        return self._cells[..., 3:]

    @property
    def failed(self) -> np.ndarray:
        """(images, candidates): whether the conversion failed."""
        return self.scores == FAILED


#: Seconds between saves of the labels made so far, so that a crash loses at most these minutes of work.
SAVE_SECONDS = 120.0


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def cache_key(scorer) -> str:
    """What a label depends on besides the image and the parameters: the reward (its quality metric
    included), the floor, the time limit, VTracer's version and the renderer."""
    import importlib.metadata as md

    key = {"weights": scorer.weights, "floor": scorer.max_ssim_loss, "metrics": sorted(scorer.metrics),
           "timeout": scorer.timeout, "vtracer": md.version("vtracer"),
           "renderer": renderer_name(),
           # the first version leaves the keys of labels made with it alone
           "diagnostics": [*DIAGNOSTICS, *([DIAGNOSE_VERSION] if DIAGNOSE_VERSION > 1 else [])]}
    if getattr(scorer, "metric_params", None):
        key["metric_params"] = scorer.metric_params
    if getattr(scorer, "quality", None) not in (None, _default_quality()):  # the default leaves old keys alone
        key["quality"] = scorer.quality
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _default_quality() -> str | None:
    """The quality metric of the plugins' default reward (None when no plugin gives one)."""
    try:
        return default_section(PluginManager(), "reward").quality
    except ConfigError:
        return None


class _Cache:
    """Labels on disk, per (image content, candidate), for one reward: a bigger pool converts only what is new."""

    def __init__(self, folder: Path | None, scorer):
        self.entries: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        self.path = None
        if folder is None:
            return
        self.path = folder / f"labels-{cache_key(scorer)}.npz"
        self._merge()

    def _merge(self) -> None:
        """Add what the file holds and this cache does not (another run may have written it). A file
        that cannot be read, or whose arrays do not fit together, is moved aside as ``NAME.damaged``
        with a warning that names it; its labels are made again."""
        if not self.path.is_file():
            return
        try:
            with np.load(self.path) as saved:
                hashes, cands = saved["hashes"], saved["candidates"]
                defaults, table = saved["defaults"], saved["cells"]
            n = len(hashes)
            if (hashes.ndim != 1 or cands.ndim != 1 or hashes.dtype.kind != "U" or cands.dtype.kind != "U"
                    or defaults.shape != (n, HEAD) or table.shape != (n, len(cands), CELL)
                    or defaults.dtype.kind != "f" or table.dtype.kind != "f"):
                raise ValueError(f"arrays of shapes hashes {hashes.shape}, candidates {cands.shape}, defaults "
                                 f"{defaults.shape}, cells {table.shape} do not fit together")
        except Exception as exc:  # truncated, emptied, random bytes, a flipped byte, the wrong shape
            aside = self.path.with_name(self.path.name + ".damaged")
            os.replace(self.path, aside)
            log.warning("labels_cache_damaged", file=str(self.path), moved_to=str(aside),
                        problem=f"{type(exc).__name__}: {exc}"[:300], action="its labels are made again")
            return
        cands = cands.tolist()
        for h, d, cells in zip(hashes.tolist(), defaults, table):
            known = ~np.isnan(cells[:, 0])  # NaN marks "not labelled": labels themselves are finite
            entry = self.entries.setdefault(h, (d, {}))
            for j in np.nonzero(known)[0]:
                entry[1].setdefault(cands[j], cells[j])

    def missing(self, h: str, keys: Sequence[str]) -> list[int]:
        entry = self.entries.get(h)
        return [j for j, k in enumerate(keys) if entry is None or k not in entry[1]]

    def put(self, h: str, defaults: np.ndarray, keys: Sequence[str], cells: np.ndarray) -> None:
        entry = self.entries.setdefault(h, (defaults, {}))
        entry[1].update(zip(keys, cells))

    def save(self) -> None:
        """Merge with the file as it is now and replace it, under a lock (runs may share the folder)."""
        if self.path is None:
            return
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(f".{self.path.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._merge()
            self._write()

    def _write(self) -> None:
        cands = sorted({k for _, cells in self.entries.values() for k in cells})
        index = {k: j for j, k in enumerate(cands)}
        table = np.full((len(self.entries), len(cands), CELL), np.nan)
        for i, (_, cells) in enumerate(self.entries.values()):
            for k, v in cells.items():
                table[i, index[k]] = v
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp.npz")  # unique per process
        np.savez(tmp, hashes=np.array(list(self.entries)), candidates=np.array(cands),
                 defaults=np.stack([d for d, _ in self.entries.values()]), cells=table)
        os.replace(tmp, self.path)


#: Seconds between two progress lines of a labelling run (and one at its end).
PROGRESS_SECONDS = 10.0


def _duration(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``12s``."""
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def label(images: Sequence, scorer, pool: Sequence[dict[str, Any]], cache: Path | None = None,
          workers: int = 0) -> Labels:
    """Every candidate of ``pool`` on every image, in worker processes; cached by image content and candidate.

    Progress is logged every :data:`PROGRESS_SECONDS`: conversions done of those to make, images, the rate
    and the time left at that rate."""
    hashes = [hashlib.sha1(im.png).hexdigest() for im in images]
    keys = [_key(p) for p in pool]
    store = _Cache(cache, scorer)
    todo = [(i, m) for i, h in enumerate(hashes) if (m := store.missing(h, keys))]
    transient: dict[str, dict[str, np.ndarray]] = {}  # labels of this run only (timeouts)
    conversions = sum(len(m) for _, m in todo)
    log.info("labelling", images=len(images), candidates=len(pool), cached=len(images) * len(pool) - conversions,
             conversions=conversions)
    if todo:
        workers = workers or os.cpu_count() or 1
        start, done = time.perf_counter(), 0
        shown = saved = start
        from concurrent.futures import ProcessPoolExecutor  # not imported by a chooser that only applies

        ctx = multiprocessing.get_context("forkserver")
        tasks = [(images[i], m) for i, m in todo]
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(scorer, list(pool))) as ex:
            for n, ((i, wanted), (d, cells, keep)) in enumerate(zip(todo, ex.map(_label_one, tasks, chunksize=4))):
                store.put(hashes[i], d, [keys[j] for j, k in zip(wanted, keep) if k], cells[keep])
                for j, k, cell in zip(wanted, keep, cells):
                    if not k:
                        transient.setdefault(hashes[i], {})[keys[j]] = cell
                done += len(wanted)
                now = time.perf_counter()
                if now - shown >= PROGRESS_SECONDS or n + 1 == len(todo):
                    shown, rate = now, done / (now - start)
                    log.info("labelled", conversions=f"{done}/{conversions}", images=f"{n + 1}/{len(todo)}",
                             per_s=round(rate, 1), left=_duration((conversions - done) / rate))
                if now - saved >= SAVE_SECONDS or n + 1 == len(todo):
                    store.save()
                    saved = time.perf_counter()
    rows = []
    for h in hashes:
        d, cells = store.entries[h]
        extra = transient.get(h, {})
        rows.append(np.concatenate([d, *((cells[k] if k in cells else extra[k]) for k in keys)]))
    return Labels(np.stack(rows))
