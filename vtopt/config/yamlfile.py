"""A strict YAML file: read with line numbers, ``--set KEY.PATH=VALUE`` overrides, alias bombs refused,
and problems reported as ``FILE:LINE: $.path: message``. Knows nothing of vtopt's schema."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ..errors import ConfigError

MAX_YAML_NODES = 100_000  # mappings, lists and values, aliases expanded: a config has a few hundred
MAX_YAML_DEPTH = 64  # levels of nesting: a config has fewer than ten


def read_yaml(path: Path) -> Any:
    """The round-trip YAML tree of ``path`` (duplicate keys refused); ConfigError naming FILE:LINE."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{where}: no such file ({path.absolute()})"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{where}: cannot read the file ({exc})"]) from None
    try:
        return _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p).replace("\n", " ")
        raise ConfigError([f"{where}:{line}: $: YAML error: {problem}"]) from None
    except YAMLError as exc:
        raise ConfigError([f"{where}:0: $: YAML error: {str(exc).splitlines()[0]}"]) from None
    except RecursionError:  # nesting too deep for the reader: say where it passes the limit
        raise ConfigError([f"{where}:{_deep_line(text)}: $: {_TOO_DEEP}"]) from None


_TOO_DEEP = f"nested more than {MAX_YAML_DEPTH} levels deep (a config needs fewer than ten)"


def _deep_line(text: str) -> int:
    """The line where ``text``'s nesting first passes :data:`MAX_YAML_DEPTH` (the parser, unlike the
    composer, does not recurse); the last line read if it never does."""
    from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

    depth, line = 0, 0
    try:
        for event in YAML(typ="rt").parse(text):
            line = event.start_mark.line + 1
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    break
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except YAMLError:
        pass
    return line


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.allow_duplicate_keys = False
    return y


def to_yaml(data) -> str:
    buf = io.StringIO()
    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    y.sort_base_mapping_type_on_output = False
    y.dump(data, buf)
    return buf.getvalue()


def apply_override(doc: CommentedMap, item: str, where: str) -> list:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError([f"{where}: --set {item}: expected KEY.PATH=VALUE"])
    parts: list[Any] = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
    try:
        value = _yaml().load(raw) if raw.strip() else ""
    except YAMLError as exc:
        raise ConfigError([f"{where}: --set {item}: value is not valid YAML ({str(exc).splitlines()[0]})"]) from None
    node = doc
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif isinstance(node, CommentedMap):
            if part not in node or node[part] is None:
                node[part] = CommentedMap()
            node = node[part]
        else:
            path = _fmt_path(parts[: i + 1])
            raise ConfigError([f"{where}: --set {item}: {path} is not a mapping"])
    last = parts[-1]
    if isinstance(node, CommentedSeq) and isinstance(last, int) and last < len(node):
        node[last] = value
    elif isinstance(node, CommentedMap):
        node[last] = value
    else:
        raise ConfigError([f"{where}: --set {item}: {_fmt_path(parts[:-1])} is not a mapping"])
    return parts


def plain(node, where: str = "", _count=None, _depth: int = 0):
    """Round-trip YAML nodes to plain dicts/lists/scalars, refusing documents too big (an alias bomb
    expands to millions of nodes) or nested too deep."""
    if _count is None:
        _count = [0, 1]  # nodes so far, the line of the last mapping or list
    _count[0] += 1
    line = node.lc.line + 1 if isinstance(node, (CommentedMap, CommentedSeq)) and node.lc.line is not None else None
    _count[1] = line or _count[1]
    if _count[0] > MAX_YAML_NODES:
        raise ConfigError([f"{where}:{_count[1]}: $: the document has more than {MAX_YAML_NODES} nodes (mappings, "
                           "lists and values); a config has a few hundred"])
    if _depth >= MAX_YAML_DEPTH and isinstance(node, (dict, list)):
        raise ConfigError([f"{where}:{_count[1]}: $: {_TOO_DEEP}"])
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, (str, int, float, bool)) else k: plain(v, where, _count, _depth + 1)
                for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v, where, _count, _depth + 1) for v in node]
    if node is None or isinstance(node, bool):
        return node
    for base in (int, float, str):  # ruamel's ScalarInt, ScalarFloat, quoted strings ...
        if isinstance(node, base):
            return base(node)
    return str(node)  # timestamps, tagged scalars: plain text, never constructed objects


def describe(value) -> str:
    """``str 'abc'``, ``a mapping``: a value for a message, cut when long."""
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    text = repr(value)
    if len(text) > 100:
        text = f"{text[:60]}[... {len(text) - 80} characters cut ...]{text[-20:]}"
    return f"{type(value).__name__} {text}"




def _fmt_path(parts) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _locate(doc, parts) -> tuple[int, bool]:
    """The line of the deepest node of ``parts`` in the file, and whether the file holds the whole path."""
    node, line = doc, (doc.lc.line + 1 if hasattr(doc, "lc") else 1)
    for part in parts:
        try:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line = node.lc.item(part)[0] + 1
            else:
                return line, False
        except (KeyError, TypeError):  # a node added by --set has no position
            return line, False
        node = node[part]
    return line, True


def problem_line(where: str, doc, parts, message: str, set_lines: dict) -> str:
    for n in range(len(parts), 0, -1):
        if tuple(parts[:n]) in set_lines:
            return f"{where}: --set {set_lines[tuple(parts[:n])]}: {_fmt_path(parts)}: {message}"
    line, in_file = _locate(doc, parts)
    if not in_file and message != "required key missing":  # filled in from a plugin's default
        message += " (not set in this file: a default)"
    return f"{where}:{line}: {_fmt_path(parts)}: {message}"
