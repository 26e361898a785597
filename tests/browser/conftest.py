"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Playwright.

The tests skip when Playwright or the browser is missing, unless ``ENSPRUNE_REQUIRE_BROWSER=1``
(set by ``.ci/run``, which installs both) turns a missing browser into a failure. Playwright's own
browser downloads are never used: the system binary is launched through ``executable_path``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def chromium_path() -> str | None:
    """``$ENSPRUNE_CHROMIUM``, else Debian's /usr/bin/chromium, else one on PATH."""
    for candidate in (os.environ.get("ENSPRUNE_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _unavailable(reason: str) -> None:
    if os.environ.get("ENSPRUNE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"ENSPRUNE_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium browser (Playwright ``Browser``)."""
    if importlib.util.find_spec("playwright") is None:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    executable = chromium_path()
    if executable is None:
        _unavailable("no chromium binary (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chrome = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chrome
        finally:
            chrome.close()


@dataclass
class PageLog:
    """What a page reported while it was open."""

    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    requests: list[str] = field(default_factory=list)  # every URL the page asked for


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, PageLog]]:
    """A fresh page with its console errors, page errors and requests recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    log = PageLog()
    tab.on("console", lambda m: log.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda exc: log.errors.append(str(exc)))
    tab.on("request", lambda r: log.requests.append(r.url))
    try:
        yield tab, log
    finally:
        context.close()
