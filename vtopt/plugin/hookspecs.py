"""Every hook vtopt calls, grouped by lifecycle.

Plugins implement any subset with ``@vtopt.hookimpl``. A method or function
named ``vtopt_*`` is taken as a hook implementation even without the marker,
so that a misspelt hook name fails at start-up instead of never being
called. Arguments are passed by name; an implementation may take any subset
of a hook's arguments (so new arguments can be added without breaking old
plugins; arguments are never removed).

Call order: plugins registered later are called first (pluggy's LIFO), so
explicitly registered plugins run before entry-point plugins, which run
before the built-ins; ``tryfirst``/``trylast`` on an implementation move it.
vtopt calls each implementation itself, in that order (so that what one
raises names its plugin), and honours ``firstresult`` on a spec: the calls
stop at the first result that is not None. Hook wrappers are refused.

Hooks that need the host get it: ``pm``, the :class:`vtopt.PluginManager`
that calls them (with every plugin registered from code), so that a plugin
never builds a manager of its own (that would load the entry points again
and miss those plugins), as pytest hands its hooks ``config`` and
``pluginmanager``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import pluggy

hookspec = pluggy.HookspecMarker("vtopt")

# ---------------------------------------------------------------------------
# Components: called when the plugin manager first builds its registries.
# Each returns a mapping ``{name: factory}``; the results of all plugins are
# collected (not first-result). A name provided by two plugins is an error
# naming both. ``factory(**params)`` is called with the YAML's ``params``.
# ---------------------------------------------------------------------------

#: Each kind of component, and the hook that registers its factories.
KINDS = {
    "algorithm": "vtopt_register_algorithms",
    "curriculum": "vtopt_register_curricula",
    "metric": "vtopt_register_metrics",
    "monitor": "vtopt_register_monitors",
    "executor": "vtopt_register_executors",
    "postprocessor": "vtopt_register_postprocessors",
}


@hookspec
def vtopt_register_algorithms() -> dict[str, Callable[..., Any]]:
    """Algorithms, selected by ``algorithm.name``.

    A factory returns an object implementing
    :class:`vtopt.plugin.components.Algorithm` (``learn``, ``save``, ``load``,
    ``predict``). Example: ``return {"ppo": PPOAlgorithm}``.

    Called once per plugin manager; results of all plugins are collected.
    """


@hookspec
def vtopt_register_curricula() -> dict[str, Callable[..., Any]]:
    """Curriculum strategies, selected by ``curriculum.name``.

    A factory returns an object implementing
    :class:`vtopt.plugin.components.Curriculum`. Example: ``return {"uniform": Uniform}``.

    Called once per plugin manager; results of all plugins are collected.
    """


@hookspec
def vtopt_register_metrics() -> dict[str, Callable[..., Any]]:
    """Metrics, named as keys of ``reward.weights``.

    A factory returns an object implementing :class:`vtopt.plugin.components.Metric`
    (``prepare(image)`` once per image, ``compute(sample, state)`` per
    conversion). The metric named by ``reward.quality`` is also computed for
    every report, whatever the weights. Example: ``return {"ssim": SSIM}``.

    Called once per plugin manager; results of all plugins are collected.
    """


@hookspec
def vtopt_register_monitors() -> dict[str, Callable[..., Any]]:
    """Monitors, selected by the ``monitors`` list.

    A factory returns an object whose methods implement any of the run-event
    hooks below; vtopt registers it as a plugin for the duration of the run.
    Example: ``return {"structlog": StructlogMonitor}``.

    Called once per plugin manager; results of all plugins are collected.
    """


@hookspec
def vtopt_register_executors() -> dict[str, Callable[..., Any]]:
    """Executors, selected by ``--executor`` of ``optimize``, ``evaluate`` and ``sweep``.

    A factory returns an object implementing :class:`vtopt.plugin.components.Executor`
    (``run_images``, ``run_sweep`` and ``make_vec_env``). Example: ``return {"ray": RayExecutor}``.

    Called once per plugin manager; results of all plugins are collected.
    """


@hookspec
def vtopt_register_postprocessors() -> dict[str, Callable[..., Any]]:
    """Post-processors, selected by the ``postprocess`` list (and ``--postprocess`` of ``optimize``
    and ``evaluate``).

    A factory returns an object implementing :class:`vtopt.components.PostProcessor`
    (``process(svg) -> svg``: one SVG in, one SVG out, meant to draw the same picture in fewer bytes).
    vtopt renders every result and compares it with the unprocessed SVG's render; one that fails, or
    whose quality metric moves by more than :data:`vtopt.POSTPROCESS_TOLERANCE`, is dropped with a
    note on the row. Example: ``return {"lossless": Lossless}``.

    Called once per plugin manager; results of all plugins are collected.
    """


# ---------------------------------------------------------------------------
# Configuration and the command line: called while a config is loaded and
# checked, and while the command line is built.
# ---------------------------------------------------------------------------


@hookspec
def vtopt_config_defaults() -> dict[str, Any]:
    """Values for what a config leaves out, as a partial config.

    Example: ``return {"algorithm": {"name": "ppo"}}``. The schema's sections
    are filled in key by key; any other value (a list, the reward's weights,
    a component's params) is taken whole; a component's section takes nothing
    from a default that names another component; and what the YAML and
    ``--set`` say always wins. Results are collected; where
    two plugins give the same key, the first one called wins: the built-ins
    mark theirs ``trylast``, so any other plugin's default overrides theirs.
    """


@hookspec
def vtopt_check_config(config: Any, algorithm: Any, curriculum: Any) -> list[tuple[str, str]]:
    """Check the settings this plugin owns, once the config has its schema's shape.

    ``config`` is the loaded :class:`vtopt.config.schema.Config`; ``algorithm`` and
    ``curriculum`` are the components it names, already built (None where
    they could not be). Return ``(key path, message)`` pairs, e.g.
    ``[("curriculum.params.overrides.text", "...")]``; an empty list or None
    when all is well. Results of all plugins are collected; ``vtopt
    validate`` and ``vtopt run`` print each as ``FILE:LINE: $.path: message``.
    """


@hookspec
def vtopt_add_options(command: str, parser: Any) -> None:
    """Add command-line options to the ``argparse`` parser of subcommand ``command``.

    Called for every subcommand when the command line is built (``evaluate``,
    ``optimize``, ``run`` ...). The parsed values reach
    :func:`vtopt_baselines` as ``options``. Every implementation is called.
    """


@hookspec
def vtopt_add_commands() -> list[Any]:
    """Commands of the ``vtopt`` command line, as :class:`vtopt.Command` objects (a module will do).

    Each has ``name`` (``vtopt NAME``), ``help`` (its line in ``vtopt --help``),
    ``add_arguments(parser)`` (fills its ``argparse`` parser; ``vtopt_add_options`` is then called
    for it as for every command) and ``run(args, pm) -> int`` (``args``: the parsed options, with
    ``args.argv`` the command line; ``pm``: the plugin manager; the exit code). Called once when the
    command line is built; results of all plugins are collected. A name that vtopt or another plugin
    already uses is an error naming the plugin; an exception escaping ``run`` is one line naming it.
    """


# ---------------------------------------------------------------------------
# Evaluation: what a policy is compared with.
# ---------------------------------------------------------------------------


@hookspec
def vtopt_baselines(budget: int, options: Mapping[str, Any], pm: Any) -> list[Any]:
    """Reference methods a policy is compared with, as :class:`vtopt.Baseline` objects.

    ``budget``: the policy's conversions per image (the defaults' included),
    for methods that run at the same budget. ``options``: the command line's
    parsed options (see :func:`vtopt_add_options`); empty in a training run.
    ``pm``: the plugin manager (e.g. for ``vtopt.load_model(pm, path)``).
    Each baseline says whether it is one of ``vtopt evaluate``'s rows by
    default and whether a training run's final evaluation also runs it.
    Results of all plugins are collected; two baselines of one name are an
    error naming both plugins.
    """


@hookspec(firstresult=True)
def vtopt_reference_params(conversions: int, pm: Any) -> list[dict[str, Any]] | None:
    """The fixed parameter sets a curriculum's mastery is measured against.

    A curriculum whose ``record`` takes a ``reference`` keyword receives the
    improvement the best of these sets (and the defaults) makes on the same
    image; ``conversions`` is the episode's budget, the defaults' included;
    ``pm``: the plugin manager.
    Stops at the first non-None result; with none, the reference is the
    defaults alone (an improvement of 0).
    """


# ---------------------------------------------------------------------------
# Run events: called in the training process, in this order. Every
# registered plugin receives them (monitors from the YAML are registered for
# the run); return values are ignored. ``run`` is a
# :class:`vtopt.RunInfo` (name, out_dir, config, total_timesteps, n_envs, kinds, resumed).
# ---------------------------------------------------------------------------


@hookspec
def vtopt_run_started(run: Any) -> None:
    """Once, after the environments are up and before the first step.

    Every implementation is called; return values are ignored.
    """


@hookspec
def vtopt_episode_finished(run: Any, episode: dict[str, Any], timesteps: int) -> None:
    """After every finished episode (one image).

    ``episode`` holds: image, kind, improvement (the episode's return,
    best score minus the defaults' score), score, default_score, ssim,
    default_ssim, bytes, default_bytes, failures, errors (messages of failed
    conversions), params (the best), and reference_improvement (what the
    reference sets gained on the image, when the curriculum takes a
    reference). ``timesteps``: environment steps so far.
    Every implementation is called; return values are ignored.
    """


@hookspec
def vtopt_rollout_finished(run: Any, timesteps: int, stats: dict[str, float]) -> None:
    """When the algorithm finishes collecting a batch of experience.

    Skipped when fewer than 2 seconds and 32 timesteps passed since the
    previous one (off-policy learners end a rollout every step). ``stats`` summarises the episodes finished since the previous
    event: images, mean_ssim, default_mean_ssim, mean_bytes,
    default_mean_bytes, bytes_ratio, mean_score, default_mean_score,
    mean_improvement (keys without a value are left out), failures, and
    steps_per_s. Every implementation is called; return values are ignored.
    """


@hookspec
def vtopt_stage_changed(run: Any, previous: str | None, stage: str | None, timesteps: int) -> None:
    """When the curriculum's stage changes, and once at start: with previous=None on a fresh run, and
    on a resumed run with the stage its checkpoint was in (which may equal ``stage``).

    ``stage`` is the curriculum's name for it (None for unstaged curricula).
    Every implementation is called; return values are ignored.
    """


@hookspec
def vtopt_evaluated(run: Any, evaluation: dict[str, Any], timesteps: int) -> None:
    """After an evaluation of the policy on the held-out images.

    ``evaluation`` holds images, mean_ssim, default_mean_ssim, mean_bytes,
    default_mean_bytes, bytes_ratio (geometric mean), mean_score,
    default_mean_score, mean_improvement, per_kind, baselines (the same
    figures for simple strategies at the same budget), and rows (per image).
    Every implementation is called; return values are ignored.
    """


@hookspec
def vtopt_checkpoint_saved(run: Any, path: Path, timesteps: int) -> None:
    """After a checkpoint file has been written completely (and renamed into place).

    ``path`` is the model file; its curriculum state is beside it (``.json``).
    Every implementation is called; return values are ignored.
    """


@hookspec
def vtopt_alert(run: Any, alert: str, message: str, timesteps: int) -> None:
    """When something in the run needs a person's attention (raised with ``run.alert(...)``).

    ``alert`` names the condition (e.g. ``no_improvement``, ``failures``,
    ``score_drop``), ``message`` says it in a sentence. Every implementation
    is called; return values are ignored.
    """


@hookspec
def vtopt_run_aborted(run: Any, reason: str) -> None:
    """Once, instead of ``vtopt_run_finished``, when a started run ends early.

    ``reason`` says why (a signal, an error). Monitors close their files
    here. Every implementation is called; return values are ignored.
    """


@hookspec
def vtopt_run_finished(run: Any, summary: dict[str, Any]) -> None:
    """Once, after ``summary.json`` is written; ``summary`` is its content.

    Every implementation is called; return values are ignored.
    """
