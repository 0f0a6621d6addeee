"""The ``vtopt`` command line: ``main(argv) -> exit code``, callable from Python."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from .. import __version__
from ..config.checks import load_config
from ..config.schema import PRESETS, preset_text
from ..errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigError, Interrupted, ParamError, VtoptError
from ..logs import configure
from ..plugin.manager import PluginManager
from ..vtracer.images import MAX_PIXELS
from .optimize import _apply, _executor


def _parser(pm: PluginManager | None = None) -> argparse.ArgumentParser:
    """The command line; ``pm``'s plugins may add options to each subcommand (``vtopt_add_options``)."""
    p = argparse.ArgumentParser(prog="vtopt", description="Learn to choose VTracer's parameters per image.")
    p.add_argument("--version", action="version", version=f"vtopt {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # -v/-q are also taken after the command (``vtopt optimize ... -q``); there they leave the global value alone
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="warnings and errors only")

    commands: dict[str, argparse.ArgumentParser] = {}

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        commands[name] = sub.add_parser(name, parents=[common], **kwargs)
        return commands[name]

    def with_config(sp):
        sp.add_argument("config", type=Path, help="YAML config file")
        sp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a config value (YAML syntax), e.g. --set run.timesteps=512")

    run = command("run", help="train an agent as the config says")
    with_config(run)
    run.add_argument("--out", type=Path, help="run directory (default: runs/<run.name>)")
    run.add_argument("--force", action="store_true", help="overwrite a finished run in --out")
    run.add_argument("--executor", help="where the training environments run: local (subprocesses, the default) or "
                                        "ray (actors anywhere on a cluster); sets resources.executor")
    run.add_argument("--address", help="the cluster's address (ray: 'auto' or ray://HOST:PORT); sets resources.address")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its newest checkpoint to the configured total "
                          "(--set run.timesteps=N trains a run further)")

    val = command("validate", help="check a config without running it")
    with_config(val)

    init = command("init", help="write a commented config from a preset",
                          description="Write a commented config file from one of vtopt's presets; edit it, "
                                      "check it with `vtopt validate`, train with `vtopt run`.")
    init.add_argument("path", type=Path, help="the YAML file to write, e.g. my.yaml")
    init.add_argument("--preset", choices=PRESETS, default="default",
                      help="debug: a minute on synthetic images; cpu: a laptop-sized run; "
                           "default: the full curriculum (default: default)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    command("plugins", help="list plugins and the components they provide",
                   description="List every plugin vtopt found (built-in, installed packages, registered from "
                               "code): its package and version, and the components it registers by kind.")

    bench = command("bench", help="measure the inner loop against VTracer alone; print the figures")
    bench.add_argument("--images", type=Path, help="a folder of real images to measure on")
    bench.add_argument("--samples", action="store_true", help="measure on the sample icons shipped with vtopt")
    bench.add_argument("--sizes", default="256,512", help="image sizes in pixels (default 256,512)")
    bench.add_argument("--seconds", type=float, default=8.0, help="seconds per env-stepping measurement")
    bench.add_argument("--per-kind", type=int, default=6, help="synthetic images per kind")
    bench.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="optimize workers")
    bench.add_argument("--model", type=Path, help="policy for the optimize figure (default: the shipped one)")
    bench.add_argument("--candidates", type=int, default=16,
                       help="candidates per image for the labelling figure (default 16)")
    bench.add_argument("--json", type=Path, help="also write the figures here")
    bench.add_argument("--executor", help="also measure env steps/s with training's environments on this "
                                          "executor (ray: actors), beside local subprocesses")
    bench.add_argument("--address", help="the executor's cluster address (ray: 'auto' or ray://HOST:PORT)")

    sw = command(
        "sweep", help="run many trials over the search space in the config's sweep section",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train one run per trial, with config values drawn from the config's `sweep:` section,\n"
                    "and rank the trials by the metric. The section:\n\n"
                    "  sweep:\n"
                    "    metric: mean_score   # of each trial's evaluation: mean_score, mean_ssim, mean_improvement\n"
                    "    scheduler: fifo      # or asha: stop weak trials early on their evaluations (ray)\n"
                    "    seed: 0              # for drawing the values\n"
                    "    space:               # config key path -> distribution\n"
                    "      algorithm.params.learning_rate: loguniform(1e-4, 1e-3)\n"
                    "      algorithm.params.n_epochs: choice([4, 10])\n\n"
                    "Distributions: uniform(a, b), loguniform(a, b), randint(a, b) (a <= x < b), choice([v, ...]).\n"
                    "Each trial is a run directory OUT/trial-NNN; the ranking goes to OUT/sweep.json and sweep.csv.")
    with_config(sw)
    sw.add_argument("--trials", "--samples", dest="trials", type=int, required=True,
                    help="number of trials (--samples: the former name)")
    sw.add_argument("--out", type=Path, help="folder for the trials and the results (default: runs/<name>-sweep)")
    sw.add_argument("--executor", help="local (one trial after another), ray (Ray Tune), or a plugin's "
                                       "(default: the plugins' default, local)")
    sw.add_argument("--address", help="cluster address for the executor (ray: 'auto' or ray://HOST:PORT)")

    corpus = command("corpus", help="build a training corpus of real icons from npm's @iconify-json sets")
    corpus.add_argument("out", type=Path, help="folder for OUT/<set>/<icon>.png (one kind per set)")
    corpus.add_argument("--sets", default=None,
                        help="comma-separated icon sets (default: all of them: noto, twemoji, openmoji, "
                             "flat-color-icons, streamline-emojis, fxemoji, emojione, and logos: the allow-listed "
                             "1,854 of @iconify-json/logos, 300 of them as the validation split)")
    corpus.add_argument("--per-set", type=int, default=None,
                        help="icons sampled per set (default 400; all allow-listed logos)")
    corpus.add_argument("--validation", type=Path, default=None,
                        help="folder for the logo validation split (default: OUT-validation beside OUT)")
    corpus.add_argument("--size", type=int, default=256, help="pixels on the long side (default 256)")
    corpus.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")

    rep = command("report", help="write RUN_DIR/report.html: curves, stages, evaluation, gallery")
    rep.add_argument("run_dir", type=Path, help="a run directory written by `vtopt run` (e.g. runs/debug)")

    def with_images(sp):
        sp.add_argument("paths", type=Path, nargs="*", metavar="PATH", help="an image or a folder of images")
        sp.add_argument("--samples", action="store_true",
                        help="also take the sample icons shipped with vtopt (24 flat-colour emoji, MIT)")
        sp.add_argument("--model", type=Path, help="a model file (default: the policy shipped with vtopt)")
        sp.add_argument("--budget", type=int, help="VTracer conversions per image, the defaults' included "
                        "(default: what the model was trained for)")
        sp.add_argument("--report", type=Path, help="write the per-image rows as JSON here")
        sp.add_argument("--workers", type=int, help="worker processes (default: this machine's cores; "
                        "ray: the cluster's CPUs)")
        sp.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                        help=f"refuse larger images (default {MAX_PIXELS:,}), unless --downscale")
        sp.add_argument("--downscale", action="store_true", help="downscale images over --max-pixels (or over "
                                                                  "the memory one image may take) instead")
        sp.add_argument("--memory-limit-mb", type=int, default=None,
                        help="MB the workers may take together: each image may take this over --workers, estimated "
                             "from its pixel count before converting (default, local executor: the memory available "
                             "at the start)")
        sp.add_argument("--executor", help="where images run: local, ray, or a plugin's (default: the plugins' "
                                           "default, local)")
        sp.add_argument("--address", help="cluster address for the executor (ray: 'auto' or ray://HOST:PORT)")
        sp.add_argument("--conversion-timeout", type=float, default=60.0,
                        help="seconds one VTracer conversion may take before it is abandoned (default 60; 0: no limit)")
        sp.add_argument("--max-ssim-loss", type=float, default=None,
                        help="the quality floor: a result more than this below the defaults' SSIM never wins "
                             "(default: the model's reward.max_ssim_loss, else 0.005)")
        sp.add_argument("--postprocess", metavar="NAMES|none",
                        help="comma-separated post-processors every method's final SVG goes through, each result "
                             "rendered and kept only if it draws the same; 'none' turns the pass off (default: "
                             "the model's postprocess, else the plugins' default: lossless)")

    opt = command("optimize", help="convert images with a trained policy, keeping the best SVG of each")
    with_images(opt)
    dest = opt.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", type=Path, help="folder for <image stem>.svg files")
    dest.add_argument("-o", "--output", type=Path, metavar="FILE",
                      help="the SVG file for a single input image; '-' writes it to stdout")
    kept = opt.add_mutually_exclusive_group()
    kept.add_argument("--force", action="store_true", help="overwrite existing SVGs (and an existing --report)")
    kept.add_argument("--skip-existing", action="store_true",
                      help="leave images whose SVG exists alone (for reruns over big folders); an existing "
                           "--report keeps their earlier rows")

    ev = command("evaluate", help="compare the policy with baselines at the same budget")
    with_images(ev)
    ev.add_argument("--methods",
                    help="comma-separated: policy, defaults, a baseline that a plugin offers (`vtopt plugins` lists "
                         "them), any registered algorithm name (run at the policy's budget), or NAME=MODEL.zip "
                         "(default: policy, defaults and the plugins' default baselines)")
    ev.add_argument("--force", action="store_true", help="overwrite an existing --report")
    if pm is not None:
        for name, parser in commands.items():
            pm.add_options(name, parser)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        pm, broken = PluginManager(), None
        parser = _parser(pm)
    except VtoptError as exc:  # a plugin that cannot load, or whose options clash: --help, --version and
        pm, broken = None, exc  # init still work, without the plugins' options
        parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if broken is not None and args.command != "init":
        print(f"vtopt: error: {broken}", file=sys.stderr)
        return EXIT_FAILED
    configure(verbose=args.verbose, quiet=args.quiet)
    try:
        return _dispatch(args, pm, list(sys.argv if argv is None else ["vtopt", *argv]))
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    except (VtoptError, ParamError) as exc:
        print(f"vtopt: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"vtopt: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("vtopt: interrupted", file=sys.stderr)
        return 130


def _dispatch(args, pm: PluginManager, argv: list[str]) -> int:
    if args.command == "init":
        if args.path.exists() and not args.force:
            raise VtoptError(f"{args.path}: exists; pass --force to overwrite it")
        args.path.parent.mkdir(parents=True, exist_ok=True)
        args.path.write_text(preset_text(args.preset), encoding="utf-8")
        print(f"wrote {args.path} (preset {args.preset}); check it with: vtopt validate {args.path}")
        return EXIT_OK
    if args.command in ("optimize", "evaluate"):
        return _apply(args, pm)
    if args.command == "bench":
        from ..vtracer.images import SAMPLES
        from .bench import run_bench

        if args.samples and args.images:
            raise VtoptError("bench: --images and --samples exclude each other")
        if args.candidates < 1:
            raise VtoptError(f"bench: --candidates {args.candidates}: must be at least 1")
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        results = run_bench(SAMPLES if args.samples else args.images, sizes, args.seconds, args.per_kind,
                            args.workers, args.model, executor=args.executor, address=args.address,
                            candidates=args.candidates)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        return EXIT_OK
    if args.command == "corpus":
        from .corpus import DEFAULT_SETS, build_corpus

        if (args.per_set is not None and args.per_set < 1) or not 8 <= args.size <= 4096:
            raise VtoptError("--per-set must be >= 1 and --size in [8, 4096]")
        sets = [s.strip() for s in args.sets.split(",") if s.strip()] if args.sets else list(DEFAULT_SETS)
        counts = build_corpus(args.out, sets, args.per_set, args.size, args.seed, validation=args.validation)
        print(f"{sum(counts.values())} icons in {args.out} ({len(counts)} sets; licences in each set's LICENSE.txt)")
        return EXIT_OK
    if args.command == "report":
        from ..training.report import write_report
        from ..training.rundir import RunDirLock

        with RunDirLock(args.run_dir, create=False):  # not while a run writes there
            print(f"wrote {write_report(args.run_dir, pm)}")
        return EXIT_OK
    if args.command == "plugins":
        baselines = {plugin: {"baseline": [b.name + ("" if b.evaluate else " (on request)") for b in offered]}
                     for plugin, offered in pm.baselines_by_plugin(4, {}).items() if offered}
        for info in pm.plugins():
            where = f"{info.distribution} {info.version}" if info.distribution else "registered from code"
            provides = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in
                                 {**info.provides, **baselines.get(info.name, {})}.items()) or "event hooks only"
            print(f"{info.name:<12} {where:<20} {provides}")
        return EXIT_OK
    overrides = list(args.overrides)
    if args.command == "run":  # --executor/--address are the config's resources.executor/address
        overrides += [f"resources.{k}={json.dumps(v)}" for k in ("executor", "address")
                      if (v := getattr(args, k)) is not None]
    loaded = load_config(args.config, overrides, pm)
    for line in loaded.warnings:
        print(line, file=sys.stderr)
    if args.command == "validate":
        print(f"{args.config}: OK" + (f" ({len(loaded.warnings)} warning(s))" if loaded.warnings else ""))
        return EXIT_OK
    if args.command == "sweep":
        return _sweep(args, loaded, pm)
    from ..training.run import train

    out = args.out or Path("runs") / loaded.config.run.name
    if args.resume and args.force:
        raise VtoptError("--resume and --force exclude each other")
    try:
        summary = train(loaded, out, pm, argv=argv, force=args.force, resume=args.resume)
    except Interrupted as exc:
        print(f"vtopt: {exc}", file=sys.stderr)
        return exc.exit_code
    _print_summary(summary, out)
    return EXIT_OK


def _print_summary(summary: dict, out: Path) -> None:
    ev = summary["evaluation"]

    def f(v, fmt):
        return format(v, fmt) if v is not None else "-"

    if summary["total_timesteps"]:
        print(f"\ntrained {summary['total_timesteps']} timesteps in {summary['wall_seconds']:.1f} s "
              f"({summary['env_steps_per_second']:.1f} env steps/s, {summary['n_envs']} env(s)); run directory: {out}")
    else:  # search and label-fitted algorithms learn without stepping the environment
        print(f"\nalgorithm {summary['algorithm']!r} learned without stepping the environment (run.timesteps has "
              f"no effect on it) in {summary['wall_seconds']:.1f} s; run directory: {out}")
    if ev.get("images"):
        print(f"evaluation on {ev['images']} held-out images, {summary['conversions_per_episode']} conversions each:")
        rows = {summary["algorithm"]: ev}  # a baseline labelled as the algorithm is marked, not dropped
        rows.update({(k if k not in rows else f"{k} (baseline)"): v for k, v in ev.get("baselines", {}).items()})
        w = max(10, *map(len, rows))
        print(f"  {'':<{w}} {'mean SSIM':>10} {'mean bytes':>11} {'mean score':>11}")
        print(f"  {'defaults':<{w}} {f(ev['default_mean_ssim'], '.4f'):>10} {f(ev['default_mean_bytes'], '.0f'):>11} "
              f"{f(ev['default_mean_score'], '.4f'):>11}")
        for label, r in rows.items():
            print(f"  {label:<{w}} {f(r['mean_ssim'], '.4f'):>10} {f(r['mean_bytes'], '.0f'):>11} "
                  f"{f(r['mean_score'], '.4f'):>11}   bytes x{f(r['bytes_ratio'], '.3f')} (geometric mean)")
        print(f"  (each row: the best of the defaults and {summary['conversions_per_episode'] - 1} more conversions)")


def _sweep(args, loaded, pm: PluginManager) -> int:
    from ..training.sweep import Trial, sweep_space, write_results

    if args.trials < 1:
        raise VtoptError(f"--trials {args.trials}: must be at least 1")
    space = sweep_space(loaded)
    out = args.out or Path("runs") / f"{loaded.config.run.name}-sweep"
    if (out / "sweep.json").exists() or list(out.glob("trial-*")):
        raise VtoptError(f"{out}: holds an earlier sweep; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    try:
        trial = Trial(str(loaded.path), tuple(args.overrides), loaded.config.run.timesteps)
        rows = _executor(args, pm).run_sweep(trial, space, args.trials, out, loaded.config.sweep)
    except Interrupted as exc:
        print(f"vtopt: sweep {exc}", file=sys.stderr)
        return exc.exit_code
    print(write_results(rows, out, loaded.config.sweep.metric))
    print(f"{len(rows)} trials; results in {out / 'sweep.json'} and {out / 'sweep.csv'}")
    return EXIT_OK if all(r.get("score") is not None for r in rows) else EXIT_FAILED
