"""CLI: run / prune / list, and one clear line with exit code 2 for every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ensprune.cli import main
from ensprune.models import count_parameters, load_model

TINY_SPEC = """
[study]
name = "clitiny"
seed = 1

[data]
dataset = "digits"

[pool]
architectures = ["model_a", "lenet300"]
seeds = [0]
epochs = 4

[search]
methods = ["magnitude"]
sparsity = [0.5, 0.8]
trials = 2
finetune_epochs = 1

[selection]
selector = "hq"
metric = "bd"
max_size = 2
"""


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.slow
def test_run_prints_summary_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(TINY_SPEC)
    assert main(["run", str(spec), "--run-dir", str(tmp_path / "run"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "model_a-s0" in out and "report" in out.lower()
    assert main(["run", str(spec), "--run-dir", str(tmp_path / "run"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary  # resumed run: same results, machine-readable


def test_run_refuses_a_foreign_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(TINY_SPEC)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    assert main(["run", str(spec), "--run-dir", str(tmp_path / "busy"), "--quiet"]) == 2
    assert "not an ensprune run directory" in one_line_error(capsys)


@pytest.mark.slow
def test_prune_json_has_the_documented_fields(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "prune",
            "--dataset",
            "digits",
            "--model",
            "model_a",
            "--method",
            "magnitude",
            "--sparsity",
            "0.8",
            "--epochs",
            "8",
            "--seed",
            "0",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    for side in ("dense", "pruned"):
        for key in ("accuracy", "params", "macs", "latency_ms"):
            assert key in result[side]
        assert 0.0 <= result[side]["accuracy"] <= 1.0
    assert result["pruned"]["sparsity"] == pytest.approx(0.8, abs=0.01)
    assert result["pruned"]["params"] < result["dense"]["params"]
    assert result["pruned"]["macs"] < result["dense"]["macs"]
    assert result["dense"]["accuracy"] > 0.8


@pytest.mark.slow
def test_prune_gradual_with_a_cosine_lr_reaches_the_target(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["prune", "--model", "model_a", "--sparsity", "0.85", "--epochs", "6", "--json"]
    argv += ["--method", "lamp", "--param", "schedule=gradual", "--param", "prune_every=5"]
    argv += ["--lr-schedule", "cosine", "--augment", "shift", "--clean-epochs", "1"]
    argv += ["--distill", "0.5"]
    assert main(argv) == 0
    pruned = json.loads(capsys.readouterr().out)["pruned"]
    assert pruned["sparsity"] == pytest.approx(0.85, abs=0.01)
    assert pruned["info"]["finetune_epochs"] == 3 and pruned["info"]["mask_updates"] > 1
    assert pruned["method_params"]["schedule"] == "gradual"
    assert pruned["accuracy"] > 0.5


@pytest.mark.slow
def test_prune_dropnet_rewinds_and_saves_a_compacted_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DropNet resets to θ₀ every round: ``prune`` must hand it the initial weights."""
    saved = tmp_path / "dropnet.pt"
    argv = ["prune", "--model", "model_a", "--method", "dropnet", "--sparsity", "0.5"]
    argv += ["--save", str(saved), "--json", "--quiet"]  # default budget: 40 epochs
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pruned"]["params"] < result["dense"]["params"]
    assert result["pruned"]["macs"] < result["dense"]["macs"]
    assert 0.0 < result["pruned"]["info"]["unit_sparsity"] <= 0.5 + 1e-9
    model, _ = load_model(saved)
    assert count_parameters(model).prunable_nonzero == result["pruned"]["params"]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["prune", "--model", "resnet9000"], "valid model names"),
        (["prune", "--method", "magic"], "valid pruning method names"),
        (["prune", "--dataset", "imagenet"], "valid dataset names"),
        (["prune", "--sparsity", "1.0"], "sparsity must lie in [0, 1)"),
        (["prune", "--sparsity", "-0.2"], "sparsity must lie in [0, 1)"),
        (["prune", "--param", "noequals"], "KEY=VALUE"),
        (["prune", "--param", "scope=diagonal"], "scope"),
        (["prune", "--augment", "mixup"], "valid augmentation names"),
        (["prune", "--lr-schedule", "step"], "valid lr schedule names: constant, cosine"),
        (["prune", "--clean-epochs", "-2"], "clean_epochs must be an integer >= 0"),
        (["prune", "--distill", "2"], "distill must lie in [0, 1]"),
        (["prune", "--param", "schedule=gradual", "--param", "rewind=init"], "round-based"),
        (["run", "does-not-exist.toml"], "does not exist"),
        (["prune", "--dataset", "mnist", "--data-dir", "{tmp}/empty", "--no-download"], "mnist"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    assert fragment in one_line_error(capsys)


def test_malformed_spec_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(TINY_SPEC.replace("trials = 2", "trials = -1"))
    assert main(["run", str(spec)]) == 2
    assert "trials must be an integer >= 1" in one_line_error(capsys)


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["prune", "--sparsity", "lots"])
    assert info.value.code == 2
    one_line_error(capsys)


@pytest.mark.parametrize("kind", ["datasets", "models", "methods", "metrics", "selectors"])
def test_list(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", kind]) == 0
    out = capsys.readouterr().out
    expected = {
        "datasets": "digits",
        "models": "lenet300",
        "methods": "magnitude",
        "metrics": "gd",
        "selectors": "hq",
    }[kind]
    assert expected in out
