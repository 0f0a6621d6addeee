"""Applying what was learned: ``vtopt optimize`` and ``vtopt evaluate``.

Images are processed in worker processes (VTracer holds the GIL); each
worker builds its plugin manager, scorer and algorithms once. A failed
image is a report row with an error, never a failed job.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import attrs
import numpy as np

from ..config.checks import make_executor
from ..config.schema import MAX_SSIM_LOSS
from ..env.episodes import ImageEpisodes
from ..env.scoring import make_scorer
from ..env.scoring import summarise as summarise_rows
from ..env.search import search_image
from ..errors import VtoptError
from ..files import atomic_write_text
from ..plugin.components import Method
from ..plugin.manager import PluginManager, PluginSet
from ..vtracer.images import IMAGE_SUFFIXES, MAX_PIXELS, ImageError, list_images, load_image
from ..vtracer.vectorize import ConversionError
from .model import is_pool_model, method_algorithm, model_advisor, read_meta, shipped
from .postprocess import postprocess

#: An SVG this many times its input file's size gets a note: vectorising suits flat art, not photos.
BLOAT_NOTE = 4.0


#: What one image takes to optimise in a worker, from its pixel count: measured peak resident memory
#: of a worker on upscaled flat-colour icons (README, "When things go wrong").
IMAGE_BASE_MB, IMAGE_MB_PER_MPX = 70.0, 145.0


def image_memory_mb(pixels: int) -> float:
    """The estimated peak memory, in MB, of a worker optimising an image of ``pixels`` pixels."""
    return IMAGE_BASE_MB + IMAGE_MB_PER_MPX * pixels / 1e6


@attrs.frozen
class Limits:
    """What a worker refuses or abandons."""

    max_pixels: int = MAX_PIXELS
    downscale: bool = False
    conversion_timeout: float = 60.0
    max_ssim_loss: float = MAX_SSIM_LOSS  # the quality floor (see vtopt.env.scoring.Scorer)
    image_memory_mb: float | None = None  # what one image may take (:func:`image_memory_mb`); None: no bound
    memory_note: str = ""  # where that bound comes from, for the error

    def pixels(self, path: Path) -> int:
        """The pixels ``path`` may be loaded with: ``max_pixels``, or fewer to fit ``image_memory_mb``
        (refused with an ImageError unless ``downscale``)."""
        if self.image_memory_mb is None:
            return self.max_pixels
        fit = int(max(0.0, self.image_memory_mb - IMAGE_BASE_MB) / IMAGE_MB_PER_MPX * 1e6)
        if fit >= self.max_pixels:
            return self.max_pixels
        from PIL import Image

        try:
            with Image.open(path) as im:
                w, h = im.size
        except Exception:  # load_image says what is wrong with the file
            return self.max_pixels
        if w * h > fit and not self.downscale:
            raise ImageError(f"{path}: {w}x{h} would take about {image_memory_mb(w * h):.0f} MB to optimise "
                             f"({IMAGE_MB_PER_MPX:.0f} MB per megapixel, measured), over the {self.image_memory_mb:.0f} "
                             f"MB one image may take ({self.memory_note}); pass --downscale, fewer --workers or a "
                             "higher --memory-limit-mb")
        return min(self.max_pixels, max(fit, 1))



def collect_inputs(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise VtoptError(f"{p}: no images in this folder (accepted: {', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise VtoptError(f"{p}: no such file or folder")
    unique: dict[Path, Path] = {}  # an image named twice (a file and its folder) is done once
    for f in files:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def output_names(files: Sequence[Path]) -> list[str]:
    """``<stem>.svg`` per input, made safe and unique (never a path outside --out)."""
    seen: set[str] = set()
    names = []
    for f in files:
        stem = re.sub(r"[^\w.\-]+", "_", f.stem).strip("._") or "image"
        name, n = f"{stem}.svg", 2
        while name.lower() in seen:
            name, n = f"{stem}-{n}.svg", n + 1
        seen.add(name.lower())
        names.append(name)
    return names


# -- workers ------------------------------------------------------------------------------


@attrs.frozen
class WorkerFactory:
    """What an executor runs for images: picklable; call it once per worker process for a :class:`Worker`
    (``worker.run(input, output) -> rows``). ``plugins`` rebuilds the caller's plugin manager in each
    worker, the plugins registered from code included (:meth:`PluginManager.portable`)."""

    methods: tuple[Method, ...]
    weights: dict[str, float]
    limits: Limits = Limits()
    metric_params: dict[str, dict] = attrs.Factory(dict)
    plugins: PluginSet = attrs.Factory(PluginSet)
    quality: str | None = None  # the reward's quality metric (None: the plugins' default)
    postprocess: tuple[str, ...] = ()  # post-processors every method's final SVG goes through

    def __call__(self) -> "Worker":
        return Worker(self.methods, self.weights, self.limits, self.metric_params, self.plugins.manager(),
                      self.quality, self.postprocess)

    def error_rows(self, job: tuple[str, str | None], error: str) -> list[dict[str, Any]]:
        """The rows of a job whose worker failed as a whole (a crashed process, a lost node)."""
        return [_error_row(job[0], m.label, f"{job[0]}: {error}", 0.0) for m in self.methods]


class Worker:
    def __init__(self, methods: Sequence[Method], weights: dict[str, float], limits: Limits = Limits(),
                 metric_params: dict[str, dict] | None = None, pm: PluginManager | None = None,
                 quality: str | None = None, postprocess: Sequence[str] = ()):
        self.pm = pm or PluginManager()
        self.postprocessors = [(name, self.pm.create("postprocessor", name)) for name in postprocess]
        self.limits = limits
        self.scorer = make_scorer(self.pm, weights, limits.conversion_timeout, limits.max_ssim_loss, metric_params,
                                  quality)
        self.methods = list(methods)
        self.algorithms = {}
        # label -> what its algorithm is: the registered name, as faults name it, and a model's env
        self.metas: dict[str, dict] = {}
        self.advisors: dict[str, Any] = {}  # label -> the advisor its env observes (env.pool.advisor)
        for m in self.methods:
            algorithm, meta = method_algorithm(self.pm, m)
            if algorithm is not None:
                self.algorithms[m.label], self.metas[m.label] = algorithm, meta
                advisor = model_advisor(self.pm, meta, m.model) if m.model is not None else None
                if advisor is not None:  # a policy trained on a chooser's advice acts with that advice
                    self.advisors[m.label] = advisor

    def run(self, path: str, output: str | None) -> list[dict[str, Any]]:
        if "torch" in sys.modules:  # only algorithms that need torch import it; one thread per worker process
            sys.modules["torch"].set_num_threads(1)
        start = time.perf_counter()
        try:
            image = load_image(Path(path), "input", max_pixels=self.limits.pixels(Path(path)),
                               downscale=self.limits.downscale)
            self.scorer.defaults(image)
        except (ImageError, ConversionError) as exc:
            return [_error_row(path, m.label, str(exc), time.perf_counter() - start) for m in self.methods]
        except Exception as exc:  # anything else about this image is this image's error
            return [_error_row(path, m.label, f"{path}: {type(exc).__name__}: {exc}", time.perf_counter() - start)
                    for m in self.methods]
        rows = []
        try:
            for m in self.methods:
                rows.append(self._one(image, path, m, output))
        finally:
            self.scorer.forget(image)
        return rows

    def _one(self, image, path: str, method: Method, output: str | None) -> dict[str, Any]:
        start = time.perf_counter()
        algorithm = self.algorithms.get(method.label)
        try:
            keep_svg = output is not None or bool(self.postprocessors)
            if algorithm is None or method.budget < 2:  # the defaults alone
                env = ImageEpisodes([image], self.scorer, 2, keep_svg=keep_svg)
                env.reset(options={"image": 0})
                row = env.episode_summary()
                row.update(conversions=1, svg=env.best.svg)
            else:
                meta = self.metas[method.label]
                if is_pool_model(meta):  # the pool env imports gymnasium: only for a pool model
                    from ..env.poolenv import model_env

                    env = model_env(meta, [image], self.scorer, method.budget, keep_svg=keep_svg,
                                    advisor=self.advisors.get(method.label))
                else:
                    env = ImageEpisodes([image], self.scorer, method.budget, keep_svg=keep_svg)
                with self.pm.blame("algorithm", meta["algorithm"], "search"):
                    row = search_image(algorithm, env, 0)
        except Exception as exc:  # a plugin's bug on one image is that image's error, naming the plugin
            return _error_row(path, method.label, f"{path}: {type(exc).__name__}: {exc}", time.perf_counter() - start)
        svg = row.pop("svg")
        notes = list(image.notes)
        raw = {"raw_ssim": row["ssim"], "raw_bytes": row["bytes"], "raw_score": row["score"]}
        post = postprocess(env.best, image, self.scorer, self.postprocessors, self.pm)
        notes += post.notes
        if post.applied:  # the post-processed SVG, scored as a conversion is (relative to the raw defaults)
            svg = post.outcome.svg
            row.update(ssim=post.outcome.ssim, bytes=post.outcome.svg_bytes, score=post.outcome.score)
        try:
            ratio = row["bytes"] / max(1, Path(path).stat().st_size)
        except OSError:
            ratio = 0.0
        if ratio > BLOAT_NOTE:
            notes.append(f"the SVG is {ratio:.0f}x the input file's size: vector output suits flat-colour art "
                         "(logos, icons), not photo-like images")
        return {
            "svg": svg if output is not None else None,  # written by the driver (workers may be other machines)
            "input": path, "output": output, "method": method.label, "parameters": row["params"],
            "ssim": row["ssim"], "bytes": row["bytes"], "default_ssim": row["default_ssim"],
            "default_bytes": row["default_bytes"], "score": row["score"], "default_score": row["default_score"],
            "conversions": row["conversions"], "error": None, "notes": notes,
            "postprocess": post.applied, "postprocess_seconds": post.seconds, **raw,
            # the defaults' conversion (made once per image, shared by the methods) counts for each
            "seconds": time.perf_counter() - start + self.scorer.defaults(image).seconds,
        }


def _error_row(path: str, label: str, error: str, seconds: float) -> dict[str, Any]:
    return {"input": path, "output": None, "svg": None, "method": label, "parameters": None, "ssim": None, "bytes": None,
            "default_ssim": None, "default_bytes": None, "score": None, "default_score": None,
            "conversions": 0, "seconds": seconds, "error": error, "notes": [], "postprocess": []}


def run_images(files: Sequence[Path], outputs: Sequence[str | None], methods: Sequence[Method],
               weights: dict[str, float], workers: int, progress=None, limits: Limits = Limits(),
               executor: Any = None, metric_params: dict[str, dict] | None = None,
               pm: PluginManager | None = None, quality: str | None = None,
               postprocess: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every file through every method on an executor; rows in input order, then method order.
    Each SVG goes to its ``outputs`` file (``"-"``: stdout; None: nowhere).

    ``weights``, ``metric_params`` and ``quality`` are the reward's (``quality`` None: the plugins'
    default). ``postprocess`` names the post-processors every method's final SVG goes through (see
    :mod:`vtopt.postprocess`). Plugins registered from code in ``pm`` take part in every worker."""
    pm = pm or PluginManager()
    executor = executor if executor is not None else make_executor(pm)
    jobs = list(zip(map(str, files), outputs))
    results: dict[int, list[dict]] = {}

    def on_result(index: int, rows: list[dict]) -> None:
        for row in rows:
            svg = row.pop("svg", None)
            if svg is not None and row["output"] == "-":
                sys.stdout.write(svg)
                sys.stdout.flush()
            elif svg is not None and row["output"]:
                try:
                    atomic_write_text(Path(row["output"]), svg)
                except OSError as exc:
                    row.update(error=f"{row['output']}: cannot write ({exc.strerror or exc})", output=None)
            elif row["error"]:
                row["output"] = None
        results[index] = rows
        if progress:
            progress(len(results), len(jobs), rows)

    factory = WorkerFactory(tuple(methods), dict(weights), limits, dict(metric_params or {}), pm.portable(), quality,
                            tuple(postprocess))
    executor.run_images(jobs, factory, max(1, workers), on_result)
    missing = [str(files[i]) for i in range(len(jobs)) if i not in results]
    if missing:
        raise VtoptError(f"the executor returned no result for {len(missing)} image(s), e.g. {missing[0]}")
    return [row for i in range(len(jobs)) for row in results[i]]


def model_method(model: Path | None, budget: int | None, label: str = "policy") -> tuple[Method, dict]:
    path = model if model is not None else shipped("policy")
    meta = read_meta(path)
    budget = budget or meta["conversions_per_episode"]
    return Method(label, budget, model=str(path)), meta


def summarise(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The shared means of the rows that succeeded, plus conversions and seconds per image."""
    rows = [r for r in rows if r["error"] is None]
    if not rows:
        return {"images": 0}
    return {**summarise_rows(rows), "conversions": float(np.mean([r["conversions"] for r in rows])),
            "seconds": float(np.mean([r["seconds"] for r in rows]))}


PROGRESS_WIDTH = 120  # characters a progress line may take; the table and --report hold the rest


def print_progress(done: int, total: int, rows: list[dict]) -> None:
    """One line per image: its first method's figures (the others are in the table), cut to fit."""
    row = rows[0]
    name = Path(row["input"]).name + (f" ({'; '.join(row['notes'])})" if row.get("notes") else "")
    if row["error"]:
        line = f"FAILED {row['error']}"
    else:
        line = f"{row['method']}: ssim {row['ssim']:.4f} bytes x{row['bytes'] / row['default_bytes']:.2f}"
        line += f" (+{len(rows) - 1} more methods)" if len(rows) > 1 else ""
    text = f"[{done}/{total}] {name}: {line}"
    if len(text) > PROGRESS_WIDTH:
        text = text[:PROGRESS_WIDTH - 3] + "..."
    print(text, file=sys.stderr, flush=True)


def format_table(summaries: dict[str, dict[str, Any]]) -> str:
    head = (f"{'method':<12} {'images':>6} {'mean SSIM':>10} {'worst dSSIM':>11} {'bytes/def':>10} {'mean score':>11} "
            f"{'conv/img':>9} {'s/img':>7}")
    lines = [head, "-" * len(head)]
    for label, s in summaries.items():
        if not s.get("images"):
            lines.append(f"{label:<12} {0:>6}   (every image failed)")
            continue
        secs = f"{s['seconds']:>7.3f}" if s["seconds"] == s["seconds"] else f"{'-':>7}"
        # the least SSIM change from the defaults' over the images: a loss reads -0.0021, a gain +0.0454
        worst = f"{0.0 - s['worst_ssim_loss']:>+11.4f}" if s.get("worst_ssim_loss") is not None else f"{'-':>11}"
        lines.append(f"{label:<12} {s['images']:>6} {s['mean_ssim']:>10.4f} {worst} "
                     f"{s['bytes_ratio']:>10.3f} "
                     f"{s['mean_score']:>11.4f} {s['conversions']:>9.1f} {secs}")
    return "\n".join(lines)
