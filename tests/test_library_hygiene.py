"""Library code never prints and never sets global logging levels; only the CLI does.

Checked on the source (every module outside ``ensprune/cli``), so a new module is covered as soon
as it exists. The exceptions copy the *caller's* levels into worker processes it started: the
study pipeline's worker set-up (``_mirror_caller``) and the log forwarding of
``WorkerLogs.installed``, which restores the worker's own level afterwards.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ensprune

ROOT = Path(ensprune.__file__).parent
GLOBAL_LOGGING = {"set_verbosity", "basicConfig", "disable_default_handler", "setLevel"}
ALLOWED = {("ensprune/study/pipeline.py", "_mirror_caller"), ("ensprune/parallel.py", "installed")}


def _library_modules() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if "cli" not in p.relative_to(ROOT).parts[:1]]


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(ROOT.parent).as_posix()
    defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]

    def enclosing(line: int) -> str:
        inside = [d for d in defs if d.lineno <= line <= (d.end_lineno or d.lineno)]
        return max(inside, key=lambda d: d.lineno).name if inside else "<module>"

    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        callee = node.func
        called = callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", "")
        where = enclosing(node.lineno)
        if called == "print" or (called in GLOBAL_LOGGING and (rel, where) not in ALLOWED):
            found.append(f"{rel}:{node.lineno} {called}() in {where}")
    return found


def test_library_code_never_prints_or_sets_logging_levels() -> None:
    offences = sorted({o for path in _library_modules() for o in _offences(path)})
    assert offences == []


def test_the_check_sees_a_print() -> None:
    tree_file = ROOT.parent / "ensprune" / "cli" / "run_cmd.py"
    assert any("print()" in o for o in _offences(tree_file))
