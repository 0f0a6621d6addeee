"""The image set of a run: synthetic logos and folders, split for validation."""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import numpy as np
import structlog

from ..config.schema import DataConfig, LoadedConfig
from ..errors import VtoptError
from ..vtracer.images import AUTO_KIND, MAX_PIXELS, ImageError, LogoImage, image_kind, list_images, load_image
from ..vtracer.synthetic import synthetic_set
from ..vtracer.vectorize import ConversionError

log = structlog.get_logger(__name__)
FLAT_KIND = "mixed"


@attrs.define
class Dataset:
    train: list[LogoImage]
    validation: list[LogoImage]
    rejected: list[str]  # one line per file that could not be used

    def kinds(self) -> list[str]:
        return sorted({im.kind for im in self.train})


def load_folder(folder: Path, kind: str | None, max_size: int, max_pixels: int = MAX_PIXELS,
                downscale: bool = False) -> tuple[list[LogoImage], list[str]]:
    """Images of a folder: sub-folders are kinds (unless ``kind`` is given; ``auto``: each
    image's kind by :func:`~vtopt.images.image_kind`, sub-folders included)."""
    groups: list[tuple[Path, str]] = [(folder, kind or FLAT_KIND)]
    if kind in (None, AUTO_KIND):
        groups += [(sub, sub.name) for sub in sorted(folder.iterdir()) if sub.is_dir() and not sub.name.startswith(".")]
    images, rejected = [], []
    for path, group_kind in groups:
        for file in list_images(path):
            try:
                image = load_image(file, group_kind, max_size, max_pixels=max_pixels, downscale=downscale)
                if kind == AUTO_KIND:
                    image.kind = image_kind(image)
                if image.notes:
                    log.info("image_loaded", image=str(file), notes=image.notes)
                images.append(image)
            except ImageError as exc:
                rejected.append(str(exc))
    return images, rejected


def load_dataset(loaded: LoadedConfig, scorer=None) -> Dataset:
    """The configured images, split; with a scorer, images whose defaults'
    conversion or metrics fail are rejected here rather than midway through a run."""
    cfg: DataConfig = loaded.config.data
    seed = loaded.config.run.seed
    images: list[LogoImage] = []
    rejected: list[str] = []
    for folder in cfg.folders:
        path = loaded.resolve_path(folder.path)
        if folder.optional and not path.exists():
            log.warning("data_folder_missing", folder=str(path),
                        hint="`vtopt corpus ~/.cache/vtopt/corpus` builds the corpus of real logos and icons")
            continue
        found, bad = load_folder(path, folder.kind, cfg.image_size, cfg.max_pixels, cfg.downscale)
        if not found:
            raise VtoptError(f"{loaded.path}: data folder {path} holds no usable image ({len(bad)} rejected)"
                             + (f"; first: {bad[0]}" if bad else ""))
        images += found
        rejected += bad
    if cfg.synthetic is not None and not (cfg.synthetic.fallback and images):
        if cfg.synthetic.fallback:
            log.warning("synthetic_fallback", reason="no data folder gave images: training on synthetic logos")
        syn_seed = seed if cfg.synthetic.seed is None else cfg.synthetic.seed
        images = synthetic_set(cfg.synthetic.kinds, cfg.synthetic.per_kind, syn_seed, cfg.image_size) + images
    if scorer is not None:
        usable = []
        for im in images:
            try:
                scorer.defaults(im)
                usable.append(im)
            except (ConversionError, ValueError) as exc:
                rejected.append(f"{im.source}: {exc}")
        images = usable
    for line in rejected:
        log.warning("image_rejected", problem=line)
    if not images:
        raise VtoptError(f"{loaded.path}: the data set is empty ({len(rejected)} file(s) rejected)")
    train, validation = split(images, cfg.validation_split, seed)
    return Dataset(train, validation, rejected)


def split(images: list[LogoImage], fraction: float, seed: int) -> tuple[list[LogoImage], list[LogoImage]]:
    """Per kind, a seeded share of the images goes to validation (one at least, if any)."""
    rng = np.random.default_rng(seed)
    train, validation = [], []
    by_kind: dict[str, list[LogoImage]] = {}
    for im in images:
        by_kind.setdefault(im.kind, []).append(im)
    for kind in sorted(by_kind):
        group = by_kind[kind]
        order = rng.permutation(len(group))
        n_val = 0 if fraction <= 0 or len(group) < 2 else max(1, math.floor(len(group) * fraction))
        validation += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    return train, validation
