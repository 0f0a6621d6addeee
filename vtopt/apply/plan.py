"""What ``optimize`` and ``evaluate`` were asked, as a plan: the images and where their SVGs go, the
methods, and the reward, quality floor and limits every method runs under, each checked once here
(one error before any image runs) rather than in every worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import attrs

from ..config.checks import default_workers, make_executor, runs_here
from ..config.schema import RewardConfig, default_postprocess
from ..env.scoring import full_reward
from ..errors import ParamError, UnknownComponent, VtoptError
from ..files import atomic_write_text
from ..plugin.components import Method
from ..plugin.manager import PluginManager
from ..vtracer.images import MAX_PIXELS
from .apply import Limits, collect_inputs, model_method, output_names, run_images, summarise
from .model import method_algorithm, model_advisor
from .postprocess import check_names, parse_names


@attrs.frozen(kw_only=True)
class Request:
    """What was asked, as the command line's options name it (None: not given)."""

    command: str  # "optimize" or "evaluate"
    inputs: tuple[Path, ...]  # images and folders of images
    model: Path | None = None  # the policy's model file (None: the shipped one)
    budget: int | None = None  # conversions per image (None: the policy's)
    methods: str | None = None  # evaluate's comma-separated methods (None: the default rows)
    max_ssim_loss: float | None = None  # the quality floor (None: the policy's, else the plugins')
    postprocess: str | None = None  # comma-separated post-processors, or "none" (None: the policy's)
    out: Path | None = None  # optimize: the folder for the SVGs ...
    output: Path | None = None  # ... or one image's SVG file ("-": stdout)
    report: Path | None = None  # the rows as JSON
    force: bool = False
    skip_existing: bool = False
    executor: str | None = None
    address: str | None = None
    workers: int | None = None
    memory_limit_mb: int | None = None
    max_pixels: int = MAX_PIXELS
    downscale: bool = False
    conversion_timeout: float = 60.0
    options: Mapping[str, Any] = attrs.Factory(dict)  # every option, for the plugins' baselines

    @classmethod
    def from_options(cls, options: Mapping[str, Any], inputs: Sequence[Path]) -> "Request":
        """A request from parsed options (``vars(args)``), taking the ones it has a field for."""
        known = {f.name for f in attrs.fields(cls)} - {"inputs", "options"}
        return cls(inputs=tuple(inputs), options=dict(options), **{k: v for k, v in options.items() if k in known})


@attrs.frozen
class Plan:
    """What runs: every image through every method, under one reward, quality floor and limits."""

    request: Request
    files: list[Path]  # the images to run (with --skip-existing, those whose SVG is missing)
    outputs: list[str | None]  # each image's SVG: a file, "-" (stdout) or None (evaluate)
    skipped: int  # images left alone because their SVG exists
    methods: tuple[Method, ...]
    reward: RewardConfig  # its max_ssim_loss is the quality floor
    postprocess: tuple[str, ...]
    policy: str | None  # which model the policy is ("the chooser model PATH"), where one runs
    notes: dict[str, str]  # a line said under the table, by row label
    left_out: tuple[str, ...] = ()  # default rows that cannot run here (a plugin's missing dependency), and why
    executor: Any = None  # None when there is nothing to run
    workers: int = 1
    limits: Limits = Limits()

    def run(self, pm: PluginManager, progress: Callable | None = None) -> list[dict[str, Any]]:
        """Every image through every method; the rows, also written to the report (keeping, with
        --skip-existing, the earlier rows of the images skipped)."""
        rows = run_images(self.files, self.outputs, self.methods, self.reward.weights, self.workers,
                          progress=progress, limits=self.limits, executor=self.executor,
                          metric_params=self.reward.params, pm=pm, quality=self.reward.quality,
                          postprocess=self.postprocess)
        report = self.request.report
        if report:
            report.parent.mkdir(parents=True, exist_ok=True)
            earlier = []
            if self.request.skip_existing and report.is_file():
                try:
                    done = {r["input"] for r in rows}
                    earlier = [r for r in json.loads(report.read_text()) if r.get("input") not in done]
                except (ValueError, TypeError, AttributeError):
                    raise VtoptError(f"{report}: not a report of vtopt optimize; pass another --report") from None
            atomic_write_text(report, json.dumps(earlier + rows, indent=1))
        return rows

    def summaries(self, rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Each method's summary by row label; optimize's start with the defaults' own."""
        out = {m.label: summarise(r for r in rows if r["method"] == m.label) for m in self.methods}
        if self.request.command == "optimize":
            defaults = summarise({**r, "ssim": r["default_ssim"], "bytes": r["default_bytes"],
                                  "score": r["default_score"], "conversions": 1} for r in rows)
            out = {"defaults": {**defaults, "seconds": float("nan")}, **out}  # made once, for every method
        return out


def make_plan(pm: PluginManager, request: Request) -> Plan:
    """The plan for ``request``; a VtoptError, naming the option, for what cannot run."""
    r = request
    if r.budget is not None and not 1 <= r.budget <= 1000:
        raise VtoptError(f"--budget {r.budget}: must be in [1, 1000]")
    if r.workers is not None and r.workers < 1:
        raise VtoptError(f"--workers {r.workers}: must be at least 1")
    if not r.inputs:
        raise VtoptError(f"{r.command}: name an image or a folder of images, or pass --samples")
    files = collect_inputs(r.inputs)
    optimize = r.command == "optimize"
    wants_policy = optimize or r.methods is None or "policy" in r.methods.split(",")
    if r.model is not None and not wants_policy:
        raise VtoptError(f"--model {r.model}: 'policy' is not among --methods, so it would not be used; add it, "
                         "or compare the model as NAME=MODEL.zip")
    meta: dict[str, Any] = {}  # the policy's model: the reward it was trained for, its post-processors
    if wants_policy:
        policy, meta = model_method(r.model, r.budget)
    else:
        policy = Method("policy", r.budget or 4)
    reward = full_reward(pm, meta.get("reward_weights"), meta.get("reward_quality"),
                         meta.get("max_ssim_loss") if r.max_ssim_loss is None else r.max_ssim_loss,
                         (meta.get("reward_params") or {}) if wants_policy else None)
    if not 0 <= reward.max_ssim_loss <= 1:
        raise VtoptError(f"--max-ssim-loss {reward.max_ssim_loss}: must be in [0, 1]")
    if r.memory_limit_mb is not None and r.memory_limit_mb < 1:
        raise VtoptError(f"--memory-limit-mb {r.memory_limit_mb}: must be at least 1")
    postprocess = _postprocess(r, pm, meta if wants_policy else None)
    notes: dict[str, str] = {}
    left_out: list[str] = []
    if r.report and r.report.exists() and not (r.force or (optimize and r.skip_existing)):
        raise VtoptError(f"{r.report}: exists; pass --force to overwrite it")
    skipped = 0
    if optimize:
        files, outputs, skipped = _outputs(r, files, output_names(files))
        methods = [policy]
    else:
        outputs = [None] * len(files)
        methods, notes, left_out = _eval_methods(r, policy, pm)
    plan = Plan(r, files, outputs, skipped, tuple(methods), reward, tuple(postprocess),
                f"the {meta['algorithm']} model {policy.model}" if wants_policy else None, notes, tuple(left_out))
    return _with_executor(plan, pm) if files else plan


def _with_executor(plan: Plan, pm: PluginManager) -> Plan:
    """The plan with its executor, workers and limits: the memory one image may take is the workers'
    share of ``--memory-limit-mb``, or of this machine's available memory where they run here."""
    r = plan.request
    executor = make_executor(pm, r.executor, r.address)
    workers = r.workers or default_workers(executor)
    memory, note = r.memory_limit_mb, f"--memory-limit-mb {r.memory_limit_mb} over {workers} worker(s)"
    if memory is None and runs_here(executor):  # the workers share this machine's memory
        import psutil

        memory = psutil.virtual_memory().available // 2**20
        note = f"the {memory} MB available over {workers} worker(s)"
    limits = Limits(r.max_pixels, r.downscale, r.conversion_timeout, plan.reward.max_ssim_loss,
                    memory / workers if memory else None, note)
    return attrs.evolve(plan, executor=executor, workers=workers, limits=limits)


def _postprocess(r: Request, pm: PluginManager, meta: dict | None) -> list[str]:
    """The post-processors: ``--postprocess``, else the model file's, else the plugins' default; each
    built once here, so that a bad name or a broken factory is one error before any image runs."""
    available = list(pm.components("postprocessor"))
    if r.postprocess is not None:
        names = parse_names(r.postprocess, available)
    elif meta is not None and meta.get("postprocess") is not None:
        names = list(meta["postprocess"])
        check_names(names, available, f"{r.model or 'the shipped policy'}: postprocess")
    else:
        names = default_postprocess(pm)
    for name in names:
        try:
            pm.create("postprocessor", name)
        except ParamError as exc:
            raise VtoptError(f"post-processor {name!r}: {exc.message}") from None
    return names


def _outputs(r: Request, files: list[Path], names: list[str]) -> tuple[list[Path], list[str], int]:
    """The images to optimise, where each SVG goes (``--out DIR``, ``-o FILE`` or ``-o -``), and how many
    images were left alone because their SVG exists (``--skip-existing``)."""
    if r.output is not None:
        if len(files) != 1:
            raise VtoptError(f"-o {r.output}: takes exactly one input image, got {len(files)}; "
                             "use --out DIR for several")
        if str(r.output) == "-":
            if r.skip_existing:
                raise VtoptError("-o -: --skip-existing has nothing to skip when the SVG goes to stdout")
            return files, ["-"], 0
        if r.output.exists() and r.skip_existing:
            return [], [], 1
        if r.output.exists() and not r.force:
            raise VtoptError(f"{r.output}: exists; pass --force to overwrite it or --skip-existing to leave it")
        r.output.parent.mkdir(parents=True, exist_ok=True)
        return files, [str(r.output)], 0
    if r.out is None:
        raise VtoptError("optimize: name a folder for the SVGs (--out DIR) or one file (-o FILE, '-': stdout)")
    r.out.mkdir(parents=True, exist_ok=True)
    outputs = [str(r.out / n) for n in names]
    existing = {i for i, o in enumerate(outputs) if Path(o).exists()}
    if existing and r.skip_existing:
        keep = [i for i in range(len(files)) if i not in existing]
        return [files[i] for i in keep], [outputs[i] for i in keep], len(existing)
    if existing and not r.force:
        raise VtoptError(f"{outputs[min(existing)]}: exists ({len(existing)} output(s) would be overwritten); "
                         "pass --force to overwrite them or --skip-existing to leave them")
    return files, outputs, 0


def _eval_methods(r: Request, policy: Method, pm: PluginManager) -> tuple[list[Method], dict[str, str], list[str]]:
    """The methods ``--methods`` names (by default: policy, defaults and the plugins' default baselines),
    each built once here; the notes said under the table (which model a row is, a baseline's own); and
    the default rows left out, each with why."""
    budget = policy.budget
    offered = pm.baselines_by_plugin(budget, r.options)
    baselines = {b.name: (b, plugin) for plugin, bs in offered.items() for b in bs}
    explicit = r.methods is not None
    names = ([m.strip() for m in r.methods.split(",") if m.strip()] if explicit
             else ["policy", "defaults", *(name for name, (b, _) in baselines.items() if b.evaluate)])
    chosen: list[tuple[Method, str]] = []  # each method, and how an error names it
    for name in names:
        if name == "policy":
            chosen.append((policy, "method 'policy'"))
        elif name == "defaults":
            chosen.append((Method("defaults", 1), "method 'defaults'"))
        elif name in baselines:
            baseline, plugin = baselines[name]
            chosen.append((baseline.method, f"baseline {name!r} of plugin {plugin!r}"))
        elif "=" in name:
            label, model = name.split("=", 1)
            chosen.append((Method(label, budget, model=model), f"method {label!r}"))
        elif name in pm.components("algorithm"):
            chosen.append((Method(name, budget, algorithm=name), f"method {name!r}"))
        else:
            raise VtoptError(f"--methods: {name!r} is none of policy, defaults, NAME=MODEL.zip, the baselines ("
                             + (", ".join(baselines) or "none") + ") or the algorithms ("
                             + ", ".join(sorted(pm.components("algorithm"))) + ")")
    if not chosen:
        raise VtoptError("--methods: name at least one method")
    labels = [m.label for m, _ in chosen]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise VtoptError(f"--methods: more than one method labelled {', '.join(map(repr, twice))}; give each its "
                         "own label, e.g. NAME2=MODEL.zip")
    usable, notes, left_out = [], {}, []
    for m, what in chosen:
        source = f"algorithm {m.algorithm!r}" if m.model is None else f"model {m.model}"
        try:
            _, meta = method_algorithm(pm, m)
        except UnknownComponent as exc:
            raise VtoptError(f"{what}: {exc}") from None
        except ParamError as exc:
            if explicit:
                key = f"{exc.key}: " if exc.key else ""
                raise VtoptError(f"{what}: {source}: {key}{exc.message}") from None
            # a default row whose plugin lacks an optional dependency (e.g. Optuna): left out, and said
            left_out.append(f"{m.label} is left out: {source}: {exc.message}")
            continue
        if m.model is not None:  # the footer says which model the row is
            notes[m.label] = f"the {meta['algorithm']} model {m.model}"
            model_advisor(pm, meta, m.model)  # a model trained on an advisor needs that one: checked here, once
        usable.append(m)
    # a baseline's own note, for the baselines chosen (not for a NAME=MODEL.zip that took a baseline's name)
    notes.update({b.method.label: b.note for name, (b, _) in baselines.items() if b.note and name in names})
    return usable, notes, left_out
