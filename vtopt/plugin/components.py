"""The interfaces a plugin's components implement, one per kind.

A plugin registers *factories* (usually classes) under names through the
``vtopt_register_*`` hooks in :mod:`vtopt.plugin.hookspecs`; the YAML names a
component and its ``params``, and vtopt calls ``factory(**params)``. A
factory must be cheap (``vtopt validate`` calls it) and must reject bad
params by raising :class:`vtopt.errors.ParamError`, TypeError or ValueError.

These are typing Protocols: implement the methods, no base class is needed.
"""

from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import attrs
import numpy as np
import structlog

from ..vtracer.images import LogoImage, to_gray


class Sample:
    """One conversion of one image, as a metric sees it.

    ``defaults`` is the same image converted with VTracer's defaults, or None
    when this sample *is* the defaults' conversion. ``rendered`` is the SVG
    drawn back (uint8 RGB, composited on the same background as
    ``image.rgb``); given as None, it is drawn when first read (the defaults'
    sample, kept for every image, keeps only its SVG until a metric asks).
    """

    def __init__(self, image: LogoImage, svg: str, rendered: np.ndarray | None, defaults: Sample | None):
        self.image = image
        self.svg = svg
        if rendered is not None:
            self.rendered = rendered
        self.defaults = defaults
        self.svg_bytes = len(svg.encode())
        self.paths = svg.count("<path")

    @cached_property
    def rendered(self) -> np.ndarray:
        from ..vtracer.vectorize import render

        return render(self.svg, *self.image.size)

    @cached_property
    def gray(self) -> np.ndarray:
        return to_gray(self.rendered)


@runtime_checkable
class Metric(Protocol):
    """A number computed from (original, rendered, svg)."""

    def prepare(self, image: LogoImage) -> Any:
        """Per-image state (e.g. reference statistics); called once per image and cached."""

    def compute(self, sample: Sample, state: Any) -> float:
        """The metric of one sample; ``state`` is what :meth:`prepare` returned."""


@attrs.define
class RunInfo:
    """What monitors receive as ``run`` with every event.

    ``resumed`` is True when the run continues from a checkpoint (its earlier
    segment's files are in ``out_dir``), False for a fresh run (``--force``
    has cleared ``out_dir``): a monitor that appends to a file of its own
    starts it afresh unless resumed.
    """

    name: str
    out_dir: Path
    config: Any  # vtopt.config.schema.Config, the resolved config
    total_timesteps: int
    n_envs: int
    kinds: list[str]
    resumed: bool = False
    started: float = attrs.field(factory=time.time)
    notify: Any = attrs.field(default=None, repr=False)  # the plugin manager's alert facade

    def alert(self, alert: str, message: str, timesteps: int) -> None:
        """Raise an alert: every plugin's ``vtopt_alert`` hears it, and the console shows it."""
        structlog.get_logger("vtopt.run").warning("alert", alert=alert, message=message, timesteps=timesteps)
        if self.notify is not None:
            self.notify(self, alert, message, timesteps)


@runtime_checkable
class Curriculum(Protocol):
    """Decides which kinds of image the environments serve, and when to move on."""

    def start(self, kinds: Sequence[str]) -> None:
        """Called once before training with the kinds present in the training set."""

    def weights(self) -> Mapping[str, float]:
        """Sampling weight per kind (kinds left out get none); re-read after each episode."""

    def stage(self) -> str | None:
        """A name for the current stage (a change is reported to monitors), or None."""

    def record(self, kind: str, score: float, timesteps: int) -> None:
        """One finished episode: its image kind, its return, and the timesteps so far.

        A ``reference`` keyword, if the method takes one, receives what the
        shipped fixed portfolio gains over the defaults on the same image at
        the same budget (polygon mode where vtopt ships none): the env then
        converts it once per image, which only such curricula pay for."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state, saved with checkpoints."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


@attrs.define
class TrainContext:
    """What the core hands an algorithm's :meth:`Algorithm.learn`.

    ``env`` is a stable-baselines3 ``VecEnv`` of vtopt environments (the
    common vector-env interface; non-SB3 algorithms can step it too).
    ``on_step`` must be called after every vector step with the step's
    infos and dones and the total timesteps so far; it returns False when
    training must stop (a signal, early stopping). With ``resume_from``,
    load that file and train only up to ``total_timesteps`` in all: ``start_timesteps``
    of them were done before (count on from there when calling ``on_step``).
    An algorithm whose settings can change mid-run (for curriculum stages)
    implements ``update(**settings)``. ``on_rollout_end`` is called when a learner
    finishes collecting a batch, if it has such a notion.
    """

    env: Any
    images: Sequence[LogoImage]  # the training images (for search-based algorithms)
    scorer: Any  # vtopt.env.scoring.Scorer: ``scorer.evaluate(image, params).score``
    total_timesteps: int
    seed: int
    device: str
    threads: int
    run_dir: Path
    on_step: Callable[[Sequence[dict], np.ndarray, int], bool]
    on_rollout_end: Callable[[int], None]
    resume_from: Path | None = None  # a model file to continue from (its timesteps count as done)
    start_timesteps: int = 0  # timesteps done before this segment: train ``total_timesteps - start_timesteps``


@runtime_checkable
class Algorithm(Protocol):
    """Learns from the environment and proposes parameters for an image."""

    def learn(self, ctx: TrainContext) -> None:
        """Train for ``ctx.total_timesteps`` environment steps."""

    def save(self, path: Path) -> None:
        """Write everything needed to act again (policy, normalisation) to one file."""

    def load(self, path: Path) -> None:
        """Restore what :meth:`save` wrote, ready for :meth:`predict`."""

    def predict(self, observation: np.ndarray, deterministic: bool = True) -> np.ndarray | dict | None:
        """What to convert next, given one (unbatched) observation.

        An action in ``[-1, 1]^n`` (mapped by :mod:`vtopt.vtracer.params`), or a
        parameter dict (completed with VTracer's defaults), or None to stop
        searching this image before its budget is spent. An algorithm that
        wants to hear how each image goes is a :class:`SearchAlgorithm`.
        """


@runtime_checkable
class Executor(Protocol):
    """Runs many independent jobs: images to optimise, trials of a sweep, training's environments.

    One that runs its workers elsewhere is a :class:`ClusterExecutor`; any other runs them on this
    machine: vtopt then bounds each image's memory by the memory available here, and warns of more
    training envs than this machine's cores.
    """

    def run_images(self, jobs: Sequence[tuple[str, str | None]], make_worker: Any, workers: int,
                   on_result: Callable[[int, list[dict]], None]) -> None:
        """Each job is (input path, output path or None). ``make_worker`` (a picklable
        :class:`vtopt.WorkerFactory`) builds a worker: call it once per worker process and
        ``on_result(job index, worker.run(*job))`` as each job finishes, in any order. A job whose
        worker died gets ``on_result(index, make_worker.error_rows(job, message))``: a failed image is
        a row with an error, never an exception."""

    def run_sweep(self, trial: Any, space: Mapping[str, Any], samples: int, out_dir: Path,
                  sweep: Any) -> list[dict]:
        """Run ``samples`` trials: ``trial(values, trial_dir)`` (a picklable :class:`vtopt.Trial`;
        ``on_evaluated=`` receives each evaluation's figures, for early stopping) with values drawn
        from ``space`` (config key path -> :class:`vtopt.Distribution`, with ``sample(rng)``);
        return one row per trial. ``sweep`` is the config's sweep section (metric, scheduler,
        seed); ``trial.total_timesteps`` is each trial's length. Let :class:`vtopt.Interrupted`
        through; any other exception in a trial is that trial's row (score None, error)."""

    def make_vec_env(self, env_fn: Callable[[], Any], n_envs: int,
                     on_replaced: Callable[[int, str], None] | None) -> Any:
        """Training's ``n_envs`` environments, each built by calling the picklable ``env_fn`` where it
        runs, as a stable-baselines3 ``VecEnv`` (:class:`vtopt.HostedVecEnv` needs only a way to send
        and receive; :func:`vtopt.local_vec_env` runs them here). One that dies may be replaced, its
        episode dropped, and ``on_replaced(slot, reason)`` told."""


@runtime_checkable
class PostProcessor(Protocol):
    """Rewrites a finished SVG to draw the same picture in fewer bytes (``postprocess``).

    vtopt renders what :meth:`process` returns and compares it with the unprocessed SVG's render;
    a result that fails to render, or whose quality moves past :data:`vtopt.POSTPROCESS_TOLERANCE`,
    is dropped with a note, so a post-processor may be aggressive but cannot lose a result.
    """

    def process(self, svg: str) -> str:
        """One SVG document in, one SVG document out (raise on input it cannot handle)."""


@runtime_checkable
class Monitor(Protocol):
    """Any object with event hooks (``vtopt_run_started`` ...); registered for one run.

    A monitor implements any subset of the event hooks in
    :mod:`vtopt.plugin.hookspecs` as methods marked with ``@vtopt.hookimpl``.
    """


# -- capabilities: optional protocols a component implements whole; vtopt checks them with isinstance --


@runtime_checkable
class SearchAlgorithm(Algorithm, Protocol):
    """An Algorithm that searches each image, told what each conversion gave.

    It implements both methods (one that has only one of them is refused when it is created), and
    both take the keyword (``default``, ``outcome``), though they may ignore it.
    """

    def start_image(self, image: LogoImage, default: Any = None) -> None:
        """Before an image's first proposal; ``default``: the defaults' :class:`vtopt.env.scoring.Outcome`."""

    def observe(self, params: dict[str, Any], score: float, outcome: Any = None) -> None:
        """After each conversion; ``score`` is -inf for a failed one, ``outcome`` the whole Outcome."""


@runtime_checkable
class Validating(Protocol):
    """Any component whose params need a costly check (one that imports a heavy library).

    A factory must be cheap; ``validate()`` is where such a check goes. vtopt
    calls it right after the factory when it checks a config or builds a
    component to train, but not when it loads a model file to predict (that
    file's params were validated when it was trained). Raise ParamError.
    """

    def validate(self) -> None: ...


@runtime_checkable
class UpdatableAlgorithm(Algorithm, Protocol):
    """An Algorithm whose settings can change mid-run: what curriculum stages' ``overrides`` use."""

    def check_update(self, **settings: Any) -> None:
        """Raise ValueError unless :meth:`update` would accept ``settings`` (called at validation)."""

    def update(self, **settings: Any) -> None:
        """Apply ``settings`` now (before ``learn``: at its start)."""


@runtime_checkable
class StagedCurriculum(Curriculum, Protocol):
    """A Curriculum with per-stage algorithm settings, applied through :class:`UpdatableAlgorithm`."""

    overrides: Mapping[str, Mapping[str, Any]]  # stage name -> settings; validated with ``check_update``

    def algorithm_overrides(self) -> Mapping[str, Any]:
        """The settings of the current stage, passed to ``algorithm.update`` when the stage begins."""


@runtime_checkable
class ClusterExecutor(Executor, Protocol):
    """An Executor whose workers run elsewhere (the ``ray`` executor: on a cluster)."""

    def default_workers(self) -> int:
        """How many workers to use when the user names none (e.g. the cluster's CPUs)."""


#: The interface each kind of component implements (a monitor may be any object).
INTERFACES: dict[str, type] = {"algorithm": Algorithm, "curriculum": Curriculum, "metric": Metric,
                               "executor": Executor, "postprocessor": PostProcessor}
#: Capabilities by the interface they extend; each comes whole (one begun is an error).
CAPABILITIES: dict[type, tuple[type, ...]] = {Algorithm: (SearchAlgorithm, UpdatableAlgorithm),
                                              Curriculum: (StagedCurriculum,), Executor: (ClusterExecutor,)}


def _members(protocol: type) -> set[str]:
    """The public methods and attributes a protocol declares, its protocol bases' included."""
    return {name for cls in protocol.__mro__ if getattr(cls, "_is_protocol", False) and cls is not Protocol
            for name in (*vars(cls), *getattr(cls, "__annotations__", {})) if not name.startswith("_")}


def nonconformance(kind: str, component: Any) -> str | None:
    """What keeps ``component`` (of ``kind``) from its interface, or from a capability it has begun to
    implement, in a few words; None when it conforms. What :meth:`vtopt.PluginManager.create` checks."""
    interface = INTERFACES.get(kind)
    if interface is None:
        return None
    for protocol in (interface, *CAPABILITIES.get(interface, ())):
        declared = _members(protocol) - (_members(interface) if protocol is not interface else set())
        has = sorted(n for n in declared if hasattr(component, n))
        if (protocol is interface or has) and not isinstance(component, protocol):
            lacking = sorted(n for n in _members(protocol) if not hasattr(component, n))
            begun = f" (it has {', '.join(has)})" if protocol is not interface else ""
            return f"is not a vtopt.{protocol.__name__}{begun}: it lacks {', '.join(lacking)}"
    return None


@attrs.frozen
class Method:
    """One way to optimise an image: a model file, or a registered algorithm with params."""

    label: str
    budget: int  # conversions per image, the defaults' included
    algorithm: str | None = None
    params: dict = attrs.Factory(dict)
    model: str | None = None


@attrs.frozen
class Baseline:
    """A reference method a plugin offers (``vtopt_baselines``): what a policy is compared with."""

    name: str  # what ``vtopt evaluate --methods`` calls it
    method: Method  # what runs; its label names the row
    evaluate: bool = True  # one of ``evaluate``'s rows by default (False: only when --methods names it)
    training: bool = False  # also run, at the run's budget, by a training run's final evaluation
    note: str = ""  # a line printed under ``evaluate``'s table when the row is in it


@runtime_checkable
class Command(Protocol):
    """A command of the ``vtopt`` command line (``vtopt_add_commands``; the built-ins are the modules
    of :mod:`vtopt.cli.commands`). A module with these names is one. Optional: ``needs_plugins = False``
    for a command that still runs when a plugin cannot load."""

    name: str  # vtopt NAME
    help: str  # its line in ``vtopt --help``

    def add_arguments(self, parser: Any) -> None:
        """Add the command's arguments to its ``argparse`` parser (and set its description, if any)."""

    def run(self, args: Any, pm: Any) -> int:
        """Do it: ``args`` parsed (``args.argv``: the command line), ``pm`` the plugin manager; the exit code."""
