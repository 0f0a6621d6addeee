"""The checks of a config that need the plugin registries and the file system (``vtopt validate``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ConfigError, ParamError, UnknownComponent
from ..plugin.components import ClusterExecutor
from ..vtracer.images import AUTO_KIND, IMAGE_SUFFIXES, list_images
from .distributions import parse_distribution
from .schema import LoadedConfig, converter, default_section, read_config
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
        loaded.warnings = [problem_line(str(loaded.path), loaded.document, parts, msg, loaded.set_lines)
                           for parts, msg in config_warnings(loaded, pm)]
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
        try:
            is_dir, exists = p.is_dir(), p.exists()
        except OSError as exc:  # a name too long for the file system, a folder it may not enter
            problems.append((["data", "folders", i, "path"], f"{p.absolute()} cannot be read ({exc.strerror})"))
            continue
        if folder.optional and not exists:
            continue
        if not is_dir:
            problems.append((["data", "folders", i, "path"], f"{p.absolute()} " + (
                "is not a folder" if exists else "does not exist")))
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


#: What each local subprocess env beyond the machine's cores costs, measured (README, "When things go
#: wrong"): resident memory, and seconds of start-up on a loaded 2-core machine; and it adds no speed.
ENV_MB, ENV_START_SECONDS = 96, 2.6


def make_executor(pm, name: str | None = None, address: str | None = None):
    """The executor ``name`` (None: the plugins' default, their ``resources.executor``), given the
    cluster ``address`` where there is one (``--executor``, ``--address``)."""
    return pm.create_executor(name or default_section(pm, "resources").executor, address)


def runs_here(executor) -> bool:
    """Whether an executor (or its factory) runs its workers on this machine: a
    :class:`vtopt.ClusterExecutor` runs them elsewhere."""
    if isinstance(executor, type):
        return not issubclass(executor, ClusterExecutor)
    return not isinstance(executor, ClusterExecutor)


def default_workers(executor) -> int:
    """How many workers an executor uses when the user names none: a cluster's own count, else this
    machine's cores."""
    return executor.default_workers() if isinstance(executor, ClusterExecutor) else os.cpu_count() or 1


def config_warnings(loaded: LoadedConfig, pm) -> list[tuple[list, str]]:
    """What a config may ask for but will regret: more envs than this machine's cores, where they run here."""
    cfg, cores = loaded.config, os.cpu_count() or 1
    n = cfg.env.parallel_envs
    comp = pm.components("executor").get(cfg.resources.executor)
    if comp is not None and runs_here(comp.factory) and n > cores:
        extra = n - cores
        return [(["env", "parallel_envs"], f"warning: {n} envs on this machine's {cores} cores: the {extra} beyond "
                 f"the cores add no speed and cost about {extra * ENV_MB} MB and {extra * ENV_START_SECONDS:.0f} s "
                 f"of start-up ({ENV_MB} MB and {ENV_START_SECONDS} s each, measured); set it to {cores}")]
    return []


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
    return with_subfolders and any(sub.is_dir() and not sub.name.startswith(".") and list_images(sub)
                                   for sub in folder.iterdir())
