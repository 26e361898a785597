"""``ensprune select RUN_DIR``: the run's own [selection] settings and seed, each flag overriding one.

The run directory is fabricated (tests/report/rundir.py) with a spec.toml whose [selection]
differs from every default, so a setting that is not read from the run changes the team.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from ensprune.cli import main
from ensprune.ensemble import HQSelector, PredictionSet

SPEC = """\
[study]
name = "tiny"
seed = 11

[data]
dataset = "digits"

[selection]
selector = "hq"
metric = "gd,kw"
beta = 0.3
max_size = 3
voting = "plurality"
"""


def _api_team(run: Path, **changes: object) -> list[str]:
    """The team the library picks with the spec's settings (and ``changes``)."""
    settings: dict = {"metrics": ("gd", "kw"), "beta": 0.3, "max_size": 3, "voting": "plurality"}
    settings |= {"seed": 11, **changes}
    preds = PredictionSet.load(run / "predictions" / "val.npz")
    return list(HQSelector(**settings).select(preds).names)


@pytest.fixture
def run(tmp_path: Path, rundir: ModuleType) -> Path:
    """A run whose selection.json holds the team its [selection] settings choose."""
    run = Path(rundir.make_run_dir(tmp_path, voting="plurality", study=False))
    (run / "spec.toml").write_text(SPEC)
    selection = json.loads((run / "selection.json").read_text())
    preds = PredictionSet.load(run / "predictions" / "val.npz")
    team = HQSelector(metrics=("gd", "kw"), beta=0.3, max_size=3, voting="plurality", seed=11)
    chosen = team.select(preds)
    selection.update(members=list(chosen.members), names=list(chosen.names))
    (run / "selection.json").write_text(json.dumps(selection))
    return run


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ensprune select: error:")
    return lines[0]


def test_run_dir_repeats_the_runs_settings(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", str(run), "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["names"] == json.loads((run / "selection.json").read_text())["names"]
    assert doc["voting"] == "plurality" and doc["params"]["beta"] == 0.3
    assert doc["params"]["metrics"] == ["gd", "kw"] and doc["params"]["max_size"] == 3


def test_summary_shows_names_and_agreement(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    names = json.loads((run / "selection.json").read_text())["names"]
    assert f"names: {', '.join(names)}" in out
    assert "same team as the run (selection.json)" in out


@pytest.mark.parametrize(
    ("flags", "changes"),
    [
        (["--max-size", "2"], {"max_size": 2}),
        (["--beta", "0"], {"beta": 0.0}),
        (["--voting", "soft"], {"voting": "soft"}),
        (["--metric", "entropy"], {"metrics": ("entropy",)}),
    ],
)
def test_a_flag_overrides_one_setting(
    flags: list[str], changes: dict, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["select", str(run), *flags, "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["names"] == _api_team(run, **changes)
    kept = {"beta": 0.3, "max_size": 3, "voting": "plurality", "metrics": ["gd", "kw"]}
    for key, value in kept.items():
        if key in changes:
            continue
        got = doc["voting"] if key == "voting" else doc["params"][key]
        assert got == value, key


def test_another_selector_keeps_shared_settings(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # beta is HQ's own knob: it is dropped for greedy; voting and max_size are kept
    assert main(["select", str(run), "--selector", "greedy", "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["selector"] == "greedy" and doc["voting"] == "plurality"
    assert "beta" not in doc["params"] and len(doc["members"]) <= 3


def test_a_bare_file_uses_a_specs_defaults(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", str(run / "predictions" / "val.npz"), "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["voting"] == "soft" and doc["params"]["metrics"] == ["entropy"]
    assert doc["params"]["max_size"] == 5 and doc["params"]["beta"] == 0.1
    assert doc["names"] == _api_team(
        run, metrics=("entropy",), beta=0.1, max_size=5, voting="soft", seed=0
    )


def test_not_a_run_directory_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["select", str(tmp_path)]) == 2
    line = _one_line_error(capsys)
    assert "is a directory but not an ensprune run directory" in line and "PREDS.npz" in line


@pytest.mark.parametrize(
    ("remove", "needle"),
    [
        ("predictions/val.npz", "the 'evaluate' stage writes it"),
        ("spec.toml", "settings are unknown"),
    ],
)
def test_a_run_missing_its_inputs_is_one_line(
    remove: str, needle: str, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run / remove).unlink()
    assert main(["select", str(run)]) == 2
    line = _one_line_error(capsys)
    assert needle in line and str(run / remove) in line


def test_a_joint_run_without_its_menu_is_one_line(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run / "spec.toml").write_text(SPEC.replace('selector = "hq"', 'mode = "joint"\nsearch = "ga"'))
    (run / "spec.toml").write_text((run / "spec.toml").read_text().replace("beta = 0.3\n", ""))
    assert main(["select", str(run)]) == 2
    line = _one_line_error(capsys)
    assert "menus/val.npz is missing" in line and "'menu' stage" in line


def test_a_flag_the_selector_lacks_is_one_line(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["select", str(run), "--population", "8"]) == 2
    assert "--population does not apply to selector 'hq'" in _one_line_error(capsys)


def test_a_spec_rendered_by_the_python_api_is_read(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # run_study(StudySpec) copies the spec as JSON (StudySpec.to_dict) into spec.toml
    import tomllib

    from ensprune.study import StudySpec

    spec = StudySpec.from_dict(tomllib.loads(SPEC))
    (run / "spec.toml").write_text(json.dumps(spec.to_dict(), indent=2))
    assert main(["select", str(run), "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["names"] == json.loads((run / "selection.json").read_text())["names"]
    assert doc["voting"] == "plurality" and doc["params"]["beta"] == 0.3
