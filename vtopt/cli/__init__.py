"""The ``vtopt`` command line: :func:`main` (``main(argv) -> exit code``, callable from Python)."""

from .commands import main

__all__ = ["main"]
