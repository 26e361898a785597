"""`[selection] mode = "joint"` through the whole flow: menus in the run directory, the joint
choice in selection.json, resume without recomputation, and test data never used to choose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import ensprune.study.menus as menus_module
from ensprune.ensemble.menu import Menu
from ensprune.study import StudySpec, run_study
from ensprune.study.selection import select_joint

# Trains a pool and runs searches: tens of seconds on 2 shared cores.
pytestmark = pytest.mark.slow

JOINT = {
    "study": {"name": "tinyjoint", "seed": 3},
    "data": {"dataset": "digits", "val_fraction": 0.2, "test_fraction": 0.25},
    "pool": {"architectures": ["model_a", "lenet300"], "seeds": [0, 1], "epochs": 3, "lr": 0.003},
    "search": {
        "methods": ["magnitude", "random"],
        "sparsity": [0.3, 0.95],
        "trials": 4,
        "finetune_epochs": 1,
    },
    "selection": {
        "mode": "joint",
        "budget": "1x_member",
        "search": "ga",
        "max_size": 4,
        "population": 16,
        "generations": 8,
    },
}


def joint_spec() -> StudySpec:
    return StudySpec.from_dict(json.loads(json.dumps(JOINT)))


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "joint"
    run_study(joint_spec(), run_dir=run_dir, progress=False)
    return run_dir


def test_menus_hold_dense_and_pareto_points_with_their_costs(joint_run: Path) -> None:
    table = pd.read_csv(joint_run / "menu.csv")
    trials = pd.read_csv(joint_run / "trials.csv")
    members = pd.read_csv(joint_run / "members.csv")
    val, test = Menu.load(joint_run / "menus/val.npz"), Menu.load(joint_run / "menus/test.npz")
    assert val.cost_name == "effective_macs" == test.cost_name
    assert val.n_points == test.n_points == len(table)
    np.testing.assert_array_equal(val.cost, table.cost)
    np.testing.assert_array_equal(val.member, table.member_index)
    assert list(val.points.names) == list(table.name)
    assert val.points.proba.shape[1] == len(val.points.y) != test.points.proba.shape[1]
    for row in members.itertuples():
        mine = table[table.member == row.member]
        dense = mine[mine.trial == -1]
        assert len(dense) == 1 and dense.effective_macs.iloc[0] == row.dense_macs
        pruned = mine[mine.trial >= 0]
        complete = trials[(trials.member == row.member) & (trials.state == "COMPLETE")]
        assert set(pruned.trial) <= set(complete.number)
        # Pareto-optimal among the member's candidates: nothing at most as costly is more accurate
        candidates = [(float(row.dense_val_accuracy), float(row.dense_macs))]
        for t in complete.itertuples():
            model_macs = table[(table.member == row.member) & (table.trial == t.number)]
            if len(model_macs):
                candidates.append((float(t.val_accuracy), float(model_macs.cost.iloc[0])))
        for p in pruned.itertuples():
            assert not any(a > p.val_accuracy and c <= p.cost for a, c in candidates)
        # the point's stored accuracy is its checkpoint's, re-measured from its predictions
        accuracy = val.points.accuracies()[mine.point.to_numpy()]
        np.testing.assert_allclose(accuracy, mine.val_accuracy, atol=1e-6)


def test_selection_names_every_chosen_operating_point_within_the_budget(joint_run: Path) -> None:
    selection = json.loads((joint_run / "selection.json").read_text())
    members = pd.read_csv(joint_run / "members.csv")
    table = pd.read_csv(joint_run / "menu.csv")
    assert selection["mode"] == "joint" and selection["selector"] == "ga"
    assert selection["budget_spec"] == "1x_member"
    assert selection["budget"] == pytest.approx(members.dense_macs.mean())
    chosen = table.set_index("point").loc[selection["points"]]
    assert selection["total_cost"] == pytest.approx(chosen.cost.sum())
    assert selection["total_cost"] <= selection["budget"]
    assert 2 <= len(selection["operating_points"]) <= 4
    assert len(set(chosen.member)) == len(chosen)  # at most one point per member
    for point in selection["operating_points"]:
        row = table.set_index("point").loc[point["point"]]
        assert point["member"] == row.member and point["cost"] == row.cost
        assert point["trial"] == (None if row.trial < 0 else row.trial)
    assert "test" not in json.dumps(selection)  # chosen and described on validation only
    # every member study records its joint operating point (None: out of the team)
    import optuna

    storage = f"sqlite:///{joint_run / 'study.db'}"
    chosen_by_member = {p["member"]: p for p in selection["operating_points"]}
    trials = pd.read_csv(joint_run / "trials.csv").drop_duplicates("member")
    for row in trials.itertuples():
        attrs = optuna.load_study(study_name=row.study_name, storage=storage).user_attrs
        assert attrs["ensprune.joint_operating_point"] == chosen_by_member.get(row.member)
        assert attrs["ensprune.in_selected_team"] == (row.member in chosen_by_member)
    meta = json.loads((joint_run / "run.json").read_text())
    assert {"menu", "select", "report"} <= set(meta["stages"])


def test_report_shows_every_member_at_its_chosen_point_and_the_cost_against_budget(
    joint_run: Path,
) -> None:
    from ensprune.report.frames import TEAM, ensemble_accuracy

    selection = json.loads((joint_run / "selection.json").read_text())
    report = joint_run / "report"
    choice = pd.read_csv(report / "joint_choice.csv")
    assert list(choice.member) == list(pd.read_csv(joint_run / "members.csv").member)
    assert set(choice.chosen) - {"out"} == set(selection["point_names"])
    assert choice.cost.sum() == pytest.approx(selection["total_cost"])
    assert (choice[choice.chosen == "out"].cost == 0).all()
    # the team row of the comparison is the joint team, scored on the test menu at its points
    test = Menu.load(joint_run / "menus/test.npz")
    team = pd.read_csv(report / "comparison.csv").set_index("ensemble").loc[TEAM]
    assert team.test_accuracy == pytest.approx(
        ensemble_accuracy(test.points, selection["points"], "soft")
    )
    assert team.val_accuracy == pytest.approx(selection["val_accuracy"])
    front = pd.read_csv(report / "joint_front.csv")
    chosen = front[front.kind == "chosen"]
    assert len(chosen) == 1 and chosen.total_cost.iloc[0] == pytest.approx(selection["total_cost"])
    summary = json.loads((report / "summary.json").read_text())["selection"]
    assert summary["operating_points"] == selection["point_names"]
    assert summary["budget"] == selection["budget"]
    page = (report / "report.html").read_text()
    assert "Joint choice" in page and "of the budget" in page and 'id="joint"' in page
    assert (report / "figures" / "joint.png").stat().st_size > 1000


def test_test_predictions_are_never_read_to_choose(
    joint_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = joint_spec()
    before = select_joint(joint_run, spec.selection, spec.seed)
    # 1. garbage test predictions: the same choice
    test_path = joint_run / "menus/test.npz"
    saved = test_path.read_bytes()
    test = Menu.load(test_path)
    rng = np.random.default_rng(0)
    noise = rng.dirichlet(np.ones(test.points.proba.shape[2]), size=test.points.proba.shape[:2])
    Menu.from_arrays(
        noise, member=test.member, cost=test.cost, y=test.points.y, cost_name=test.cost_name
    ).save(test_path)
    # 2. and no file with "test" in its name is opened while choosing
    opened: list[str] = []
    real_load = np.load

    def spy(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    try:
        after = select_joint(joint_run, spec.selection, spec.seed)
    finally:
        test_path.write_bytes(saved)
    assert after.points == before.points and after.val_accuracy == before.val_accuracy
    assert opened and not any("test" in Path(p).name for p in opened)


def test_resume_reuses_every_point_and_rebuilds_only_what_is_missing(
    joint_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real_predict = menus_module.predict_proba

    def counting(*args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(1)
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(menus_module, "predict_proba", counting)
    before = Menu.load(joint_run / "menus/val.npz").points.proba.copy()
    selection = (joint_run / "selection.json").read_text()
    run_study(joint_spec(), run_dir=joint_run, progress=False)
    assert calls == []  # every point's predictions came from its cache
    np.testing.assert_array_equal(Menu.load(joint_run / "menus/val.npz").points.proba, before)
    assert (
        json.loads((joint_run / "selection.json").read_text())["points"]
        == json.loads(selection)["points"]
    )
    # an interrupted menu build: one point's cache and the assembled menus are gone
    lost = next((joint_run / "members").glob("*/menu/t*.npz"))
    lost.unlink()
    for name in ("menus/val.npz", "menus/test.npz", "menu.csv"):
        (joint_run / name).unlink()
    run_study(joint_spec(), run_dir=joint_run, progress=False)
    assert len(calls) == 2  # that one point, on val and on test; nothing retrained
    assert lost.is_file()
    rebuilt = Menu.load(joint_run / "menus/val.npz")
    np.testing.assert_array_equal(rebuilt.points.proba, before)  # the same menu, rebuilt
    assert rebuilt.n_points == len(pd.read_csv(joint_run / "menu.csv"))


@pytest.mark.parametrize(
    ("cost", "column"), [("latency", "compacted_latency_ms"), ("compacted_macs", "compacted_macs")]
)
def test_compacted_costs_are_measured_per_point_and_named(
    joint_run: Path, cost: str, column: str
) -> None:
    raw = json.loads(json.dumps(JOINT))
    raw["selection"].update(cost=cost, budget="2x_member")
    run_study(StudySpec.from_dict(raw), run_dir=joint_run, progress=False)  # resumes: menus only
    table = pd.read_csv(joint_run / "menu.csv")
    assert np.isfinite(table[column]).all() and (table[column] > 0).all()
    np.testing.assert_array_equal(table.cost, table[column])
    assert Menu.load(joint_run / "menus/val.npz").cost_name == column
    selection = json.loads((joint_run / "selection.json").read_text())
    assert selection["cost"] == cost and selection["cost_name"] == column
    assert selection["total_cost"] <= selection["budget"]
    # the report's references are in the same cost: the dense pool is every member's dense point
    references = pd.read_csv(joint_run / "report" / "joint_references.csv").set_index("reference")
    dense = table[table.trial == -1]
    assert references.loc["full dense pool", "total_cost"] == pytest.approx(dense[column].sum())


def test_select_on_the_joint_run_dir_picks_the_runs_points(
    joint_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ensprune.cli import main

    chosen = json.loads((joint_run / "selection.json").read_text())
    assert main(["select", str(joint_run), "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["points"] == chosen["points"] and doc["members"] == chosen["members"]
    assert doc["total_cost"] == pytest.approx(chosen["total_cost"])
