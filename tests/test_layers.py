"""The core's import graph, imports made inside functions included: no cycle, and packages only import downwards.

A function-level import hides a cycle; it does not break it (STYLE.md item 17). ``lint-imports``
(contracts in pyproject.toml, run by ``make test``) checks the same direction with import-linter.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "vtopt"


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = CORE) -> dict[str, set[str]]:
    """module -> the core modules it imports, wherever in the file the import is."""
    modules = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:  # `from . import x` imports the module x
                    sub = f"{source}.{alias.name}"
                    targets.add(sub if sub in modules else source)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_checker_finds_a_cycle_made_inside_a_function(tmp_path):
    pkg = tmp_path / "vtopt"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("x = 1\n\ndef f():\n    from .a import y\n")
    assert find_cycle(import_graph(pkg)) == ["vtopt.a", "vtopt.b", "vtopt.a"]


def test_no_import_cycle_among_the_core_modules():
    graph = import_graph()
    assert len(graph) > 20
    # the package itself imports its public names lazily (vtopt.__getattr__); importing it first is no cycle
    graph = {m: {t for t in deps if t != "vtopt"} for m, deps in graph.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


#: The core's packages, lowest first: a module imports only from its own package and those below it.
LAYERS = [("vtopt.errors", "vtopt.files", "vtopt.logs"), ("vtopt.vtracer",), ("vtopt.plugin",), ("vtopt.config",),
          ("vtopt.env",), ("vtopt.apply",), ("vtopt.training",), ("vtopt.cli",), ("vtopt.testing", "vtopt.__main__")]


def _layer(module: str) -> int:
    for rank, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to pyproject's import-linter layers)")


def test_packages_import_only_downwards():
    wrong = [f"{m} imports {t}" for m, deps in import_graph().items() if m != "vtopt"
             for t in sorted(deps) if t != "vtopt" and _layer(t) > _layer(m)]  # `vtopt` itself: __version__
    assert not wrong, "\n".join(wrong)


def test_the_layers_are_the_ones_import_linter_checks():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    config = tomllib.loads((CORE.parent / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in config if c["type"] == "layers")["layers"]
    assert [tuple(n.strip() for n in entry.split("|")) for entry in reversed(layers)] == LAYERS
