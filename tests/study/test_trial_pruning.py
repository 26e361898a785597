"""Trial pruning and constraints: curves reach Optuna's pruner, pruned/infeasible trials never win."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from ensprune.data import load_dataset
from ensprune.errors import SpecError
from ensprune.models import TrainConfig, build_seeded, evaluate, train_model
from ensprune.study import StudySpec
from ensprune.study.pruners import PRUNERS, make_pruner
from ensprune.study.search import (
    COMPANION_SUFFIX,
    MemberObjective,
    SplitData,
    TrainedMember,
    choose_operating_point,
    run_member_study,
)

SPEC = {
    "study": {"name": "prune", "seed": 1},
    "data": {"dataset": "digits", "val_fraction": 0.2, "test_fraction": 0.25},
    "pool": {"architectures": ["lenet300"], "seeds": [0, 1], "epochs": 3, "lr": 0.003},
    "search": {
        "methods": ["magnitude"],
        "sparsity": [0.3, 0.9],
        "trials": 3,
        "finetune_epochs": 3,
    },
    "selection": {"selector": "hq", "metric": "gd", "max_size": 2},
}


def spec_with(**search: object) -> StudySpec:
    raw = json.loads(json.dumps(SPEC))
    raw["search"].update(search)
    return StudySpec.from_dict(raw)


@pytest.fixture(scope="module")
def member() -> tuple[StudySpec, TrainedMember, SplitData]:
    data = load_dataset("digits", seed=1, val_fraction=0.2, test_fraction=0.25, progress=False)
    model = build_seeded("lenet300", data.input_shape, data.num_classes, 0)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig(epochs=3, lr=0.003, batch_size=64, seed=0)
    train_model(model, data.x_train, data.y_train, data.x_val, data.y_val, config, progress=False)
    _, acc = evaluate(model, data.x_val, data.y_val)
    split = SplitData(data.x_train, data.y_train, data.x_val, data.y_val)
    return spec_with(), TrainedMember(model, acc, initial, None), split


def run(member, tmp_path: Path, pruner, spec: StudySpec | None = None) -> optuna.Study:
    base, trained, split = member
    objective = MemberObjective(spec or base, "m", trained, split, tmp_path, member_seed=5)
    storage = optuna.storages.InMemoryStorage()
    sampler = optuna.samplers.RandomSampler(seed=0)
    return run_member_study(storage, "s", objective, 3, sampler, pruner=pruner)


@pytest.mark.slow  # trains a member and runs three trials
def test_a_pruner_that_always_stops_prunes_every_trial_after_its_warmup(member, tmp_path) -> None:
    study = run(member, tmp_path, optuna.pruners.ThresholdPruner(lower=2.0, n_warmup_steps=1))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED] * 3
    for t in trials:  # steps 0 and 1 reported, stopped at 1: two of the three epochs trained
        assert len(t.user_attrs["val_accuracy_curve"]) == 2
        assert t.user_attrs["pruned_at_step"] == 1
        assert "checkpoint" not in t.user_attrs  # nothing saved for a pruned trial
    companion = optuna.load_study(study_name="s" + COMPANION_SUFFIX, storage=study._storage)
    assert [t.state for t in companion.get_trials()] == [TrialState.PRUNED] * 3
    assert companion.get_trials()[0].intermediate_values.keys() == {0, 1}
    with pytest.raises(SpecError, match="no completed trial"):
        choose_operating_point(trials, 0.9, 0.01)


@pytest.mark.slow  # trains a member and runs three trials
def test_a_pruner_that_never_stops_keeps_every_curve_and_final_value(member, tmp_path) -> None:
    study = run(member, tmp_path, optuna.pruners.ThresholdPruner(lower=0.0))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    companion = optuna.load_study(study_name="s" + COMPANION_SUFFIX, storage=study._storage)
    for t, shadow in zip(trials, companion.get_trials(), strict=True):
        assert t.user_attrs["pruning_trial"] == shadow.number
        curve = t.user_attrs["val_accuracy_curve"]
        assert 1 <= len(curve) <= 3  # early stopping may end fine-tuning sooner
        assert [shadow.intermediate_values[i] for i in range(len(curve))] == curve
        assert shadow.value == pytest.approx(t.values[0])  # the pruned network's final accuracy


@pytest.mark.slow  # trains a member and runs three trials
def test_without_a_pruner_no_companion_study_is_made(member, tmp_path) -> None:
    study = run(member, tmp_path, None)
    assert {s.study_name for s in study._storage.get_all_studies()} == {"s"}
    assert all("val_accuracy_curve" not in t.user_attrs for t in study.get_trials())


@pytest.mark.slow  # trains a member and runs three trials
def test_constraints_mark_infeasible_trials_which_never_win(member, tmp_path) -> None:
    spec = spec_with(min_sparsity=0.6)
    study = run(member, tmp_path, None, spec)
    trials = study.get_trials()
    for t in trials:
        assert t.user_attrs["constraints"] == {"min_sparsity": pytest.approx(0.6 - t.values[1])}
        if hasattr(t, "constraints"):  # Optuna 5: the samplers see the same values
            assert t.constraints == t.user_attrs["constraints"]
    feasible = [t for t in trials if t.values[1] >= 0.6]
    assert feasible and len(feasible) < len(trials)  # the seed gives both kinds
    chosen = choose_operating_point(trials, dense_val_accuracy=1.0, tolerance=0.0)
    assert chosen.values[1] >= 0.6


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"pruner": "mediam"}, "unknown pruner 'mediam'; valid pruner names: hyperband, median"),
        ({"pruner": "median", "pruner_params": {"warmup": 1}}, "'warmup' is not a knob of pruner"),
        (
            {"pruner": "successive_halving", "pruner_params": {"reduction_factor": 1}},
            "reduction_factor of pruner 'successive_halving' must be an integer >= 2; got 1",
        ),
        (
            {"pruner": "median", "pruner_params": {"n_warmup_steps": 1.5}},
            "n_warmup_steps of pruner 'median' must be an integer >= 0",
        ),
        ({"min_accuracy": 1.5}, "[search] min_accuracy must be a number in [0, 1)"),
        ({"min_sparsity": "high"}, "[search] min_sparsity must be a number in [0, 1)"),
    ],
)
def test_bad_pruner_or_constraint_fails_at_spec_load(search: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        spec_with(**search)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_pruner_names_in_any_case() -> None:
    assert spec_with(pruner="HyperBand").search.pruner == "hyperband"
    assert make_pruner("NONE") is None
    assert set(PRUNERS.names()) == {"none", "median", "successive_halving", "hyperband"}
    assert isinstance(make_pruner("Successive_Halving"), optuna.pruners.SuccessiveHalvingPruner)


@pytest.mark.slow
def test_run_with_the_median_pruner_records_pruned_trials_that_never_win(tmp_path) -> None:
    from ensprune.study import run_study

    spec = spec_with(
        trials=6,
        sparsity=[0.3, 0.99],
        pruner="Median",
        pruner_params={"n_startup_trials": 2, "n_warmup_steps": 0},
        min_accuracy=0.5,
    )
    run_study(spec, run_dir=tmp_path / "run", progress=False)
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert (trials.groupby("member").size() == 6).all()  # pruned trials count towards the budget
    pruned = trials[trials.state == "PRUNED"]
    assert len(pruned) > 0
    assert not pruned.chosen.any() and not pruned.pareto.any()
    assert pruned.checkpoint.isna().all()
    chosen = trials[trials.chosen]
    assert len(chosen) == 2 and (chosen.val_accuracy >= 0.5).all() and chosen.feasible.all()


def test_list_pruners_names_each_with_its_line(capsys) -> None:
    from ensprune.cli import main

    assert main(["list", "pruners"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["hyperband", "median", "none", "successive_halving"]
