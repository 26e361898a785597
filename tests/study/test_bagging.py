"""``[pool] bag``: every member trains and is fine-tuned on its own seeded random bag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ensprune.cli import main
from ensprune.errors import RunDirError, SpecError
from ensprune.study import StudySpec, run_study
from ensprune.study.bagging import bag_rows, check_bag, member_split
from ensprune.study.search import SplitData

from ._specs import one_line_error, spec_dict, write_spec


def _spec(**pool: object) -> StudySpec:
    return StudySpec.from_dict(spec_dict(pool=pool))


def test_a_bag_is_a_seeded_subset_of_its_own_per_member() -> None:
    spec = _spec(bag=300)
    a0, a1 = bag_rows(spec, "model_a-s0", 1000), bag_rows(spec, "model_a-s1", 1000)
    assert a0 is not None and a1 is not None
    assert len(a0) == len(np.unique(a0)) == 300 and a0.min() >= 0 and a0.max() < 1000
    assert not np.array_equal(a0, a1)  # each member its own bag
    assert np.array_equal(a0, bag_rows(spec, "model_a-s0", 1000))  # the same in every process
    other_seed = StudySpec.from_dict(spec_dict(study={"seed": 1}, pool={"bag": 300}))
    assert not np.array_equal(a0, bag_rows(other_seed, "model_a-s0", 1000))


def test_without_bag_every_member_sees_the_whole_split() -> None:
    spec = _spec()
    split = SplitData(np.zeros((50, 2)), np.arange(50), np.ones((5, 2)), np.arange(5))
    assert bag_rows(spec, "model_a-s0", 50) is None
    assert member_split(spec, "model_a-s0", split) is split


def test_member_split_narrows_training_only() -> None:
    spec = _spec(bag=20)
    x, y = np.arange(100.0).reshape(50, 2), np.arange(50)
    split = member_split(spec, "m", SplitData(x, y, x[:5], y[:5]))
    rows = bag_rows(spec, "m", 50)
    assert np.array_equal(split.y_train, rows) and np.array_equal(split.x_train, x[rows])
    assert split.x_val is not None and len(split.y_val) == 5


def test_unset_bag_keeps_the_fingerprint_of_run_directories_made_before_it() -> None:
    # the value computed by the release before [pool] bag existed, for this very spec
    assert _spec().fingerprint("seed", "data", "pool") == "d78c5cc953e2ab49"
    assert _spec(bag=100).fingerprint("seed", "data", "pool") != "d78c5cc953e2ab49"


@pytest.mark.parametrize(
    ("pool", "data", "message"),
    [
        ({"bag": 5}, {}, "[pool] bag"),
        ({"bag": "half"}, {}, "[pool] bag"),
        ({"bag": 600}, {"max_train": 500}, "lower bag or raise max_train"),
    ],
)
def test_bad_bags_are_refused_at_load(
    pool: dict[str, object], data: dict[str, object], message: str
) -> None:
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        StudySpec.from_dict(spec_dict(pool=pool, data=data))


def test_a_bag_larger_than_the_training_split_exits_2_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, pool={"bag": 5000})  # digits has ~1,000 training images here
    code = main(["run", str(spec), "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert code == 2
    err = one_line_error(capsys)
    assert "[pool] bag = 5000" in err and "training images" in err
    assert not (tmp_path / "run" / "members").exists()  # nothing trained


def test_check_bag_names_the_split_size() -> None:
    with pytest.raises(SpecError, match="more than the 40 training images"):
        check_bag(_spec(bag=50), 40)


@pytest.mark.slow
def test_a_bagged_run_trains_and_fine_tunes_every_member_on_its_bag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ensprune.study import pipeline

    trained: list[np.ndarray] = []
    tuned: dict[str, np.ndarray] = {}
    real_train, real_objective = pipeline.train_model, pipeline.MemberObjective

    def train_model(model: object, x: np.ndarray, y: np.ndarray, *args: object, **kw: object):
        trained.append(y)
        return real_train(model, x, y, *args, **kw)

    def objective(spec: StudySpec, member: str, member_model: object, split: SplitData, *a: object):
        tuned[member] = split.y_train
        return real_objective(spec, member, member_model, split, *a)

    monkeypatch.setattr(pipeline, "train_model", train_model)
    monkeypatch.setattr(pipeline, "MemberObjective", objective)
    spec = StudySpec.from_dict(spec_dict(pool={"bag": 200}, search={"trials": 2}))
    first = run_study(spec, run_dir=tmp_path / "run", progress=False)
    assert [len(y) for y in trained] == [200, 200]
    assert sorted(tuned) == ["model_a-s0", "model_a-s1"]
    assert all(len(y) == 200 for y in tuned.values())
    assert not np.array_equal(tuned["model_a-s0"], tuned["model_a-s1"])  # labels of other rows
    again = run_study(spec, run_dir=tmp_path / "run", progress=False)  # resumes, trains nothing
    assert len(trained) == 2
    assert first.summary["selection"] == again.summary["selection"]
    unbagged = StudySpec.from_dict(spec_dict(search={"trials": 2}))
    with pytest.raises(RunDirError, match="different spec"):
        run_study(unbagged, run_dir=tmp_path / "run", progress=False)
