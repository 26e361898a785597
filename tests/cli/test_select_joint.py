"""``ensprune select MENU.npz --mode joint`` and the objective weights on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ensprune.cli import main
from ensprune.ensemble import GeneticSelector, JointSelector, Menu, make_menu, make_pool


@pytest.fixture(scope="module")
def menu_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_menu(5, 3, 300, seed=4).save(tmp_path_factory.mktemp("joint") / "menu.npz")


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


FAST = ["--population", "20", "--generations", "15", "--quiet"]


@pytest.mark.parametrize("selector", ["ga", "NSGA2", "exhaustive"])
def test_joint_json_matches_the_api(
    selector: str, menu_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["select", str(menu_file), "--mode", "joint", "--selector", selector]
    args += ["--budget", "1x_member", "--seed", "2", "--json"]
    args += FAST if selector != "exhaustive" else ["--quiet"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    menu = Menu.load(menu_file)
    budget = float(menu.dense_cost().mean())
    extra = {"population": 20, "generations": 15} if selector != "exhaustive" else {}
    api = JointSelector(search=selector.lower(), budget=budget, seed=2, **extra).select_menu(menu)
    assert data["points"] == api.points
    assert data["members"] == api.members
    assert data["total_cost"] == pytest.approx(api.total_cost) and data["total_cost"] <= budget
    assert data["cost_name"] == "cost"
    assert data["val_accuracy"] == pytest.approx(api.val_accuracy)
    assert ("front" in data) == (selector != "ga")


def test_joint_summary_and_table(
    menu_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "front.csv"
    args = ["select", str(menu_file), "--mode", "joint", "--selector", "nsga2", "--budget", "2e6"]
    assert main([*args, "--table", str(table), *FAST]) == 0
    out = capsys.readouterr().out
    assert "joint nsga2" in out and "total cost" in out and "front:" in out
    assert table.read_text().startswith("points,members")


def test_weights_reach_every_objective_selector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = make_pool(8, 300, 4, seed=5)
    path = pool.save(tmp_path / "val.npz")
    args = ["select", str(path), "--selector", "ga", "--seed", "1", "--json", *FAST]
    weights = ["--w-accuracy", "0.5", "--w-diversity", "0", "--w-size", "0.2"]
    assert main([*args, *weights]) == 0
    data = json.loads(capsys.readouterr().out)
    api = GeneticSelector(
        seed=1, population=20, generations=15, w_accuracy=0.5, w_diversity=0.0, w_size=0.2
    ).select(pool)
    assert data["members"] == api.members
    assert data["params"]["w_size"] == 0.2
    assert main(["select", str(path), "--mode", "joint", *weights, "--json", *FAST]) == 2
    assert "cost" in _one_line_error(capsys)  # a pool file is not a menu: no 'member'


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget", "lots"], "1x_member"),
        (["--beta", "0.2"], "--beta does not apply to --mode joint"),
        (["--selector", "hq"], "unknown joint search"),
        (["--w-accuracy", "-1"], "objective weight accuracy"),
    ],
)
def test_joint_errors_are_one_line(
    extra: list[str], message: str, menu_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["select", str(menu_file), "--mode", "joint", *extra, "--quiet"]) == 2
    assert message in _one_line_error(capsys)


def test_missing_and_bad_menu_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", str(tmp_path / "nope.npz"), "--mode", "joint"]) == 2
    assert "does not exist" in _one_line_error(capsys)
    bad = tmp_path / "nan.npz"
    menu = make_menu(3, 2, 50, seed=1)
    proba = menu.points.proba.copy()
    proba[1, 3] = np.nan
    np.savez(bad, proba=proba, member=menu.member, cost=menu.cost, y=menu.points.y)
    assert main(["select", str(bad), "--mode", "joint"]) == 2
    assert "NaN" in _one_line_error(capsys)
