"""The ``vtopt`` command line: ``main(argv) -> exit code``, callable from Python.

It parses, calls the command, and turns vtopt's errors into one line and an exit code. The commands
are a table: the built-ins (:mod:`vtopt.cli.commands`, one module each) and the ones plugins add
(``vtopt_add_commands``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from .. import __version__
from ..errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigError, ParamError, PluginFault, VtoptError
from ..logs import configure
from ..plugin.manager import PluginError, PluginManager
from .commands import BUILTIN


def command_table(pm: PluginManager | None = None) -> dict[str, tuple[Any, str | None]]:
    """Each command by name, with the plugin that adds it (None: a built-in): the built-ins, then
    ``pm``'s plugins' (``vtopt_add_commands``); a name taken twice is an error naming both."""
    table: dict[str, tuple[Any, str | None]] = {c.name: (c, None) for c in BUILTIN}
    for plugin, command in pm.commands() if pm is not None else ():
        missing = [a for a in ("name", "help", "add_arguments", "run") if not hasattr(command, a)]
        if missing:
            raise PluginError(f"plugin {pm.origin(plugin)}: vtopt_add_commands: {command!r} has no "
                              f"{', '.join(missing)} (see vtopt.plugin.components.Command)")
        if command.name in table:
            owner = table[command.name][1]
            raise PluginError(f"plugin {pm.origin(plugin)}: vtopt_add_commands: command {command.name!r} is "
                              + ("vtopt's own" if owner is None else f"added by plugin {pm.origin(owner)} too")
                              + "; give it another name")
        table[command.name] = (command, plugin)
    return table


def _parser(pm: PluginManager | None = None, table: dict[str, tuple[Any, str | None]] | None = None
            ) -> argparse.ArgumentParser:
    """The command line of ``table``'s commands (default: the built-ins and ``pm``'s plugins'); ``pm``'s
    plugins may add options to each (``vtopt_add_options``)."""
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
    for name, (command, _) in (table if table is not None else command_table(pm)).items():
        parser = sub.add_parser(name, parents=[common], help=command.help)
        command.add_arguments(parser)
        if pm is not None:
            pm.add_options(name, parser)
    return p


def main(argv: Sequence[str] | None = None, pm: PluginManager | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) with ``pm`` (default: a fresh plugin
    manager; pass one to run with plugins registered from code); the exit code."""
    try:
        pm, broken = pm or PluginManager(), None
        table = command_table(pm)
        parser = _parser(pm, table)
    except VtoptError as exc:  # a plugin that cannot load, or whose options or commands clash: --help,
        pm, broken = None, exc  # --version and init still work, without the plugins' options and commands
        table = command_table()
        parser = _parser(table=table)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    command, plugin = table[args.command]
    if broken is not None and getattr(command, "needs_plugins", True):
        print(f"vtopt: error: {broken}", file=sys.stderr)
        return EXIT_FAILED
    configure(verbose=args.verbose, quiet=args.quiet)
    args.argv = list(sys.argv if argv is None else ["vtopt", *argv])  # the command line, as run.json keeps it
    try:
        return _run(command, plugin, args, pm)
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


def _run(command: Any, plugin: str | None, args: argparse.Namespace, pm: PluginManager) -> int:
    """The command's exit code; a plugin command's bug is one line naming the plugin."""
    if plugin is None:
        return command.run(args, pm)
    try:
        code = command.run(args, pm)
    except (VtoptError, ParamError, OSError):
        raise
    except Exception as exc:
        raise PluginFault(pm.origin(plugin), f"command {command.name!r}", "run", exc) from exc
    return EXIT_OK if code is None else code
