"""The checks of a config that need the plugin registries and the file system (``vtopt validate``)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError, ParamError, UnknownComponent
from ..vtracer.images import AUTO_KIND, IMAGE_SUFFIXES, list_images
from .distributions import parse_distribution
from .schema import LoadedConfig, converter, read_config
from .yamlfile import problem_line


def load_config(path: str | Path, overrides: list[str] = (), pm=None, sweep_check: bool = True) -> LoadedConfig:
    """Load, override, fill in the plugins' defaults, structure (:func:`vtopt.config.schema.read_config`) and
    (with a plugin manager) check a config file. Without ``pm`` the defaults come from a fresh
    :class:`PluginManager` and the checks against the registries and the disk are skipped.

    Raises ConfigError with every problem found.
    """
    loaded = read_config(path, overrides, pm)
    if pm is not None:
        problems = check_config(loaded, pm, sweep_check)
        if problems:
            raise ConfigError([problem_line(str(loaded.path), loaded.document, parts, msg, loaded.set_lines)
                               for parts, msg in problems])
    return loaded


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
    # what each plugin owns (a curriculum's overrides of the algorithm's settings ...), checked by its plugin
    data = converter.unstructure(cfg)
    for path, message in pm.check_config(cfg, algorithm, curriculum):
        problems.append((_parts(data, path), message))
    for i, mon in enumerate(cfg.monitors):
        component("monitor", mon, ["monitors", i])
    def registered(kind: str, name: str, parts: list) -> None:
        """A name the config gives that must be a registered component (its message: UnknownComponent's)."""
        comps = pm.components(kind)
        if name not in comps:
            problems.append((parts, str(UnknownComponent(kind, name, {n: c.plugin for n, c in comps.items()}))))

    registered("executor", cfg.resources.executor, ["resources", "executor"])
    for i, name in enumerate(cfg.postprocess):
        registered("postprocessor", name, ["postprocess", i])
        if name in pm.components("postprocessor"):
            try:
                pm.create("postprocessor", name)
            except ParamError as exc:
                problems.append((["postprocess", i], exc.message))
    registered("metric", cfg.reward.quality, ["reward", "quality"])
    for name in cfg.reward.weights:
        registered("metric", name, ["reward", "weights", name])
    metrics = pm.components("metric")
    for name, params in cfg.reward.params.items():
        where = ["reward", "params", name]
        if name not in cfg.reward.weights and name != cfg.reward.quality:
            problems.append((where, f"metric {name!r} has params but no weight in reward.weights "
                                    "and is not reward.quality"))
            continue
        if name in metrics:
            try:
                pm.create("metric", name, params)
            except ParamError as exc:
                problems.append((where + ([exc.key] if exc.key else []), exc.message))
    if cfg.env.pool is not None:
        if cfg.env.actions != "pool":
            problems.append((["env", "pool"], f"is used only with env.actions: pool (env.actions is "
                                              f"{cfg.env.actions!r}); remove it or set env.actions: pool"))
        else:
            from ..vtracer.params import check_params

            for i, params in enumerate(cfg.env.pool.extra):
                try:
                    check_params(dict(params))
                except ValueError as exc:
                    problems.append((["env", "pool", "extra", i], str(exc)))
    if not cfg.reward.weights:
        problems.append((["reward", "weights"], "at least one metric weight is needed"))
    for i, folder in enumerate(cfg.data.folders):
        p = loaded.resolve_path(folder.path)
        if folder.optional and not p.exists():
            continue
        if not p.is_dir():
            problems.append((["data", "folders", i, "path"], f"{p.absolute()} " + (
                "is not a folder" if p.exists() else "does not exist")))
        elif not _has_images(p, folder.kind in (None, AUTO_KIND)):
            problems.append((["data", "folders", i, "path"], f"{p} holds no image files "
                             f"({', '.join(IMAGE_SUFFIXES)})"))
    if cfg.sweep is not None and sweep_check:
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


def _parts(data, dotted: str) -> list:
    """A plugin's ``a.b.0.c`` as path parts: a number is an index only where the config has a list."""
    parts, node = [], data
    for part in dotted.split("."):
        key = int(part) if part.isdigit() and isinstance(node, list) else part
        parts.append(key)
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            node = None
    return parts


def _has_images(folder: Path, with_subfolders: bool) -> bool:

    if list_images(folder):
        return True
    return with_subfolders and any(sub.is_dir() and list_images(sub) for sub in folder.iterdir())
