"""[selection] mode = "joint": its keys load in any case and every bad value fails at load time."""

from __future__ import annotations

from pathlib import Path

import pytest

from ensprune.cli import main
from ensprune.errors import SpecError, UnknownNameError
from ensprune.study import StudySpec
from ensprune.study.build import make_joint_selector


def _spec(**selection: object) -> StudySpec:
    return StudySpec.from_dict({"study": {"name": "j"}, "selection": dict(selection)})


def test_two_stage_stays_the_default() -> None:
    spec = _spec()
    assert spec.selection.mode == "two_stage"
    assert spec.selection.cost == "macs"


def test_joint_keys_load_in_any_case_and_build_the_joint_selector() -> None:
    spec = _spec(
        mode="JOINT",
        cost="Latency",
        search="NSGA2",
        budget="0.25X_member",
        w_diversity=0.0,
        w_size=0.0,
        population=12,
    )
    sel = spec.selection
    assert (sel.mode, sel.cost, sel.options["search"]) == ("joint", "latency", "nsga2")
    selector = make_joint_selector(sel, seed=7, budget=123.0)
    assert selector.search == "nsga2"
    assert selector.budget == 123.0  # the resolved number, not the spec's relative string
    assert (selector.w_diversity, selector.w_size, selector.population) == (0.0, 0.0, 12)
    assert selector.metrics == (sel.metric,) and selector.seed == 7 and selector.max_size == 5


@pytest.mark.parametrize(
    ("selection", "fragment"),
    [
        ({"mode": "both"}, "[selection] mode must be one of two_stage, joint"),
        (
            {"cost": "flops"},
            "[selection] cost must be one of macs, compacted_macs, params, latency",
        ),
        ({"mode": "joint", "budget": "1x_pool"}, "budget '1x_pool' is not a number"),
        ({"mode": "joint", "budget": -3}, "budget must be a finite number >= 0"),
        ({"mode": "joint", "search": "annealing"}, "annealing"),
        ({"mode": "joint", "beta": 0.1}, "unknown knob(s) ['beta'] for mode = \"joint\""),
        ({"mode": "joint", "selector": "ga"}, "name the joint search instead"),
        ({"mode": "joint", "w_accuracy": -1.0}, "[selection] objective weight accuracy must be"),
    ],
)
def test_bad_joint_settings_fail_at_load(selection: dict[str, object], fragment: str) -> None:
    with pytest.raises((SpecError, UnknownNameError)) as err:
        _spec(**selection)
    assert fragment in str(err.value)


def test_cli_refuses_a_bad_budget_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "joint.toml"
    spec.write_text('[selection]\nmode = "joint"\nbudget = "half a member"\n')
    assert main(["run", str(spec), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "budget 'half a member'" in err[0] and "x_member" in err[0]
    assert not (tmp_path / "run").exists()  # refused before anything was made


def test_joint_fashion_spec_loads_and_meets_the_issue_recipe() -> None:
    spec = StudySpec.from_toml(Path(__file__).resolve().parents[2] / "studies/joint_fashion.toml")
    assert spec.data.dataset == "fashion_mnist"
    assert len(spec.members) >= 10 and len(spec.pool.architectures) >= 3
    assert len(spec.search.methods) >= 2
    assert spec.selection.mode == "joint" and spec.selection.options["budget"] == "1x_member"
