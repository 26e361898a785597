"""``ensprune list`` reads a generated catalog; it must equal the live registries."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ensprune.cli import list_cmd
from ensprune.cli._catalog import CATALOG


@pytest.mark.parametrize("kind", list_cmd.KINDS)
def test_catalog_equals_the_live_registry(kind: str) -> None:
    live = list_cmd.entries(kind)
    stored = [tuple(row) for row in CATALOG[kind]]
    assert stored == live, (
        f"ensprune/cli/_catalog.py is stale for {kind!r}; regenerate it with "
        "`python -m ensprune.cli.list_cmd > ensprune/cli/_catalog.py && ruff format ensprune/cli`"
    )


def test_listing_imports_no_heavy_library() -> None:
    kinds = list(list_cmd.KINDS)
    probe = (
        "import sys, contextlib, io\n"
        "from ensprune.cli import main\n"
        f"for kind in {kinds!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        main(['list', kind])\n"
        "print(','.join(m for m in ('torch', 'pandas', 'sklearn', 'scipy', 'optuna') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_installed_plugins_switch_to_the_live_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(list_cmd, "_has_entry_points", lambda kind: kind == "methods")
    monkeypatch.setattr(list_cmd, "entries", lambda kind: [("live_only", "from the registry")])
    assert list_cmd.listed("methods") == [("live_only", "from the registry")]
    assert list_cmd.listed("metrics") == [tuple(r) for r in CATALOG["metrics"]]
