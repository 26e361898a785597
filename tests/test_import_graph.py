"""The import graph of ensprune has no cycles, between modules or between packages.

Every ``import`` statement counts, also those inside functions (a lazy import is still a
dependency); only ``if TYPE_CHECKING:`` blocks are left out. Packages are compared at the first
level below ``ensprune`` (``ensprune.study``, ``ensprune.report``, ``ensprune.rundir``, ...): the
flow runs one way (e.g. study -> report, never back).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import ensprune

ROOT = Path(ensprune.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool, modules: set[str]) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.body:  # skip: mark the nodes so walk ignores them
                for sub in ast.walk(child):
                    sub._type_only = True  # type: ignore[attr-defined]
    for node in ast.walk(tree):
        if getattr(node, "_type_only", False):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                # `from pkg import submodule` depends on the submodule; `from pkg import name`
                # on the package's __init__
                sub = f"{target}.{alias.name}"
                yield sub if sub in modules else target


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        deps = {
            dep
            for dep in _imports(tree, name, path.name == "__init__.py", set(files))
            if dep in files and dep != name
        }
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_cycle_between_packages() -> None:
    packages: dict[str, set[str]] = {}
    for module, deps in _graph().items():
        if module == "ensprune":
            continue
        here = _package(module)
        packages.setdefault(here, set()).update(
            _package(d) for d in deps if _package(d) not in (here, "ensprune")
        )
    cycle = _cycle(packages)
    assert cycle is None, "packages import each other: " + " -> ".join(cycle or [])


def test_no_cycle_between_modules() -> None:
    graph = _graph()
    # a package's __init__ re-exporting its children is not a cycle with them; a child importing
    # its package's __init__ back would be
    cycle = _cycle(graph)
    assert cycle is None, "modules import each other: " + " -> ".join(cycle or [])


def test_the_checker_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
