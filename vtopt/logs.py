"""One structlog configuration for the process, made at the entry point."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(verbose: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *args: structlog.PrintLogger(sys.stderr),  # the stderr of the moment
        cache_logger_on_first_use=False,
    )
