"""The HTML report in a real browser: loads offline, no console errors, every figure renders."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ensprune.report import build_report

from .conftest import PageLog

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Counts the figures and how many of them rendered: a decoded <img> has a natural width, a
# plotly figure has drawn its SVG layers.
_FIGURES_JS = """() => {
  const imgs = [...document.querySelectorAll('img')];
  const plots = [...document.querySelectorAll('.js-plotly-plot, .plotly-graph-div')];
  return {
    images: imgs.length,
    imagesDrawn: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    plots: plots.length,
    plotsDrawn: plots.filter(p => p.querySelector('svg.main-svg')).length,
  };
}"""


# The ids of the plotly figures that drew their SVG layers.
_DRAWN_IDS_JS = """() => [...document.querySelectorAll('.plotly-graph-div')]
  .filter(p => p.querySelector('svg.main-svg')).map(p => p.id)"""


def test_ga_progress_renders(tmp_path: Path, page: tuple[Any, PageLog], rundir: ModuleType) -> None:
    run = rundir.make_run_dir(tmp_path, selector="ga", study=False)
    tab, log = page
    tab.goto(build_report(run).resolve().as_uri(), wait_until="load")
    assert log.errors == []
    assert "ga-progress" in tab.evaluate(_DRAWN_IDS_JS)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, rundir: ModuleType) -> Path:
    run = rundir.make_run_dir(tmp_path_factory.mktemp("browser"))
    return build_report(run)


def test_report_opens_offline_without_errors(
    report: Path, page: tuple[Any, PageLog], rundir: ModuleType
) -> None:
    tab, log = page
    tab.goto(report.resolve().as_uri(), wait_until="load")
    tab.wait_for_load_state("networkidle")
    assert log.errors == []
    outside = [u for u in log.requests if not u.startswith(("file:", "data:", "blob:"))]
    assert outside == [], "the report must not fetch anything"
    figures = tab.evaluate(_FIGURES_JS)
    assert figures["images"] + figures["plots"] >= 3, figures
    assert figures["imagesDrawn"] == figures["images"], figures
    assert figures["plotsDrawn"] == figures["plots"], figures
    # every interactive figure the report promises is on the page and drawn
    drawn = tab.evaluate(_DRAWN_IDS_JS)
    names = rundir.NAMES
    expected = {"comparison", "method-comparison", "layer-sparsity", "teams"}
    expected |= {f"front-{i}" for i in range(len(names))}
    assert expected <= set(drawn), sorted(expected - set(drawn))
    # the run's name, escaped, is the page's heading
    assert "tiny<run>" in tab.inner_text("h1")
