"""A training corpus of real icons: ``vtopt corpus OUT``.

The icons come from permissively licensed icon sets that Iconify publishes
on the npm registry as ``@iconify-json/<set>`` (one JSON file of SVG bodies
per set), fetched with ``npm pack`` at pinned versions. Each sampled icon is
drawn with vtopt's own renderer at ``size`` px on its long side, centred on
a white square, i.e. the way the validation icons were made, and written to
``OUT/<set>/<icon>.png``; each set's folder also gets its ``LICENSE.txt``.

Real logos come from one package only, ``@iconify-json/logos`` (CC0), and
only the icons on the allow-list shipped in ``vtopt/allowlists/logos.txt``;
a fixed, seeded share of them (``LOGO_VALIDATION`` icons) is the logo
validation split, written to a separate folder that no training config
reads. Logos are their owners' trademarks: they are drawn on the user's
machine for training and measuring, and never shipped.

Never offered here, on purpose: Fluent Emoji (vtopt's validation family),
the logos package's icons off the allow-list, and every other brand or
technology logo set (devicon, simple-icons ...), kept for held-out
evaluation on images vtopt has never seen.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Callable

import attrs
import numpy as np
from PIL import Image

from ..errors import VtoptError
from ..files import atomic_write_bytes
from ..vtracer.vectorize import ConversionError, render


@attrs.frozen
class IconSet:
    name: str
    version: str
    licence: str
    author: str
    allow_list: str | None = None  # a file in vtopt/allowlists: only these icons, all of them by default


#: Logos of the allow-list set aside (seeded, fixed) as the logo validation split.
LOGO_VALIDATION = 300
VALIDATION_SEED = 20261201
#: Icons sampled per set when not asked (an allow-listed set gives all of its icons).
PER_SET = 400


#: The sets a corpus may draw from: permissive licences, no Fluent Emoji, no brand logos.
ICON_SETS: dict[str, IconSet] = {s.name: s for s in (
    IconSet("noto", "1.2.9", "Apache-2.0", "Google Inc."),
    IconSet("twemoji", "1.2.5", "CC-BY-4.0", "Twitter Inc."),
    IconSet("openmoji", "1.2.29", "CC-BY-SA-4.0", "OpenMoji"),
    IconSet("flat-color-icons", "1.2.3", "MIT", "Icons8"),
    IconSet("streamline-emojis", "1.2.4", "CC-BY-4.0", "Streamline"),
    IconSet("fxemoji", "1.2.2", "Apache-2.0", "Mozilla"),
    IconSet("emojione", "1.2.3", "CC-BY-4.0", "Emoji One"),
    IconSet("logos", "1.2.19", "CC0-1.0", "gilbarbara/logos (logos are trademarks of their owners)", "logos.txt"),
)}
#: Never training data: the validation family and held-out brand/technology logos. ``logos`` is
#: offered only through its allow-list (the prefix still refuses ``logos-*`` look-alikes).
FORBIDDEN = ("fluent-emoji", "logos", "devicon", "skill-icons", "simple-icons", "vscode-icons", "cib")
DEFAULT_SETS = tuple(ICON_SETS)


def allowed_icons(icon_set: IconSet) -> list[str]:
    """The icon names a set may give (its allow-list, comments and blank lines left out)."""
    text = (Path(__file__).parent.parent / "allowlists" / icon_set.allow_list).read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def logo_split(names: list[str]) -> tuple[list[str], list[str]]:
    """(training, validation) names of the logo allow-list: a fixed seeded share is validation."""
    order = np.random.default_rng(VALIDATION_SEED).permutation(len(names))
    val = {names[i] for i in order[:LOGO_VALIDATION]}
    return [n for n in names if n not in val], [n for n in names if n in val]


def check_sets(names: list[str]) -> list[IconSet]:
    sets = []
    for name in names:
        if name in ICON_SETS and ICON_SETS[name].allow_list:
            sets.append(ICON_SETS[name])
            continue
        if any(name == f or name.startswith(f + "-") for f in FORBIDDEN):
            why = ("the validation family" if name.startswith("fluent-emoji")
                   else "brand or technology logos held out for evaluation on unseen images")
            raise VtoptError(f"icon set {name!r} is never training data: {why}")
        if name not in ICON_SETS:
            raise VtoptError(f"unknown icon set {name!r}; known: {', '.join(ICON_SETS)}")
        sets.append(ICON_SETS[name])
    return sets


def fetch(icon_set: IconSet, cache: Path) -> dict:
    """The set's icons.json, fetched once with ``npm pack`` into ``cache``. A cached package that cannot
    be read is moved aside as ``NAME.damaged``, with a warning that names it, and fetched again."""
    tgz = cache / f"iconify-json-{icon_set.name}-{icon_set.version}.tgz"
    if tgz.is_file():
        try:
            return _icons_json(tgz)
        except VtoptError as exc:
            aside = tgz.with_name(tgz.name + ".damaged")
            tgz.replace(aside)
            import structlog

            structlog.get_logger(__name__).warning("npm_cache_damaged", file=str(tgz), moved_to=str(aside),
                                                   problem=str(exc)[:300], action="fetched again")
    npm = shutil.which("npm")
    if npm is None:
        raise VtoptError("building the corpus needs npm (e.g. apt-get install npm)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        done = subprocess.run([npm, "pack", f"@iconify-json/{icon_set.name}@{icon_set.version}",
                               "--pack-destination", tmp], capture_output=True, text=True)
        got = list(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or len(got) != 1:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise VtoptError(f"npm pack @iconify-json/{icon_set.name}@{icon_set.version} failed: {last}")
        got[0].replace(tgz)
    return _icons_json(tgz)


def _icons_json(tgz: Path) -> dict:
    try:
        with tarfile.open(tgz) as tar:
            return json.load(tar.extractfile("package/icons.json"))
    except (KeyError, tarfile.TarError, json.JSONDecodeError, UnicodeDecodeError, EOFError, OSError,
            zlib.error, AttributeError) as exc:  # AttributeError: icons.json is not a regular file
        raise VtoptError(f"{tgz}: not an Iconify icon package ({type(exc).__name__}: {exc})") from None


def icon_svg(data: dict, name: str, size: int) -> str:
    """An icon of an Iconify JSON as a standalone SVG, ``size`` px square, centred."""
    icon = data["icons"][name]
    left, top = icon.get("left", data.get("left", 0)), icon.get("top", data.get("top", 0))
    width, height = icon.get("width", data.get("width", 16)), icon.get("height", data.get("height", 16))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="{size}" height="{size}" viewBox="{left} {top} {width} {height}">{icon["body"]}</svg>')


def default_validation_folder(out: Path) -> Path:
    """Where the logo validation split goes by default: beside the corpus, never inside it."""
    return out.parent / f"{out.name}-validation"


def build_corpus(out: Path, sets: list[str], per_set: int | None = None, size: int = 256, seed: int = 0,
                 cache: Path | None = None, progress: Callable[[str], None] = print,
                 validation: Path | None = None) -> dict[str, int]:
    """Write up to ``per_set`` sampled icons of each set (by default ``PER_SET``, and all the
    training icons of an allow-listed set) and return how many each set gave. An allow-listed
    set's validation split goes, whole, to ``validation/<set>/``."""
    chosen = check_sets(sets)
    cache = cache or Path.home() / ".cache" / "vtopt" / "npm"
    validation = validation or default_validation_folder(out)
    if validation.resolve() == out.resolve() or out.resolve() in validation.resolve().parents:
        raise VtoptError(f"--validation {validation}: the validation split must lie outside the corpus {out}, "
                         "or training would read it")
    counts = {}
    for icon_set in chosen:
        data = fetch(icon_set, cache)
        targets = [(out, sorted(data["icons"]), per_set or PER_SET)]
        if icon_set.allow_list:
            allowed = allowed_icons(icon_set)
            missing = [n for n in allowed if n not in data["icons"]]
            if missing:
                raise VtoptError(f"@iconify-json/{icon_set.name}@{icon_set.version} lacks {len(missing)} allow-listed "
                                 f"icon(s), e.g. {missing[0]!r}")
            train, val = logo_split(allowed)
            for name in val:  # drawn as training by an older allow-list: never leave it where training reads
                (out / icon_set.name / f"{name}.png").unlink(missing_ok=True)
            targets = [(out, train, per_set), (validation, val, None)]
        for root, names, limit in targets:
            written, skipped = _draw(data, names, root / icon_set.name, limit, size,
                                     np.random.default_rng([seed, sum(icon_set.name.encode())]))
            (root / icon_set.name / "LICENSE.txt").write_text(
                f"Icons from the Iconify package @iconify-json/{icon_set.name} {icon_set.version}\n"
                f"Author: {icon_set.author}; licence: {icon_set.licence}.\n"
                f"Rendered by vtopt at {size} px on white; sampled with seed {seed}.\n")
            key = icon_set.name if root == out else f"{icon_set.name} (validation)"
            counts[key] = written
            progress(f"{key} {icon_set.version} ({icon_set.licence}): {written} icons in {root / icon_set.name}"
                     + (f", {skipped} skipped (blank or unrenderable)" if skipped else ""))
    return counts


def _draw(data: dict, names: list[str], folder: Path, limit: int | None, size: int,
          rng: np.random.Generator) -> tuple[int, int]:
    """Render up to ``limit`` of ``names`` (seeded order) into ``folder``; (written, skipped)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = skipped = 0
    for i in rng.permutation(len(names)):
        if limit is not None and written >= limit:
            break
        target = folder / f"{names[i]}.png"
        if target.is_file():
            written += 1
            continue
        try:
            rgb = render(icon_svg(data, names[i], size), size, size)
        except ConversionError:
            skipped += 1
            continue
        if rgb.min() >= 250:  # nothing visible on white (white-only icons)
            skipped += 1
            continue
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "PNG")
        atomic_write_bytes(target, buf.getvalue())
        written += 1
    return written, skipped
