"""Model files: what an algorithm saved, plus vtopt's metadata, in one zip.

An algorithm's ``save`` writes a zip file; vtopt adds ``vtopt.json`` to it
(the algorithm's registered name and params, the budget and reward it was
trained for, the observation layout). ``load_model`` reads that entry to
rebuild the algorithm through the plugin registry. Loading an SB3 policy
unpickles code: load only model files you trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import attrs

from .. import __version__
from ..env.episodes import observation_size
from ..errors import VtoptError
from ..files import temp_name
from ..vtracer.params import action_size

META = "vtopt.json"
FORMAT = "vtopt-model/1"
SHIPPED = Path(__file__).parent.parent / "models"


def save_model(algorithm, path: Path, name: str, params: dict, conversions: int, weights: dict,
               extra: dict[str, Any] | None = None) -> Path:
    """Write ``path`` atomically: the algorithm's zip plus ``vtopt.json``. An OSError (a full disk)
    names ``path``, and no partial file is left."""
    path = Path(path)
    tmp = temp_name(path)
    meta = {"format": FORMAT, "algorithm": name, "params": params, "conversions_per_episode": conversions,
            "reward_weights": weights, "observation_size": observation_size(), "action_size": action_size(),
            "vtopt_version": __version__, **(extra or {})}
    try:
        algorithm.save(tmp)
        with zipfile.ZipFile(tmp, "a") as zf:
            zf.writestr(META, json.dumps(meta, indent=1))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except zipfile.BadZipFile:
        tmp.unlink(missing_ok=True)
        raise VtoptError(f"algorithm {name!r} must save a zip file") from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    return path


def is_pool_model(meta: dict[str, Any]) -> bool:
    """Whether a model (its ``vtopt.json``) acts in the pool environment (``env.actions: pool``)."""
    return (meta.get("env") or {}).get("pool") is not None


def read_meta(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise VtoptError(f"{path}: no such model file")
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read(META))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as exc:
        raise VtoptError(f"{path}: not a vtopt model file ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise VtoptError(f"{path}: unknown model format {meta.get('format') if isinstance(meta, dict) else meta!r}")
    if is_pool_model(meta):  # its sizes follow its pool
        from ..env.poolenv import model_sizes

        expected = model_sizes(meta)
    else:
        expected = observation_size(), action_size()
    if (meta["observation_size"], meta["action_size"]) != expected:
        raise VtoptError(f"{path}: made for observations of {meta['observation_size']} and actions of "
                         f"{meta['action_size']} values; this vtopt uses {expected[0]} and {expected[1]}")
    return meta


def load_model(pm, path: Path):
    """(algorithm ready to predict, metadata) from a model file."""
    meta = read_meta(path)
    # its params were validated when it was trained; validating again may import what inference avoids
    algorithm = pm.create("algorithm", meta["algorithm"], meta["params"], validate=False)
    try:
        algorithm.load(Path(path))
    except Exception as exc:
        raise VtoptError(f"{path}: the {meta['algorithm']} algorithm could not load it "
                         f"({type(exc).__name__}: {exc})") from None
    return algorithm, meta


def method_algorithm(pm, method) -> tuple[Any, dict[str, Any]]:
    """(the algorithm a :class:`vtopt.Method` runs, built; what it is): a model file, loaded, with its
    ``vtopt.json``; or a registered algorithm with its params, as ``{"algorithm", "params"}``; or
    ``(None, {})`` for a method that is the defaults alone (neither)."""
    if method.model is not None:
        return load_model(pm, Path(method.model))
    if method.algorithm is not None:
        algorithm = pm.create("algorithm", method.algorithm, method.params)
        return algorithm, {"algorithm": method.algorithm, "params": dict(method.params)}
    return None, {}


def shipped(name: str) -> Path:
    """A model shipped inside vtopt's package (``policy``: what ``optimize`` applies by default)."""
    path = SHIPPED / f"{name}.zip"
    if not path.is_file():
        raise VtoptError(f"this vtopt has no shipped {name} model ({path}); pass --model")
    return path


def advisor_path(spec: str, config_path: Path | None = None) -> Path:
    """Where ``env.pool.advisor`` points: a shipped model's name (``chooser``), else a model file
    (relative to the config's folder)."""
    if (SHIPPED / f"{spec}.zip").is_file() and "/" not in spec:
        return SHIPPED / f"{spec}.zip"
    path = Path(spec).expanduser()
    if not path.is_absolute() and config_path is not None:
        path = Path(config_path).parent / path
    return path


@attrs.frozen
class Advised:
    """A policy's advisor (``env.pool.advisor``): what its model file records (``spec``, and the advisor
    file's ``sha256``, so that a replaced advisor is noticed) and the advisor itself, loaded."""

    spec: str  # a shipped model's name as it is, else the file's absolute path
    sha256: str
    advisor: Any


def load_advisor(pm, spec: str, config_path: Path | None = None, sha256: str | None = None,
                 pool: Sequence[Mapping[str, Any]] | None = None, where: str = "") -> Advised:
    """The fitted policy ``env.pool.advisor`` names (see :func:`advisor_path`), ready to advise. With ``sha256``
    (what a model file recorded) the file must be that one; with ``pool``, the advisor's pool must be it.
    ``where`` starts each error (a config's or a model's path)."""
    from ..env.poolenv import Advisor, same_pool

    where = where or (f"{config_path}: " if config_path is not None else "")
    path = advisor_path(spec, config_path)
    if not path.is_file():
        raise VtoptError(f"{where}env.pool.advisor {spec!r} is neither a shipped model nor a model file ({path})")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if sha256 is not None and digest != sha256:
        raise VtoptError(f"{where}its advisor {path} is not the one it was trained with (the file changed since): "
                         "retrain it on this advisor, or put the old advisor back")
    algorithm, meta = load_model(pm, path)
    if not isinstance(algorithm, Advisor):
        raise VtoptError(f"{where}env.pool.advisor {path}: a {meta['algorithm']} model does not advise "
                         "(a fitted chooser does)")
    if pool is not None and not same_pool(algorithm.pool, pool):
        raise VtoptError(f"{where}env.pool.advisor {path}: its pool ({len(algorithm.pool)} sets) is not env.pool's "
                         f"({len(pool)} sets of size, seed and extra): fit the advisor on the same pool")
    return Advised(spec if path.parent == SHIPPED else str(path.resolve()), digest, algorithm)


def model_advisor(pm, meta: Mapping[str, Any], path: Path | str) -> Any:
    """The advisor a model file (``path``, its ``vtopt.json`` ``meta``) was trained with, checked to be that
    one; None when it has none."""
    env = meta.get("env") or {}
    if env.get("advisor") is None:
        return None
    return load_advisor(pm, env["advisor"], sha256=env.get("advisor_sha256"), pool=env.get("pool"),
                        where=f"{path}: ").advisor
