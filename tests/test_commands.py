"""The command line is a table of commands: a plugin's command runs through ``main`` like a built-in,
and one that clashes, lacks a part or crashes is one line naming its plugin."""

from pathlib import Path

import pytest

import vtopt
from vtopt.cli import main


class Count:
    """A command a plugin adds: count the PNG files in a folder."""

    name, help = "count", "count the PNG images in a folder"

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path, help="the folder")
        parser.add_argument("--at-least", type=int, default=0, help="fail below this many")

    def run(self, args, pm):
        n = len(list(args.folder.glob("*.png")))
        print(f"{n} images; {len(pm.components('algorithm'))} algorithms; {args.argv[1:]}")
        return 0 if n >= args.at_least else 1


class Adds:
    def __init__(self, *commands):
        self.commands = commands

    @vtopt.hookimpl
    def vtopt_add_commands(self):
        return list(self.commands)


def test_a_plugin_command_registered_from_code_runs_through_main(vtopt_pm, tmp_path, capsys):
    pm = vtopt_pm()
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(b"")
    pm.register(Adds(Count()), name="counter")
    assert isinstance(Count(), vtopt.Command)
    assert main(["count", str(tmp_path)], pm=pm) == 0
    out = capsys.readouterr().out
    assert out.startswith("3 images; ") and f"['count', '{tmp_path}']" in out
    assert main(["count", str(tmp_path), "--at-least", "4"], pm=pm) == 1
    assert main(["--help"], pm=pm) == 0
    assert "count the PNG images in a folder" in capsys.readouterr().out
    assert main(["plugins"], pm=pm) == 0
    assert any(line.startswith("counter ") and "command: count" in line for line in capsys.readouterr().out.splitlines())
    assert main(["count"]) == 2  # a fresh manager has no such command: argparse's usage error


@pytest.mark.parametrize("name, says", [
    ("run", "plugin 'second' (registered from code): vtopt_add_commands: command 'run' is vtopt's own"),
    # plugins registered later are called first: 'second' takes the name, and 'first' is refused
    ("count", "plugin 'first' (registered from code): vtopt_add_commands: command 'count' is added by "
              "plugin 'second' (registered from code) too"),
])
def test_a_command_name_taken_twice_is_one_line_naming_the_plugin(vtopt_pm, tmp_path, capsys, name, says):
    pm = vtopt_pm()
    clash = Count()
    clash.name = name
    pm.register(Adds(Count()), name="first")
    pm.register(Adds(clash), name="second")
    assert main(["validate", str(tmp_path / "x.yaml")], pm=pm) == 1
    assert capsys.readouterr().err.strip() == f"vtopt: error: {says}; give it another name"
    assert main(["init", str(tmp_path / "my.yaml")], pm=pm) == 0  # init needs no plugins


def test_a_plugin_command_without_run_or_that_crashes_names_its_plugin(vtopt_pm, tmp_path, capsys):
    pm = vtopt_pm()
    class Crashes(Count):
        def run(self, args, pm):
            raise ZeroDivisionError("oops")

    pm.register(Adds(Crashes()), name="crashy")
    assert main(["count", str(tmp_path)], pm=pm) == 1
    assert capsys.readouterr().err.strip() == ("vtopt: error: plugin 'crashy' (registered from code): "
                                               "command 'count'.run: ZeroDivisionError: oops")
    fresh = vtopt.PluginManager()
    fresh.register(Adds(object()), name="bare")
    assert main(["plugins"], pm=fresh) == 1
    assert "plugin 'bare' (registered from code): vtopt_add_commands: <object object" in capsys.readouterr().err
