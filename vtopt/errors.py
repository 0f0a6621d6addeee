"""Exceptions that the CLI prints as one line each, without a traceback."""

from __future__ import annotations


class VtoptError(Exception):
    """A user-facing error: the message is printed as it is."""


class ParamError(ValueError):
    """A component rejects one of its params; ``key`` names it (or None for all)."""

    def __init__(self, key: str | None, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


class UnknownComponent(VtoptError):
    def __init__(self, kind: str, name: str, available: dict[str, str]):
        listing = ", ".join(f"{n} (from {p})" for n, p in sorted(available.items())) or "none"
        super().__init__(f"unknown {kind} {name!r}; available: {listing}")
        self.kind, self.name, self.available = kind, name, available


class ConfigError(VtoptError):
    """One or more problems in a config; each line is ``FILE:LINE: $.path: message``."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines
