"""The ``vtopt`` command line: :func:`main` (``main(argv) -> exit code``, callable from Python)."""

from .commandline import main

__all__ = ["main"]
