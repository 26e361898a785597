"""Frames: test accuracies, voting rules, the team-vs-pool comparison, the summary, clear errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from ensprune.ensemble.predictions import PredictionSet
from ensprune.errors import EnsPruneError, RunDirError
from ensprune.report import frames


def test_ensemble_accuracy_follows_the_voting_rule() -> None:
    # Sample 0: two weak votes for class 1 beat one confident vote for class 0 under plurality,
    # but not under soft voting. Sample 1: a three-way tie (votes 1, 0, 2) goes to the lowest
    # class index under plurality; soft voting picks class 2; majority voting abstains.
    proba = np.array(
        [
            [[0.30, 0.40, 0.30], [0.10, 0.60, 0.30]],
            [[0.30, 0.40, 0.30], [0.50, 0.20, 0.30]],
            [[0.95, 0.03, 0.02], [0.20, 0.20, 0.60]],
        ]
    )
    ps_class1 = PredictionSet(proba, np.array([1, 0]))
    assert frames.ensemble_accuracy(ps_class1, voting="plurality") == 1.0  # 1 wins, tie -> 0
    assert frames.ensemble_accuracy(ps_class1, voting="soft") == 0.0  # predicts 0, then 2
    assert frames.ensemble_accuracy(ps_class1, [2], "plurality") == 0.0
    ps_class0 = PredictionSet(proba, np.array([0, 1]))
    assert frames.ensemble_accuracy(ps_class0, voting="soft") == 0.5
    assert frames.ensemble_accuracy(ps_class0, voting="majority") == 0.0  # abstains on sample 1


def test_members_frame_adds_exact_test_accuracies(run_dir: Path, rundir: ModuleType) -> None:
    members = frames.members_frame(run_dir)
    assert list(members["member"]) == list(rundir.NAMES)
    n = rundir.N["test"]
    np.testing.assert_allclose(
        members["pruned_test_accuracy"], np.array(rundir.CORRECT["test"]) / n
    )
    np.testing.assert_allclose(
        members["dense_test_accuracy"], np.array(rundir.CORRECT["dense_test"]) / n
    )


@pytest.mark.parametrize("voting", ["plurality", "soft"])
def test_comparison_values(voting: str, make_run: Callable[..., Path], rundir: ModuleType) -> None:
    run = make_run(voting)
    table = frames.comparison_frame(run).set_index("ensemble")
    assert list(table.index) == [frames.TEAM, frames.POOL, frames.BEST_SINGLE, frames.DENSE_POOL]
    load = {k: PredictionSet.load(run / p) for k, p in frames.PREDICTIONS.items()}
    everyone = list(range(len(rundir.NAMES)))
    best = int(np.argmax(rundir.CORRECT["val"]))  # validation decides, test reports
    expected = {
        frames.TEAM: (list(rundir.TEAM), "val", "test"),
        frames.POOL: (everyone, "val", "test"),
        frames.BEST_SINGLE: ([best], "val", "test"),
        frames.DENSE_POOL: (everyone, "dense_val", "dense_test"),
    }
    for row, (idx, val_key, test_key) in expected.items():
        assert table.loc[row, "n_members"] == len(idx)
        assert table.loc[row, "val_accuracy"] == pytest.approx(
            rundir.reference_accuracy(load[val_key], idx, voting)
        )
        assert table.loc[row, "test_accuracy"] == pytest.approx(
            rundir.reference_accuracy(load[test_key], idx, voting)
        )
    assert table.loc[frames.BEST_SINGLE, "members"] == rundir.NAMES[best]
    assert table.loc[frames.BEST_SINGLE, "test_accuracy"] == pytest.approx(
        rundir.CORRECT["test"][best] / rundir.N["test"]
    )
    pruned_macs = [
        int(d * (1 - s)) for d, s in zip(rundir.DENSE_MACS, rundir.SPARSITY, strict=True)
    ]
    team_macs = sum(pruned_macs[i] for i in rundir.TEAM)
    assert table.loc[frames.TEAM, "macs"] == team_macs
    assert table.loc[frames.TEAM, "cost_share"] == pytest.approx(team_macs / sum(pruned_macs))
    assert table.loc[frames.TEAM, "dense_cost_share"] == pytest.approx(
        team_macs / sum(rundir.DENSE_MACS)
    )
    assert table.loc[frames.DENSE_POOL, "params"] == sum(rundir.DENSE_PARAMS)
    assert table.loc[frames.POOL, "cost_share"] == pytest.approx(1.0)


def test_voting_rule_defaults_to_the_library_default_and_rejects_unknown(
    make_run: Callable[..., Path],
) -> None:
    # one default voting rule everywhere: ensemble.voting's (soft), also for old run directories
    from ensprune.ensemble.voting import DEFAULT_VOTING

    run = make_run("plurality")
    assert frames.voting_rule(run) == "plurality"
    for name in ("selection.json", "run.json"):
        data = json.loads((run / name).read_text())
        data.pop("voting")
        (run / name).write_text(json.dumps(data))
    assert frames.voting_rule(run) == DEFAULT_VOTING == "soft"
    assert frames.DEFAULT_VOTING == DEFAULT_VOTING
    data["voting"] = "PLURALITY"  # any case; the canonical name comes back
    (run / "run.json").write_text(json.dumps(data))
    assert frames.voting_rule(run) == "plurality"
    data["voting"] = "borda"
    (run / "run.json").write_text(json.dumps(data))
    with pytest.raises(EnsPruneError, match="plurality"):
        frames.voting_rule(run)


def test_teams_frame_parses_indices_and_names(run_dir: Path, make_run: Callable[..., Path]) -> None:
    teams = frames.teams_frame(run_dir)
    assert teams is not None
    assert teams["members"].tolist() == [(0, 1), (0, 2), (1, 3), (0, 2, 3), (1, 2, 3)]
    assert teams["selected"].tolist() == [False, False, False, True, False]
    assert set(teams["status"]) == {"kept", "pruned"}
    assert teams["names"].iloc[0] == "mlp-s0, mlp-s1"
    assert frames.is_team_table(teams)
    assert frames.focal_columns(teams, "gd,ck") == ["diversity", "focal_gd", "focal_ck"]
    assert frames.focal_columns(teams, ["CK"]) == ["diversity", "focal_ck", "focal_gd"]
    single = teams.drop(columns=["focal_gd", "focal_ck"]).assign(focal_bd=teams["diversity"])
    assert frames.focal_columns(single, "bd") == ["diversity"]  # one metric: no twin panel
    assert frames.teams_frame(make_run(teams=False)) is None


def test_a_table_of_no_teams_is_kept_as_is(make_run: Callable[..., Path]) -> None:
    run = make_run()
    (run / "teams.csv").write_text("generation,best_fitness\n0,0.5\n1,0.6\n")  # a GA's log
    table = frames.teams_frame(run)
    assert table is not None and list(table.columns) == ["generation", "best_fitness"]
    assert not frames.is_team_table(table)


def test_parse_team_forms_and_errors() -> None:
    pool = ["a", "b", "c", "10"]
    assert frames.parse_team("0, 2", pool) == (0, 2)
    assert frames.parse_team("(1, 3)", pool) == (1, 3)
    assert frames.parse_team("(2,)", pool) == (2,)
    assert frames.parse_team("[1, 3]", pool) == (1, 3)
    assert frames.parse_team("['a', 'c']", pool) == (0, 2)
    assert frames.parse_team("b;c", pool) == (1, 2)
    assert frames.parse_team("10,a", pool) == (3, 0)  # all tokens are names: names win
    for bad in ("0,7", "a,zz", ""):
        with pytest.raises(RunDirError, match=r"teams\.csv"):
            frames.parse_team(bad, pool)


def test_summary_is_json_and_its_text_says_what_matters(run_dir: Path, rundir: ModuleType) -> None:
    facts = frames.summary(run_dir)
    json.dumps(facts, allow_nan=False)
    assert facts["selection"]["names"] == [rundir.NAMES[i] for i in rundir.TEAM]
    assert facts["best_single"] == rundir.NAMES[int(np.argmax(rundir.CORRECT["val"]))]
    assert facts["voting"]["rule"] == "plurality"
    text = frames.format_summary(facts)
    for name in rundir.NAMES:
        assert name in text
    team_test = facts["selection"]["test_accuracy"]
    rows = {r["ensemble"]: r for r in facts["comparison"]}
    for needle in (
        "plurality voting",
        "dense -> pruned",
        f"{team_test:.4f}",
        f"{rows[frames.POOL]['test_accuracy']:.4f}",
        f"{rows[frames.BEST_SINGLE]['test_accuracy']:.4f}",
        "full pool",
        "best single member",
        str(run_dir.resolve() / "report" / "report.html"),
        json.loads((run_dir / "run.json").read_text())["storage"],
        "ensprune dashboard",
        "80.0%",  # first member's sparsity
    ):
        assert needle in text, needle


def test_missing_inputs_say_which_stage_to_run(
    make_run: Callable[..., Path], tmp_path: Path
) -> None:
    with pytest.raises(RunDirError, match="does not exist"):
        frames.members_frame(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="not an ensprune run directory"):
        frames.trials_frame(tmp_path / "empty")
    run = make_run()
    (run / "predictions" / "test.npz").unlink()
    with pytest.raises(RunDirError, match=r"'evaluate' stage.*ensprune run"):
        frames.members_frame(run)
    (run / "selection.json").unlink()
    with pytest.raises(RunDirError, match="'select' stage"):
        frames.selection_info(run)


def test_predictions_must_match_members_csv(make_run: Callable[..., Path]) -> None:
    run = make_run()
    path = run / "predictions" / "test.npz"
    ps = PredictionSet.load(path)
    PredictionSet(ps.proba[::-1], ps.y, names=ps.names[::-1]).save(path)
    with pytest.raises(RunDirError, match=r"members\.csv lists"):
        frames.members_frame(run)


def test_a_report_parses_each_file_once(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from collections import Counter

    import pandas as pd

    from ensprune import rundir as rd
    from ensprune.ensemble.predictions import PredictionSet
    from ensprune.report import build_report

    parsed: Counter[str] = Counter()
    read_json, read_csv, load = rd.read_json, pd.read_csv, PredictionSet.load.__func__

    def counting_json(path: Path) -> dict:
        parsed[Path(path).name] += 1
        return read_json(path)

    def counting_csv(path: Path, *args: object, **kwargs: object) -> pd.DataFrame:
        parsed[Path(path).name] += 1
        return read_csv(path, *args, **kwargs)

    def counting_load(cls: type, path: Path) -> PredictionSet:
        parsed[Path(path).name] += 1
        return load(cls, path)

    monkeypatch.setattr(rd, "read_json", counting_json)
    monkeypatch.setattr(pd, "read_csv", counting_csv)
    monkeypatch.setattr(PredictionSet, "load", classmethod(counting_load))
    build_report(run_dir, tmp_path / "report")
    assert parsed["selection.json"] == 1 and parsed["run.json"] == 1
    assert parsed["members.csv"] == 1 and parsed["trials.csv"] == 1
    assert parsed["val.npz"] == parsed["test.npz"] == parsed["dense_test.npz"] == 1
    assert max(parsed.values()) == 1, parsed
