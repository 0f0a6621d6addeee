"""The config's schema (typed sections) and :func:`load_config`.

Loading goes YAML (:mod:`vtopt.config.yamlfile`: round-trip loader, no object
construction from tags, duplicate keys rejected, ``--set`` applied) -> plain
data -> cattrs with unknown keys forbidden and no lax coercion (``"3"`` is
not an int, ``1.5`` is not an int) -> the checks against the plugin
registries and the disk (:mod:`vtopt.config.checks`). Every problem comes back as
one ``FILE:LINE: $.path: message`` line.
"""

from __future__ import annotations

import copy
import math
import typing
from pathlib import Path
from typing import Any, Literal, NewType, Union

import attrs
import cattrs
from attrs import Factory, frozen
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from ruamel.yaml.comments import CommentedMap

from ..errors import ConfigError
from ..plugin.manager import PluginManager
from ..vtracer.images import MAX_PIXELS
from ..vtracer.synthetic import KINDS
from .yamlfile import apply_override, describe, plain, problem_line, read_yaml, to_yaml

PosInt = NewType("PosInt", int)
NonNegInt = NewType("NonNegInt", int)
Budget = NewType("Budget", int)  # conversions per image, the defaults' included
ImageSize = NewType("ImageSize", int)
Fraction = NewType("Fraction", float)  # 0 <= x < 1
Name = NewType("Name", str)
NonNegFloat = NewType("NonNegFloat", float)
PostprocessNames = NewType("PostprocessNames", list)  # registered post-processors, each named once

#: The quality floor: a result whose SSIM is more than this below the defaults' never wins.
MAX_SSIM_LOSS = 0.005
PRESETS_DIR = Path(__file__).parent.parent / "presets"
PRESETS = ("debug", "cpu", "default")
#: Where labels are cached unless a config says otherwise (``env.pool.labels``, the portfolio's ``labels``).
DEFAULT_LABELS = "~/.cache/vtopt/labels"


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
    fallback: bool = False  # true: only when no data folder gives images (a warning says so)


@frozen
class FolderConfig:
    path: str
    # None: sub-folders are kinds; "auto": each image's kind by vtopt.vtracer.images.image_kind; else one kind
    kind: Union[Name, None] = None
    optional: bool = False  # true: a missing folder is skipped with a warning instead of an error


@frozen
class DataConfig:
    synthetic: Union[SyntheticConfig, None] = Factory(SyntheticConfig)
    folders: list[FolderConfig] = Factory(list)
    validation_split: Fraction = 0.2
    image_size: ImageSize = 128  # images larger than this are downscaled to fit
    max_pixels: PosInt = MAX_PIXELS  # larger files are rejected unread (decompression bombs) ...
    downscale: bool = False  # ... or, when true, downscaled to fit


@frozen
class PoolConfig:
    """The candidates of ``env.actions: pool`` (:func:`vtopt.make_pool`) and how their labels are used."""

    size: PosInt = 128  # candidates: the CLI presets, ``extra``, then seeded draws
    seed: NonNegInt = 0
    extra: list[dict[str, Any]] = Factory(list)  # parameter sets always in the pool, after the presets
    labels: Union[str, None] = DEFAULT_LABELS  # label cache folder (shared with portfolio, chooser); null: none
    replay: bool = True  # label the training images first; a labelled pick is then a lookup, not a conversion
    workers: NonNegInt = 0  # labelling processes; 0: one per core
    moves: bool = True  # refinement moves beside the picks (false: picks only, every step a lookup under replay)
    # a fitted chooser of this pool whose predicted gains and pick the observation carries ("chooser": the
    # shipped one; else a model file); None: none
    advisor: Union[str, None] = None


@frozen
class EnvConfig:
    conversions_per_episode: Budget = 4
    parallel_envs: PosInt = 1
    conversion_timeout: NonNegFloat = 0.0  # seconds; past it a conversion is abandoned (0: no limit)
    # box: an action is a point of the 9-D parameter box; pool: pick a pool candidate or refine the best set
    actions: Literal["box", "pool"] = "box"
    pool: Union[PoolConfig, None] = None  # env.actions: pool only (None there: PoolConfig's defaults)


@frozen
class MonitorConfig:
    name: str
    params: dict[str, Any] = Factory(dict)
    on_error: Literal["disable", "stop"] = "disable"  # a hook that raises: turn the monitor off, or stop the run


# The components' names, the reward's weights and its quality metric have no default here: the
# plugins give them (``vtopt_config_defaults``), and a config that names none gets theirs.


@frozen
class AlgorithmConfig:
    name: str
    params: dict[str, Any] = Factory(dict)


@frozen
class CurriculumConfig:
    name: str
    params: dict[str, Any] = Factory(dict)


@frozen(kw_only=True)
class RewardConfig:
    weights: dict[str, float]
    # the metric whose value is a result's SSIM: reported for every image and held to the quality floor
    quality: str
    # the quality floor: a result whose SSIM is more than this below the defaults' never wins
    max_ssim_loss: NonNegFloat = MAX_SSIM_LOSS
    params: dict[str, dict[str, Any]] = Factory(dict)  # metric name -> its factory's params


@frozen(kw_only=True)
class ResourcesConfig:
    threads: PosInt = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # where the training environments run: an executor's name (the plugins give the default)
    executor: str
    address: Union[str, None] = None  # the executor's cluster address (ray: 'auto' or ray://HOST:PORT)
    # MB the run's processes may take together: an alert past 90%, a stop with a checkpoint past 100% (null: no limit)
    memory_limit_mb: Union[PosInt, None] = None


@frozen
class SweepConfig:
    space: dict[str, str] = Factory(dict)  # config key path -> distribution, e.g. loguniform(1e-4, 1e-3)
    metric: Literal["mean_score", "mean_ssim", "mean_improvement"] = "mean_score"
    scheduler: Literal["fifo", "asha"] = "fifo"  # asha: stop weak trials early on evaluations (ray)
    seed: NonNegInt = 0


@frozen(kw_only=True)
class Config:
    run: RunConfig = Factory(RunConfig)
    data: DataConfig = Factory(DataConfig)
    env: EnvConfig = Factory(EnvConfig)
    algorithm: AlgorithmConfig
    curriculum: CurriculumConfig
    reward: RewardConfig
    monitors: list[MonitorConfig] = Factory(list)
    resources: ResourcesConfig
    sweep: Union[SweepConfig, None] = None
    # post-processors every final SVG goes through (recorded in model files for optimize and evaluate);
    # the plugins give the default, [] turns the pass off
    postprocess: PostprocessNames


# -- strict scalars ----------------------------------------------------------------


def _strict_int(value, _type):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {describe(value)}")
    return value


def _strict_float(value, _type):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {describe(value)}")
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    return float(value)


def _strict_str(value, _type):
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {describe(value)}")
    return value


def _strict_bool(value, _type):
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {describe(value)}")
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


def _postprocess_names(value, _type):
    if not isinstance(value, list):
        raise TypeError(f"expected a list of post-processor names ([] for none), got {describe(value)}")
    names = [_strict_str(v, str) for v in value]
    if len(set(names)) != len(names):
        raise ValueError("each post-processor may be named once")
    return names


converter.register_structure_hook(PostprocessNames, _postprocess_names)


def _strict_list(t):
    inner = converter.get_structure_hook(t)

    def hook(value, typ):
        if not isinstance(value, list):  # a string is iterable, but not a list of sections
            raise TypeError(f"expected a list, got {describe(value)}")
        return inner(value, typ)

    converter.register_structure_hook_func(lambda typ: typ == t, hook)


for _t in (list[MonitorConfig], list[FolderConfig]):
    _strict_list(_t)


# -- loading -------------------------------------------------------------------------


@attrs.define
class LoadedConfig:
    config: Config
    path: Path
    document: Any  # the round-trip YAML tree (for line numbers and saving)
    overrides: list[str]
    set_lines: dict = attrs.Factory(dict)  # an override's key path -> the override (to name it in an error)
    warnings: list[str] = attrs.Factory(list)  # FILE:LINE: $.path: message, for what is allowed but costly

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
        pool = data["env"].get("pool") or {}
        if pool.get("advisor") and ("/" in pool["advisor"] or pool["advisor"].endswith(".zip")):  # a file
            pool["advisor"] = str(self.resolve_path(pool["advisor"]).resolve())
        return to_yaml(data)


def read_config(path: str | Path, overrides: list[str] = (), pm=None) -> LoadedConfig:
    """Load, override, fill in the plugins' defaults and structure a config file (without ``pm`` the
    defaults come from a fresh :class:`PluginManager`); :func:`vtopt.config.checks.load_config` then checks it.

    Raises ConfigError with every problem found.
    """
    path = Path(path)
    where = str(path)
    doc = read_yaml(path)
    if doc is None:
        raise ConfigError([f"{where}:1: $: the config is empty (`vtopt init FILE` writes a commented one)"])
    if not isinstance(doc, CommentedMap):
        raise ConfigError([f"{where}:1: $: the config must be a mapping of sections, got {describe(plain(doc))}"])
    set_lines = {}
    for item in overrides:
        parts = apply_override(doc, item, where)
        set_lines[tuple(parts)] = item
    data = fill_plugin_defaults(plain(doc, where=where), pm or PluginManager())
    try:
        config = converter.structure(data, Config)
    except (ClassValidationError, IterableValidationError) as exc:
        raise ConfigError([problem_line(where, doc, parts, msg, set_lines) for parts, msg in _walk(exc, [])]) from None
    return LoadedConfig(config, path, doc, list(overrides), set_lines)


def _section_type(annotation: Any) -> type | None:
    """The schema section (attrs class) an annotation holds, ``Optional[...]`` unwrapped; else None."""
    if attrs.has(annotation):
        return annotation
    found = [a for a in typing.get_args(annotation) if attrs.has(a)]
    return found[0] if len(found) == 1 else None


def fill_defaults(data: dict[str, Any], defaults: dict[str, Any], section: type = Config) -> dict[str, Any]:
    """Fill ``data`` in place with what ``defaults`` has and it lacks: the schema's sections key by
    key, any other value (a list, the reward's weights, a component's params) whole. A component's
    section (one with a ``name``) takes nothing from a default that names another component: its
    params would not fit."""
    if "name" in data and "name" in defaults and data["name"] != defaults["name"]:
        return data
    types = typing.get_type_hints(section) if attrs.has(section) else {}
    for key, value in defaults.items():
        if key not in data:
            data[key] = copy.deepcopy(value)
        elif isinstance(data[key], dict) and isinstance(value, dict) and _section_type(types.get(key)) is not None:
            fill_defaults(data[key], value, _section_type(types[key]))
    return data


def fill_plugin_defaults(data: dict[str, Any], pm) -> dict[str, Any]:
    """``data`` filled with each plugin's defaults (``vtopt_config_defaults``) in call order: the first
    plugin called wins."""
    for defaults in pm.config_defaults():
        fill_defaults(data, defaults)
    return data


def default_config(pm) -> Config:
    """The config of an empty YAML file: the schema's defaults and the plugins' (``vtopt_config_defaults``).
    Raises ConfigError when no plugin gives a value the schema needs (a blocked built-in)."""
    return _default(Config, fill_plugin_defaults({}, pm), [])


def default_section(pm, name: str) -> Any:
    """One section of :func:`default_config` (``"reward"``, ``"resources"``), needing only the plugins'
    defaults for that section."""
    return _default(_section_type(typing.get_type_hints(Config)[name]), fill_plugin_defaults({}, pm).get(name, {}),
                    [name])


def default_postprocess(pm) -> list[str]:
    """The post-processors of :func:`default_config`: the plugins' default ``postprocess``."""
    return _postprocess_names(fill_plugin_defaults({}, pm).get("postprocess", []), None)


def _default(section: type, data: dict[str, Any], parts: list) -> Any:
    try:
        return converter.structure(data, section)
    except (ClassValidationError, IterableValidationError) as exc:
        raise ConfigError([f"the plugins' defaults: $.{'.'.join(map(str, parts + where))}: {message} (no plugin "
                           "gives it: is a built-in plugin blocked?)" for where, message in _walk(exc, [])]) from None


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


def preset_text(name: str) -> str:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return (PRESETS_DIR / f"{name}.yaml").read_text(encoding="utf-8")
