"""The YAML config: typed sections, strict loading, errors with file and line.

Loading goes YAML (ruamel.yaml, round-trip loader: no object construction
from tags, duplicate keys rejected) -> plain data -> cattrs with unknown keys
forbidden and no lax coercion (``"3"`` is not an int, ``1.5`` is not an
int) -> semantic checks against the plugin registries. Every problem comes
back as one ``FILE:LINE: $.path: message`` line.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Literal, NewType, Union

import attrs
import cattrs
from attrs import Factory, frozen
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .errors import ConfigError, ParamError, UnknownComponent
from .images import IMAGE_SUFFIXES, MAX_PIXELS
from .scoring import DEFAULT_WEIGHTS, MAX_SSIM_LOSS, REPORTED
from .synthetic import KINDS

PosInt = NewType("PosInt", int)
NonNegInt = NewType("NonNegInt", int)
Budget = NewType("Budget", int)  # conversions per image, the defaults' included
ImageSize = NewType("ImageSize", int)
Fraction = NewType("Fraction", float)  # 0 <= x < 1
Name = NewType("Name", str)
NonNegFloat = NewType("NonNegFloat", float)

PRESETS_DIR = Path(__file__).parent / "presets"
PRESETS = ("debug", "cpu", "default")
MAX_YAML_NODES = 100_000  # beyond this a document is an alias bomb, not a config


@frozen
class RunConfig:
    name: Name = "vtopt"
    seed: NonNegInt = 0
    timesteps: PosInt = 20_000  # environment steps of training
    checkpoint_every: NonNegInt = 0  # timesteps between checkpoints; 0: none
    keep_checkpoints: NonNegInt = 0  # keep the newest N checkpoints (best_model.zip is always kept); 0: all
    eval_every: NonNegInt = 0  # timesteps between evaluations on the validation images; 0: at the end only
    early_stop: NonNegInt = 0  # stop after this many evaluations without a better score; 0: never


SyntheticKind = Literal[KINDS]
SyntheticKinds = NewType("SyntheticKinds", list)


@frozen
class SyntheticConfig:
    per_kind: PosInt = 32
    kinds: SyntheticKinds = Factory(lambda: list(KINDS))
    seed: Union[NonNegInt, None] = None  # None: run.seed


@frozen
class FolderConfig:
    path: str
    kind: Union[Name, None] = None  # None: sub-folders are kinds, else a flat folder of kind "mixed"


@frozen
class DataConfig:
    synthetic: Union[SyntheticConfig, None] = Factory(SyntheticConfig)
    folders: list[FolderConfig] = Factory(list)
    validation_split: Fraction = 0.2
    image_size: ImageSize = 128  # images larger than this are downscaled to fit
    max_pixels: PosInt = MAX_PIXELS  # larger files are rejected unread (decompression bombs) ...
    downscale: bool = False  # ... or, when true, downscaled to fit


@frozen
class EnvConfig:
    conversions_per_episode: Budget = 4
    parallel_envs: PosInt = 1
    conversion_timeout: NonNegFloat = 0.0  # seconds; past it a conversion is abandoned (0: no limit)


@frozen
class MonitorConfig:
    name: str
    params: dict[str, Any] = Factory(dict)
    on_error: Literal["disable", "stop"] = "disable"  # a hook that raises: turn the monitor off, or stop the run


@frozen
class AlgorithmConfig:
    name: str = "ppo"
    params: dict[str, Any] = Factory(dict)


@frozen
class CurriculumConfig:
    name: str = "staged"
    params: dict[str, Any] = Factory(dict)


@frozen
class RewardConfig:
    weights: dict[str, float] = Factory(lambda: dict(DEFAULT_WEIGHTS))
    # the quality floor: a result whose SSIM is more than this below the defaults' never wins
    max_ssim_loss: NonNegFloat = MAX_SSIM_LOSS
    params: dict[str, dict[str, Any]] = Factory(dict)  # metric name -> its factory's params


@frozen
class ResourcesConfig:
    threads: PosInt = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # where the training environments run: local (subprocesses), ray (actors anywhere on a cluster), a plugin's
    executor: str = "local"
    address: Union[str, None] = None  # the executor's cluster address (ray: 'auto' or ray://HOST:PORT)


@frozen
class SweepConfig:
    space: dict[str, str] = Factory(dict)  # config key path -> distribution, e.g. loguniform(1e-4, 1e-3)
    metric: Literal["mean_score", "mean_ssim", "mean_improvement"] = "mean_score"
    scheduler: Literal["fifo", "asha"] = "fifo"  # asha: stop weak trials early on evaluations (ray)
    seed: NonNegInt = 0


@frozen
class Config:
    run: RunConfig = Factory(RunConfig)
    data: DataConfig = Factory(DataConfig)
    env: EnvConfig = Factory(EnvConfig)
    algorithm: AlgorithmConfig = Factory(AlgorithmConfig)
    curriculum: CurriculumConfig = Factory(CurriculumConfig)
    reward: RewardConfig = Factory(RewardConfig)
    monitors: list[MonitorConfig] = Factory(lambda: [MonitorConfig("structlog")])
    resources: ResourcesConfig = Factory(ResourcesConfig)
    sweep: Union[SweepConfig, None] = None


# -- strict scalars ----------------------------------------------------------------


def _strict_int(value, _type):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {_describe(value)}")
    return value


def _strict_float(value, _type):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {_describe(value)}")
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    return float(value)


def _strict_str(value, _type):
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_describe(value)}")
    return value


def _strict_bool(value, _type):
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_describe(value)}")
    return value


def _bounded(low, high=None, what="", check_low=lambda v, lo: v >= lo):
    def hook(value, _type):
        value = _strict_int(value, int) if isinstance(low, int) else _strict_float(value, float)
        if not check_low(value, low) or (high is not None and value > high):
            raise ValueError(f"{value} is out of range: {what}")
        return value

    return hook


def _name(value, _type):
    value = _strict_str(value, str)
    if not value or any(c in value for c in "/\\\0") or value in (".", ".."):
        raise ValueError(f"{value!r} is not a valid name (no slashes, not empty)")
    return value


converter = cattrs.Converter(forbid_extra_keys=True)
converter.register_structure_hook(int, _strict_int)
converter.register_structure_hook(float, _strict_float)
converter.register_structure_hook(str, _strict_str)
converter.register_structure_hook(bool, _strict_bool)
converter.register_structure_hook(PosInt, _bounded(1, what="must be at least 1"))
converter.register_structure_hook(NonNegInt, _bounded(0, what="must be at least 0"))
converter.register_structure_hook(Budget, _bounded(2, 1000, what="must be in [2, 1000] (the defaults' conversion counts as one)"))
converter.register_structure_hook(ImageSize, _bounded(16, 4096, what="must be in [16, 4096] pixels"))
converter.register_structure_hook(
    Fraction, _bounded(0.0, 0.9, what="must be in [0, 0.9]"))
converter.register_structure_hook(Name, _name)
converter.register_structure_hook(NonNegFloat, _bounded(0.0, what="must be at least 0"))


def _kinds(value, _type):
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty list of kinds")
    allowed = SyntheticKind.__args__
    for kind in value:
        if kind not in allowed:
            raise ValueError(f"{kind!r} is not one of {', '.join(map(repr, allowed))}")
    if len(set(value)) != len(value):
        raise ValueError("each kind may be named once")
    return list(value)


converter.register_structure_hook(SyntheticKinds, _kinds)


def _strict_list(t):
    inner = converter.get_structure_hook(t)

    def hook(value, typ):
        if not isinstance(value, list):  # a string is iterable, but not a list of sections
            raise TypeError(f"expected a list, got {_describe(value)}")
        return inner(value, typ)

    converter.register_structure_hook_func(lambda typ: typ == t, hook)


for _t in (list[MonitorConfig], list[FolderConfig]):
    _strict_list(_t)


def _describe(value) -> str:
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"{type(value).__name__} {value!r}"


# -- loading -------------------------------------------------------------------------


@attrs.define
class LoadedConfig:
    config: Config
    path: Path
    document: Any  # the round-trip YAML tree (for line numbers and saving)
    overrides: list[str]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve_path(self, value: str) -> Path:
        """Paths in a config are relative to the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def dump(self) -> str:
        """The resolved config as YAML, folder paths made absolute (so that it runs from anywhere)."""
        data = converter.unstructure(self.config)
        for folder in data["data"]["folders"]:
            folder["path"] = str(self.resolve_path(folder["path"]).resolve())
        return to_yaml(data)


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.allow_duplicate_keys = False
    return y


def to_yaml(data) -> str:
    buf = io.StringIO()
    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    y.sort_base_mapping_type_on_output = False
    y.dump(data, buf)
    return buf.getvalue()


def load_config(path: str | Path, overrides: list[str] = (), pm=None, sweep_check: bool = True) -> LoadedConfig:
    """Load, override, structure and (with a plugin manager) check a config file.

    Raises ConfigError with every problem found.
    """
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{where}: no such file ({path.absolute()})"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{where}: cannot read the file ({exc})"]) from None
    try:
        doc = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p).replace("\n", " ")
        raise ConfigError([f"{where}:{line}: $: YAML error: {problem}"]) from None
    except YAMLError as exc:
        raise ConfigError([f"{where}:0: $: YAML error: {str(exc).splitlines()[0]}"]) from None
    if doc is None:
        raise ConfigError([f"{where}:1: $: the config is empty (`vtopt init FILE` writes a commented one)"])
    if not isinstance(doc, CommentedMap):
        raise ConfigError([f"{where}:1: $: the config must be a mapping of sections, got {_describe(_plain(doc))}"])
    set_lines = {}
    for item in overrides:
        parts = _apply_override(doc, item, where)
        set_lines[tuple(parts)] = item
    data = _plain(doc, where=where)
    try:
        config = converter.structure(data, Config)
    except (ClassValidationError, IterableValidationError) as exc:
        raise ConfigError([_line(where, doc, parts, msg, set_lines) for parts, msg in _walk(exc, [])]) from None
    loaded = LoadedConfig(config, path, doc, list(overrides))
    if pm is not None:
        problems = check_config(loaded, pm, sweep_check)
        if problems:
            raise ConfigError([_line(where, doc, parts, msg, set_lines) for parts, msg in problems])
    return loaded


def _apply_override(doc: CommentedMap, item: str, where: str) -> list:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError([f"{where}: --set {item}: expected KEY.PATH=VALUE"])
    parts: list[Any] = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
    try:
        value = _yaml().load(raw) if raw.strip() else ""
    except YAMLError as exc:
        raise ConfigError([f"{where}: --set {item}: value is not valid YAML ({str(exc).splitlines()[0]})"]) from None
    node = doc
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif isinstance(node, CommentedMap):
            if part not in node or node[part] is None:
                node[part] = CommentedMap()
            node = node[part]
        else:
            path = _fmt_path(parts[: i + 1])
            raise ConfigError([f"{where}: --set {item}: {path} is not a mapping"])
    last = parts[-1]
    if isinstance(node, CommentedSeq) and isinstance(last, int) and last < len(node):
        node[last] = value
    elif isinstance(node, CommentedMap):
        node[last] = value
    else:
        raise ConfigError([f"{where}: --set {item}: {_fmt_path(parts[:-1])} is not a mapping"])
    return parts


def _plain(node, where: str = "", _count=None):
    """Round-trip YAML nodes to plain dicts/lists/scalars, refusing alias bombs."""
    if _count is None:
        _count = [0]
    _count[0] += 1
    if _count[0] > MAX_YAML_NODES:
        raise ConfigError([f"{where}:1: $: the document expands to more than {MAX_YAML_NODES} nodes (alias bomb?)"])
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, (str, int, float, bool)) else k: _plain(v, where, _count)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, where, _count) for v in node]
    if node is None or isinstance(node, bool):
        return node
    for base in (int, float, str):  # ruamel's ScalarInt, ScalarFloat, quoted strings ...
        if isinstance(node, base):
            return base(node)
    return str(node)  # timestamps, tagged scalars: plain text, never constructed objects


def _walk(exc, parts: list) -> list[tuple[list, str]]:
    out: list[tuple[list, str]] = []
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        with_notes, without = exc.group_exceptions()
        for inner, note in with_notes:
            sub = parts + [note.name if hasattr(note, "name") else note.index]
            out.extend(_walk(inner, sub) if isinstance(inner, (ClassValidationError, IterableValidationError))
                       else [_message(inner, sub, note.type)])
        for inner in without:
            out.extend(_walk(inner, parts) if isinstance(inner, (ClassValidationError, IterableValidationError))
                       else [_message(inner, parts, None)])
    else:
        out.append(_message(exc, parts, None))
    return out


def _message(exc: BaseException, parts: list, type_) -> tuple[list, str]:
    if isinstance(exc, ForbiddenExtraKeysError):
        allowed = sorted(a.name for a in attrs.fields(exc.cl)) if attrs.has(exc.cl) else []
        extra = sorted(exc.extra_fields)
        return parts + [extra[0]], f"unknown key {', '.join(map(repr, extra))}; allowed: {', '.join(allowed)}"
    text = str(exc)
    if "not in literal" in text:
        choices = [repr(a) for a in getattr(type_, "__args__", ())]
        return parts, f"{text.split(' not in literal')[0]!r} is not one of {', '.join(choices)}"
    if isinstance(exc, KeyError):
        return parts, "required key missing"
    if isinstance(exc, AttributeError) and "object has no attribute" in text:
        return parts, "expected a mapping"
    if isinstance(exc, (TypeError, ValueError)):
        if attrs.has(type_) or "has no attribute" in text:
            return parts, "expected a mapping"
        if "is not iterable" in text or "object is not" in text:
            return parts, "expected a list"
        return parts, text
    return parts, f"{type(exc).__name__}: {exc}"


def _fmt_path(parts) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _locate(doc, parts) -> int:
    node, line = doc, (doc.lc.line + 1 if hasattr(doc, "lc") else 1)
    for part in parts:
        try:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line = node.lc.item(part)[0] + 1
            else:
                break
        except (KeyError, TypeError):  # a node added by --set has no position
            break
        node = node[part]
    return line


def _line(where: str, doc, parts, message: str, set_lines: dict) -> str:
    for n in range(len(parts), 0, -1):
        if tuple(parts[:n]) in set_lines:
            return f"{where}: --set {set_lines[tuple(parts[:n])]}: {_fmt_path(parts)}: {message}"
    return f"{where}:{_locate(doc, parts)}: {_fmt_path(parts)}: {message}"


# -- semantic checks ------------------------------------------------------------------


def check_config(loaded: LoadedConfig, pm, sweep_check: bool = True) -> list[tuple[list, str]]:
    """Checks that need the plugin registries and the file system."""
    cfg = loaded.config
    problems: list[tuple[list, str]] = []

    def component(kind: str, comp, parts: list):
        try:
            return pm.create(kind, comp.name, comp.params)
        except UnknownComponent as exc:
            problems.append((parts + ["name"], str(exc)))
        except ParamError as exc:
            problems.append((parts + ["params"] + ([exc.key] if exc.key else []), exc.message))
        return None

    algorithm = component("algorithm", cfg.algorithm, ["algorithm"])
    curriculum = component("curriculum", cfg.curriculum, ["curriculum"])
    for stage, settings in (getattr(curriculum, "overrides", None) or {}).items():
        if algorithm is None:
            break
        where = ["curriculum", "params", "overrides", stage]
        if not hasattr(algorithm, "check_update"):
            problems.append((where, f"algorithm {cfg.algorithm.name!r} cannot change settings mid-run"))
            continue
        try:
            algorithm.check_update(**settings)
        except (ValueError, TypeError) as exc:
            problems.append((where, str(exc)))
    for i, mon in enumerate(cfg.monitors):
        component("monitor", mon, ["monitors", i])
    executors = pm.components("executor")
    if cfg.resources.executor not in executors:
        problems.append((["resources", "executor"], f"unknown executor {cfg.resources.executor!r}; available: "
                         + ", ".join(f"{n} (from {c.plugin})" for n, c in sorted(executors.items()))))
    metrics = pm.components("metric")
    for name in cfg.reward.weights:
        if name not in metrics:
            listing = ", ".join(f"{n} (from {c.plugin})" for n, c in sorted(metrics.items()))
            problems.append((["reward", "weights", name], f"unknown metric {name!r}; available: {listing}"))
    for name, params in cfg.reward.params.items():
        where = ["reward", "params", name]
        if name not in cfg.reward.weights and name not in REPORTED:
            problems.append((where, f"metric {name!r} has params but no weight in reward.weights"))
            continue
        if name in metrics:
            try:
                pm.create("metric", name, params)
            except ParamError as exc:
                problems.append((where + ([exc.key] if exc.key else []), exc.message))
    if not cfg.reward.weights:
        problems.append((["reward", "weights"], "at least one metric weight is needed"))
    for i, folder in enumerate(cfg.data.folders):
        p = loaded.resolve_path(folder.path)
        if not p.is_dir():
            problems.append((["data", "folders", i, "path"], f"{p.absolute()} " + (
                "is not a folder" if p.exists() else "does not exist")))
        elif not _has_images(p, folder.kind is None):
            problems.append((["data", "folders", i, "path"], f"{p} holds no image files "
                             f"({', '.join(IMAGE_SUFFIXES)})"))
    if cfg.sweep is not None and sweep_check:
        from .sweep import parse_distribution

        rng = __import__("numpy").random.default_rng(0)
        for key, text in cfg.sweep.space.items():
            try:
                value = parse_distribution(text).sample(rng)
            except ValueError as exc:
                problems.append((["sweep", "space", key], str(exc)))
                continue
            try:  # the key must name a value the config takes
                load_config(loaded.path, list(loaded.overrides) + [f"{key}={json.dumps(value)}"], pm,
                            sweep_check=False)
            except ConfigError as exc:
                detail = exc.lines[0].split(": ", 1)[-1]
                problems.append((["sweep", "space", key], f"setting it to {value!r} fails: {detail}"))
    if cfg.data.synthetic is None and not cfg.data.folders:
        problems.append((["data"], "no images: enable data.synthetic or list data.folders"))
    return problems


def _has_images(folder: Path, with_subfolders: bool) -> bool:
    from .images import list_images

    if list_images(folder):
        return True
    return with_subfolders and any(sub.is_dir() and list_images(sub) for sub in folder.iterdir())


def preset_text(name: str) -> str:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return (PRESETS_DIR / f"{name}.yaml").read_text(encoding="utf-8")
