"""The built-in commands, one module each: a command is an object with ``name``, ``help``,
``add_arguments(parser)`` and ``run(args, pm) -> exit code`` (:class:`vtopt.plugin.components.Command`),
and a module that defines them is one. A new command is a new module here, listed in :data:`BUILTIN`;
a plugin adds its own with the ``vtopt_add_commands`` hook. Modules stay light to import (every
``vtopt`` start imports them all): what a command runs is imported in its ``run``."""

from . import bench, corpus, evaluate, init, optimize, plugins, report, run, sweep, validate

#: In the order ``vtopt --help`` lists them.
BUILTIN = (run, validate, init, plugins, bench, sweep, corpus, report, optimize, evaluate)
