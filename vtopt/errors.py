"""Exceptions that the CLI prints as one line each, without a traceback."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

#: The command line's exit codes (an interrupted run exits with 128 + the signal, :class:`Interrupted`).
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class VtoptError(Exception):
    """A user-facing error: the message is printed as it is."""


class ParamError(ValueError):
    """A component rejects one of its params; ``key`` names it (or None for all)."""

    def __init__(self, key: str | None, message: str):
        super().__init__(message)
        self.key = key
        self.message = message

    def __reduce__(self):  # across processes (workers, Ray) with its fields
        return type(self), (self.key, self.message)


def check_param_names(owner: str, given, accepted) -> None:
    """Raise :class:`ParamError` for the first key of ``given`` not in ``accepted``, listing the accepted ones.

    The one wording of "unknown parameter" for every component, built-in or a plugin's:
    ``ppo takes no parameter 'lr'; it takes: batch_size, ...``.
    """
    accepted = sorted(accepted)
    for key in given:
        if key not in accepted:
            raise ParamError(key, f"{owner} takes no parameter {key!r}; "
                                  + (f"it takes: {', '.join(accepted)}" if accepted else "it takes none"))


def check_number(key: str, value, *, integer: bool = False, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False):
    """``value`` if it is a number (an int when ``integer``; never a bool) within the bounds, else
    :class:`ParamError` in one wording for every component: ``must be an integer >= 1, got 0``."""
    kind = "an integer" if integer else "a number"
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high}")
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    ok = ok and not isinstance(value, bool) and value == value and value not in (float("inf"), float("-inf"))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ParamError(key, f"must be {kind}{' ' + ' and '.join(bounds) if bounds else ''}, got {value!r}")
    return value


class UnknownComponent(VtoptError):
    def __init__(self, kind: str, name: str, available: dict[str, str]):
        listing = ", ".join(f"{n} (from {p})" for n, p in sorted(available.items())) or "none"
        super().__init__(f"unknown {kind} {name!r}; available: {listing}")
        self.kind, self.name, self.available = kind, name, available

    def __reduce__(self):
        return type(self), (self.kind, self.name, self.available)


class PluginFault(VtoptError):
    """A plugin's component method or hook raised (or a metric gave no finite number), in one line:
    ``plugin 'extras' (vtopt-extras 0.1.0): metric 'edges'.compute: ZeroDivisionError: ...``."""

    def __init__(self, origin: str, what: str, method: str, error: BaseException | str):
        detail = error if isinstance(error, str) else f"{type(error).__name__}: {error}".rstrip(": ")
        super().__init__(f"plugin {origin}: {what}.{method}: {detail}")
        self.origin, self.what, self.method, self.detail = origin, what, method, detail

    def __reduce__(self):
        return type(self), (self.origin, self.what, self.method, self.detail)


class Interrupted(VtoptError):
    """Training stopped by a signal after writing a checkpoint; exit code 128 + signal."""

    def __init__(self, signum: int, checkpoint: Path | None, resume: str):
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint"
        super().__init__(f"stopped by {signal.Signals(signum).name} ({where}); continue with: {resume}")
        self.exit_code = 128 + signum
        self._args = (signum, checkpoint, resume)

    def __reduce__(self):
        return type(self), self._args


class ConfigError(VtoptError):
    """One or more problems in a config; each line is ``FILE:LINE: $.path: message``. The first
    :data:`MAX_PROBLEMS` are kept, then ``... and N more``; a line over :data:`MAX_LINE` characters
    (a 5 MB value) is cut in its middle."""

    MAX_PROBLEMS = 20
    MAX_LINE = 400

    def __init__(self, lines: list[str]):
        self.all_lines = list(lines)
        shown = [self._cut(line) for line in lines[: self.MAX_PROBLEMS]]
        if len(lines) > self.MAX_PROBLEMS:
            shown.append(f"... and {len(lines) - self.MAX_PROBLEMS} more problems")
        super().__init__("\n".join(shown))
        self.lines = shown

    @classmethod
    def _cut(cls, line: str) -> str:
        if len(line) <= cls.MAX_LINE:
            return line
        head, tail = cls.MAX_LINE * 2 // 3, cls.MAX_LINE // 4
        return f"{line[:head]}[... {len(line) - head - tail} characters cut ...]{line[-tail:]}"

    def __reduce__(self):
        return type(self), (self.all_lines,)


def offending_key(exc: Exception, params: dict[str, Any]) -> str | None:
    """The param a factory's TypeError or ValueError names, if any (for :class:`ParamError`'s key)."""
    text = str(exc)
    for key in params:
        if f"'{key}'" in text:
            return key
    return None
