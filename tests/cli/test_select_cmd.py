"""``ensprune select``: JSON and summary output, options, and one-line exit-2 errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ensprune.cli import main
from ensprune.ensemble import make_pool


@pytest.fixture(scope="module")
def preds_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pool(8, 300, 4, seed=2).save(tmp_path_factory.mktemp("sel") / "val.npz")


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ensprune select: error:")
    return lines[0]


@pytest.mark.parametrize(
    "selector", ["hq", "ga", "nsga2", "greedy", "caruana", "topk", "exhaustive", "random"]
)
def test_json_output(selector: str, preds_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "select",
            str(preds_file),
            "--selector",
            selector,
            "--max-size",
            "4",
            "--seed",
            "1",
            "--json",
            "--quiet",
        ]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert out.err == ""  # --quiet: no progress lines
    doc = json.loads(out.out)
    assert doc["selector"] == selector
    assert 2 <= len(doc["members"]) <= 4 and doc["members"] == sorted(doc["members"])
    assert 0.0 <= doc["val_accuracy"] <= 1.0
    assert isinstance(doc["scores"], dict) and doc["voting"]


def test_hq_options_and_table(
    preds_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "teams.csv"
    rc = main([
        "select", str(preds_file), "--selector", "hq", "--metric", "gd,kw", "--beta", "0.2",
        "--max-size", "3", "--voting", "plurality", "--table", str(table), "--json", "--quiet",
    ])  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert doc["voting"] == "plurality" and doc["params"]["beta"] == 0.2
    assert doc["params"]["metrics"] == ["gd", "kw"]
    assert {"focal_gd", "focal_kw", "diversity", "fitness"} <= set(doc["scores"])
    assert table.is_file() and "status" in table.read_text().splitlines()[0]


def test_summary_with_names_and_progress(
    preds_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "select",
            str(preds_file),
            "--selector",
            "ga",
            "--names",
            "--population",
            "8",
            "--generations",
            "3",
        ]
    )
    out = capsys.readouterr()
    assert rc == 0
    assert "validation accuracy" in out.out and "names: m" in out.out
    assert "[ga] gen 1" in out.err  # one progress line per generation


def test_budget_and_weights(preds_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "select",
            str(preds_file),
            "--selector",
            "ga",
            "--budget",
            "12",
            "--evolve-weights",
            "--json",
            "--quiet",
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["scores"]["cost"] <= 12 and doc["voting"] == "weighted"
    assert len(doc["weights"]) == len(doc["members"])


def _write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("nan", "NaN"),
        ("shape", "must have shape"),
        ("label", "must lie in"),
        ("one_member", "at least 2"),
        ("missing", "does not exist"),
        ("no_y", "lacks"),
        ("not_npz", "cannot read"),
    ],
)
def test_bad_predictions_exit_2(
    case: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=(4, 20))
    y = rng.integers(0, 3, 20)
    path = tmp_path / "p.npz"
    if case == "nan":
        proba[1, 3, 0] = np.nan
        _write(path, proba=proba, y=y)
    elif case == "shape":
        _write(path, proba=proba, y=y[:-1])
    elif case == "label":
        _write(path, proba=proba, y=np.where(y == 0, 3, y))
    elif case == "one_member":
        _write(path, proba=proba[:1], y=y)
    elif case == "no_y":
        _write(path, proba=proba)
    elif case == "not_npz":
        path.write_text("not a zip")
    rc = main(["select", str(path if case != "missing" else tmp_path / "nope.npz")])
    assert rc == 2
    assert needle in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--selector", "topk", "--beta", "0.2"], "--beta does not apply"),
        (["--metric", "nope"], "unknown metric"),
        (["--beta", "1.5"], "beta"),
        (["--max-size", "1"], "max_size"),
        (["--budget", "0.5"], "cheapest"),
        (["--selector", "hq", "--voting", "weighted"], "weights"),
        (["--selector", "exhaustive", "--n-jobs", "0"], "n_jobs"),
    ],
)
def test_bad_options_exit_2(
    args: list[str], needle: str, preds_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["select", str(preds_file), "--quiet", *args])
    assert rc == 2
    assert needle in _one_line_error(capsys)


def test_budget_without_cost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pool = make_pool(4, 50, 3, seed=0, with_cost=False)
    path = pool.save(tmp_path / "nocost.npz")
    assert main(["select", str(path), "--budget", "3"]) == 2
    assert "cost" in _one_line_error(capsys)


def test_unknown_selector_exits_2_listing_the_valid_ones(
    preds_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["select", str(preds_file), "--selector", "magic"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown selector 'magic'" in err and "hq" in err
