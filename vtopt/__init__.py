"""vtopt: learn to choose VTracer's parameters per image.

This module is vtopt's public API, for plugins and for programs alike: a
plugin imports from ``vtopt`` and nothing deeper (a test holds the built-in
plugins and the examples to that). The names are loaded on first use, so
``import vtopt`` stays cheap.

- Plugins: :data:`hookimpl`, :class:`PluginManager`; the component
  interfaces :class:`Algorithm`, :class:`Curriculum`, :class:`Metric`,
  :class:`Monitor`, :class:`Executor`, :class:`PostProcessor` (with
  :data:`POSTPROCESS_TOLERANCE`, how far its result's SSIM may fall) and the capabilities
  :class:`SearchAlgorithm`, :class:`UpdatableAlgorithm`, :class:`StagedCurriculum`,
  :class:`ClusterExecutor`, :class:`Validating` (checked when a component is created); what components
  receive: :class:`Sample`, :class:`LogoImage`, :class:`TrainContext`,
  :class:`RunInfo`, :class:`Outcome`.
- Executors receive :class:`WorkerFactory` and :class:`Trial` objects to run,
  and sample a sweep's :class:`Distribution` values; one that runs training's
  environments serves each through an :class:`EnvHost` behind a :class:`HostedVecEnv` (it says how to
  send and receive, raising :class:`HostLost` for a dead host; the base replaces it, its account kept by
  :class:`EnvSlots`); :func:`local_vec_env` runs them on this machine.
- Evaluation: a plugin offers :class:`Baseline` objects (a :class:`Method` and where it
  is shown) through ``vtopt_baselines``.
- The command line: a plugin adds :class:`Command` objects (``vtopt NAME``) through ``vtopt_add_commands``.
- Errors: :class:`VtoptError`, :class:`ParamError`, :class:`ConfigError`,
  :class:`Interrupted`, :class:`PluginFault`; :func:`check_param_names` for "takes no
  parameter" and :func:`check_number` for numeric params, in vtopt's wording.
- VTracer's parameters: :data:`SPACE` (the searched ones), :data:`DEFAULT_PARAMS`,
  :func:`check_params`, :func:`params_key`, :func:`action_to_params`,
  :func:`action_size`, :func:`observation_size`; :func:`convert` and
  :func:`render` for one conversion, :func:`renderer_name`.
- Candidate pools and their labels (every candidate's real score on every image, cached on disk):
  :func:`make_pool`, :func:`label`, :class:`Labels`, :data:`DEFAULT_LABELS`; :data:`DIAGNOSTICS`, where
  a conversion differs from its image (:attr:`Outcome.diagnostics`, :attr:`Labels.diagnostics`); the environment whose
  actions pick a pool candidate or refine the best set (``env.actions: pool``): :class:`PoolEnv`,
  its refinement :data:`MOVES`, :func:`make_pool_env` (from a config).
- Images: :class:`LogoImage`; :func:`image_kind`, the curriculum kind of a real image by a fixed rule.
- Programs: :func:`load_config`, :func:`default_config` (an empty YAML's config, with the
  plugins' defaults), :func:`train`, :func:`make_scorer`, :func:`load_model`; :func:`run_images` with
  :class:`Method` (what ``optimize`` and ``evaluate`` run), :class:`Trial` (a sweep's trial).
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ConfigError, Interrupted, ParamError, PluginFault, VtoptError, check_number, check_param_names
from .plugin.manager import PluginManager, hookimpl

__version__ = "0.1.0"

#: Public names loaded on first use: name -> module.
_LAZY = {
    "Algorithm": "plugin.components", "Curriculum": "plugin.components", "Metric": "plugin.components",
    "Monitor": "plugin.components", "Executor": "plugin.components", "SearchAlgorithm": "plugin.components",
    "UpdatableAlgorithm": "plugin.components", "Validating": "plugin.components", "StagedCurriculum": "plugin.components",
    "Sample": "plugin.components", "TrainContext": "plugin.components", "RunInfo": "plugin.components",
    "LogoImage": "vtracer.images", "image_kind": "vtracer.images",
    "Outcome": "env.scoring", "make_scorer": "env.scoring", "WorkerFactory": "apply.apply",
    "Method": "plugin.components", "run_images": "apply.apply", "Trial": "training.sweep",
    "Distribution": "config.distributions", "EnvHost": "env.envworker", "EnvSlots": "env.envworker",
    "local_vec_env": "env.vecenv", "SPACE": "vtracer.params", "DEFAULT_PARAMS": "vtracer.params",
    "check_params": "vtracer.params", "params_key": "vtracer.params", "action_to_params": "vtracer.params",
    "action_size": "vtracer.params", "observation_size": "env.episodes", "convert": "vtracer.vectorize",
    "render": "vtracer.vectorize", "renderer_name": "vtracer.vectorize", "load_config": "config.checks", "train": "training.run",
    "make_gym_env": "env.poolenv", "GYM_ID": "env.registration", "KINDS": "vtracer.synthetic", "Baseline": "plugin.components",
    "load_model": "apply.model", "shipped": "apply.model", "default_config": "config.schema",
    "make_pool": "env.labels", "label": "env.labels", "Labels": "env.labels", "DEFAULT_LABELS": "config.schema",
    "PoolEnv": "env.poolenv", "MOVES": "env.poolenv", "make_pool_env": "env.poolenv",
    "PostProcessor": "plugin.components", "DIAGNOSTICS": "env.diagnose", "POSTPROCESS_TOLERANCE": "apply.postprocess",
    "Command": "plugin.components",
    "ClusterExecutor": "plugin.components", "HostedVecEnv": "env.vecenv", "HostLost": "env.vecenv",
}

__all__ = ["hookimpl", "PluginManager", "VtoptError", "ParamError", "ConfigError", "Interrupted",
           "PluginFault", "check_param_names", "check_number", *_LAZY]


importlib.import_module(".env.registration", __name__).register_with_gymnasium()  # gymnasium.make(GYM_ID), either order


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vtopt' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
