"""``vtopt optimize`` and ``vtopt evaluate`` on the command line: from the parsed arguments to
:func:`vtopt.apply.apply.run_images` and its printed table."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from ..config.schema import default_section
from ..errors import EXIT_FAILED, EXIT_OK, ParamError, VtoptError
from ..files import atomic_write_text
from ..plugin.manager import PluginManager


def _apply(args, pm: PluginManager) -> int:
    from ..apply import apply
    from ..vtracer.images import SAMPLES

    if args.budget is not None and not 1 <= args.budget <= 1000:
        raise VtoptError(f"--budget {args.budget}: must be in [1, 1000]")
    if args.workers is not None and args.workers < 1:
        raise VtoptError(f"--workers {args.workers}: must be at least 1")
    if not args.paths and not args.samples:
        raise VtoptError(f"{args.command}: name an image or a folder of images, or pass --samples")
    files = apply.collect_inputs([*args.paths, *([SAMPLES] if args.samples else [])])
    optimize = args.command == "optimize"
    to_stdout = optimize and args.output is not None and str(args.output) == "-"
    console = sys.stderr if to_stdout else sys.stdout  # stdout carries the SVG alone
    wants_policy = optimize or args.methods is None or "policy" in args.methods.split(",")
    if args.model is not None and not wants_policy:
        raise VtoptError(f"--model {args.model}: 'policy' is not among --methods, so it would not be used; add it, "
                         "or compare the model as NAME=MODEL.zip")
    weights, quality, metric_params, floor = None, None, {}, args.max_ssim_loss
    if wants_policy:  # the model's reward: its weights, quality metric, metric params and floor
        policy, meta = apply.model_method(args.model, args.budget)
        weights, quality = meta.get("reward_weights"), meta.get("reward_quality")
        metric_params = meta.get("reward_params") or {}
        floor = meta.get("max_ssim_loss") if floor is None else floor
    else:
        policy = apply.Method("policy", args.budget or 4)
    if weights is None or quality is None or floor is None:  # the plugins' default reward, where no model says
        reward = default_section(pm, "reward")
        weights, quality = weights or reward.weights, quality or reward.quality
        floor = reward.max_ssim_loss if floor is None else floor
    postprocess = _postprocess(args, pm, meta if wants_policy else None)
    notes: dict[str, str] = {}  # a baseline's note, by row label, printed under the table
    skip = optimize and args.skip_existing  # a rerun: the report keeps the earlier rows of skipped images
    if args.report and args.report.exists() and not (args.force or skip):
        raise VtoptError(f"{args.report}: exists; pass --force to overwrite it")
    if optimize:
        if to_stdout and skip:
            raise VtoptError("-o -: --skip-existing has nothing to skip when the SVG goes to stdout")
        files, outputs = _outputs(args, files, apply.output_names(files))
        if not files:
            print(f"every image's SVG exists already ({args.out or args.output}); nothing to do", file=console)
            return EXIT_OK
        methods = [policy]
    else:
        outputs = [None] * len(files)
        methods, notes = _eval_methods(args, policy, pm)
    if not 0 <= floor <= 1:
        raise VtoptError(f"--max-ssim-loss {floor}: must be in [0, 1]")
    from ..config.checks import runs_here

    if args.memory_limit_mb is not None and args.memory_limit_mb < 1:
        raise VtoptError(f"--memory-limit-mb {args.memory_limit_mb}: must be at least 1")
    try:
        executor = _executor(args, pm)
        workers = args.workers or getattr(executor, "default_workers", lambda: os.cpu_count() or 1)()
        memory, note = args.memory_limit_mb, f"--memory-limit-mb {args.memory_limit_mb} over {workers} worker(s)"
        if memory is None and runs_here(executor):  # the workers share this machine's memory
            import psutil

            memory = psutil.virtual_memory().available // 2**20
            note = f"the {memory} MB available over {workers} worker(s)"
        limits = apply.Limits(args.max_pixels, args.downscale, args.conversion_timeout, floor,
                              memory / workers if memory else None, note)
        rows = apply.run_images(files, outputs, methods, weights, workers,
                                progress=None if args.quiet else apply.print_progress, limits=limits,
                                executor=executor, metric_params=metric_params, pm=pm, quality=quality,
                                postprocess=postprocess)
        if to_stdout and rows[0]["output"]:
            sys.stdout.write(Path(outputs[0]).read_text(encoding="utf-8"))
            sys.stdout.flush()
            rows[0]["output"] = "-"
    finally:
        if to_stdout:
            shutil.rmtree(Path(outputs[0]).parent, ignore_errors=True)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        earlier = []
        if skip and args.report.is_file():  # keep the rows of the images skipped this time
            try:
                done = {r["input"] for r in rows}
                earlier = [r for r in json.loads(args.report.read_text()) if r.get("input") not in done]
            except (ValueError, TypeError, AttributeError):
                raise VtoptError(f"{args.report}: not a report of vtopt optimize; pass another --report") from None
        atomic_write_text(args.report, json.dumps(earlier + rows, indent=1))
    summaries = {m.label: apply.summarise(r for r in rows if r["method"] == m.label) for m in methods}
    if optimize:
        summaries = {"defaults": apply.summarise(
            {**r, "ssim": r["default_ssim"], "bytes": r["default_bytes"], "score": r["default_score"],
             "conversions": 1} for r in rows), **summaries}
        summaries["defaults"]["seconds"] = float("nan")
    print(apply.format_table(summaries), file=console)
    reward = ", ".join(f"{k} {v:g}" for k, v in weights.items())
    print(f"(score: {reward}, relative to the defaults; quality floor: SSIM loss <= {floor:g}"
          + (f"; policy: the {meta['algorithm']} model {policy.model}" if wants_policy else "")
          + ")", file=console)
    if postprocess:
        dropped = sum(1 for r in rows if r["error"] is None and set(r["postprocess"]) != set(postprocess))
        print(f"(every row's SVG post-processed by {', '.join(postprocess)}; bytes and scores are the "
              f"post-processed SVG's, against VTracer's raw defaults; --postprocess none turns it off"
              + (f"; {dropped} result(s) kept unprocessed where a post-processor's SVG did not render the same"
                 if dropped else "") + ")", file=console)
    for label, note in notes.items():
        if label in summaries:
            print(f"({label}: {note})", file=console)
    failed = sorted({r["input"] for r in rows if r["error"]})
    for r in rows:
        if r["error"] and r["method"] == methods[0].label:
            print(f"failed: {r['error']}", file=sys.stderr)
    bloated = [r for r in rows if r["method"] == methods[0].label and any("input file's size" in n for n in r["notes"])]
    if bloated:
        print(f"note: {len(bloated)} SVG(s) over {apply.BLOAT_NOTE:g}x their input file's size, e.g. "
              f"{bloated[0]['input']}: vector output suits flat-colour art, not photo-like images", file=sys.stderr)
    where = ""
    if optimize and len(failed) < len(files):
        where = "; SVG on stdout" if to_stdout else f"; SVGs in {args.out}" if args.out else f"; SVG in {args.output}"
    print(f"{len(files) - len(failed)} of {len(files)} images done" + (f", {len(failed)} failed" if failed else "")
          + where, file=console)
    return EXIT_FAILED if failed else EXIT_OK


def _postprocess(args, pm: PluginManager, meta: dict | None) -> list[str]:
    """The post-processors: ``--postprocess``, else the model file's, else the plugins' default; each
    built once here, so that a bad name or a broken factory is one error before any image runs."""
    from ..apply.postprocess import check_names, parse_names
    from ..config.schema import default_postprocess

    available = list(pm.components("postprocessor"))
    if args.postprocess is not None:
        names = parse_names(args.postprocess, available)
    elif meta is not None and meta.get("postprocess") is not None:
        names = list(meta["postprocess"])
        check_names(names, available, f"{args.model or 'the shipped policy'}: postprocess")
    else:
        names = default_postprocess(pm)
    for name in names:
        try:
            pm.create("postprocessor", name)
        except ParamError as exc:
            raise VtoptError(f"post-processor {name!r}: {exc.message}") from None
    return names


def _outputs(args, files: list[Path], names: list[str]) -> tuple[list[Path], list[str]]:
    """The images to optimise and where each SVG goes (``--out DIR`` or ``-o FILE``/``-o -``)."""
    if args.output is not None:
        if len(files) != 1:
            raise VtoptError(f"-o {args.output}: takes exactly one input image, got {len(files)}; "
                             "use --out DIR for several")
        if str(args.output) == "-":  # written to a private file first, then to stdout
            import tempfile

            return files, [str(Path(tempfile.mkdtemp(prefix="vtopt-")) / names[0])]  # removed by _apply
        if args.output.exists() and args.skip_existing:
            return [], []
        if args.output.exists() and not args.force:
            raise VtoptError(f"{args.output}: exists; pass --force to overwrite it or --skip-existing to leave it")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        return files, [str(args.output)]
    args.out.mkdir(parents=True, exist_ok=True)
    outputs = [str(args.out / n) for n in names]
    existing = [i for i, o in enumerate(outputs) if Path(o).exists()]
    if existing and args.skip_existing:
        keep = [i for i in range(len(files)) if i not in set(existing)]
        print(f"skipping {len(existing)} image(s) whose SVG exists in {args.out}", file=sys.stderr)
        return [files[i] for i in keep], [outputs[i] for i in keep]
    if existing and not args.force:
        raise VtoptError(f"{outputs[existing[0]]}: exists ({len(existing)} output(s) would be overwritten); "
                         "pass --force to overwrite them or --skip-existing to leave them")
    return files, outputs


def _eval_methods(args, policy, pm: PluginManager) -> tuple[list, dict[str, str]]:
    """The methods ``--methods`` names (by default: policy, defaults and the plugins' default baselines),
    each checked once here rather than in every worker, and the baselines' notes by row label."""
    from ..apply.model import load_model
    from ..errors import UnknownComponent
    from ..plugin.components import Method

    budget = policy.budget
    offered = pm.baselines_by_plugin(budget, vars(args))
    baselines = {b.name: (b, plugin) for plugin, bs in offered.items() for b in bs}
    explicit = args.methods is not None
    names = ([m.strip() for m in args.methods.split(",") if m.strip()] if explicit
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
    usable, notes = [], {}
    for m, what in chosen:
        try:
            if m.algorithm is not None:
                pm.create("algorithm", m.algorithm, m.params)
        except UnknownComponent as exc:
            raise VtoptError(f"{what}: {exc}") from None
        except ParamError as exc:
            if explicit:
                key = f"{exc.key}: " if exc.key else ""
                raise VtoptError(f"{what}: algorithm {m.algorithm!r}: {key}{exc.message}") from None
            # a default row whose plugin lacks an optional dependency (e.g. Optuna): left out, and said
            print(f"note: {m.label} is left out: algorithm {m.algorithm!r}: {exc.message}", file=sys.stderr)
            continue
        if m.model is not None:  # the footer says which model the row is
            notes[m.label] = f"the {load_model(pm, Path(m.model))[1]['algorithm']} model {m.model}"
        usable.append(m)
    return usable, {**notes, **{b.method.label: b.note for b, _ in baselines.values() if b.note}}  # a baseline's own


def _executor(args, pm: PluginManager):
    return pm.create_executor(args.executor or default_section(pm, "resources").executor, args.address)
