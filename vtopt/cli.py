"""The ``vtopt`` command line: ``main(argv) -> exit code``, callable from Python."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .config import PRESETS, load_config, preset_text
from .errors import ConfigError, VtoptError
from .logs import configure
from .plugin_manager import PluginManager

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vtopt", description="Learn to choose VTracer's parameters per image.")
    p.add_argument("--version", action="version", version=f"vtopt {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sp):
        sp.add_argument("config", type=Path, help="YAML config file")
        sp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a config value (YAML syntax), e.g. --set run.timesteps=512")

    run = sub.add_parser("run", help="train an agent as the config says")
    with_config(run)
    run.add_argument("--out", type=Path, help="run directory (default: runs/<run.name>)")
    run.add_argument("--force", action="store_true", help="overwrite a finished run in --out")

    val = sub.add_parser("validate", help="check a config without running it")
    with_config(val)

    init = sub.add_parser("init", help="write a commented config from a preset")
    init.add_argument("path", type=Path)
    init.add_argument("--preset", choices=PRESETS, default="default")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    sub.add_parser("plugins", help="list plugins and the components they provide")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure(verbose=args.verbose, quiet=args.quiet)
    try:
        return _dispatch(args, list(sys.argv if argv is None else ["vtopt", *argv]))
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    except VtoptError as exc:
        print(f"vtopt: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("vtopt: interrupted", file=sys.stderr)
        return 130


def _dispatch(args, argv: list[str]) -> int:
    if args.command == "init":
        if args.path.exists() and not args.force:
            raise VtoptError(f"{args.path}: exists; pass --force to overwrite it")
        args.path.parent.mkdir(parents=True, exist_ok=True)
        args.path.write_text(preset_text(args.preset), encoding="utf-8")
        print(f"wrote {args.path} (preset {args.preset}); check it with: vtopt validate {args.path}")
        return EXIT_OK
    pm = PluginManager()
    if args.command == "plugins":
        for info in pm.plugins():
            where = f"{info.distribution} {info.version}" if info.distribution else "registered from code"
            provides = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.provides.items()) or "event hooks only"
            print(f"{info.name:<12} {where:<20} {provides}")
        return EXIT_OK
    loaded = load_config(args.config, args.overrides, pm)
    if args.command == "validate":
        print(f"{args.config}: OK")
        return EXIT_OK
    from .run import train

    out = args.out or Path("runs") / loaded.config.run.name
    summary = train(loaded, out, pm, argv=argv, force=args.force)
    _print_summary(summary, out)
    return EXIT_OK


def _print_summary(summary: dict, out: Path) -> None:
    ev = summary["evaluation"]

    def f(v, fmt):
        return format(v, fmt) if v is not None else "-"

    print(f"\ntrained {summary['total_timesteps']} timesteps in {summary['wall_seconds']:.1f} s "
          f"({summary['env_steps_per_second']:.1f} env steps/s, {summary['n_envs']} env(s)); run directory: {out}")
    if ev.get("images"):
        print(f"evaluation on {ev['images']} held-out images, {summary['conversions_per_episode']} conversions each:")
        print(f"  {'':<10} {'mean SSIM':>10} {'mean bytes':>11} {'mean score':>11}")
        print(f"  {'defaults':<10} {f(ev['default_mean_ssim'], '.4f'):>10} {f(ev['default_mean_bytes'], '.0f'):>11} "
              f"{f(ev['default_mean_score'], '.4f'):>11}")
        print(f"  {'policy':<10} {f(ev['mean_ssim'], '.4f'):>10} {f(ev['mean_bytes'], '.0f'):>11} "
              f"{f(ev['mean_score'], '.4f'):>11}   bytes x{f(ev['bytes_ratio'], '.3f')} (geometric mean)")
