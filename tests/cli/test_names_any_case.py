"""Every registry, driven through the CLI with an UPPER-case name, gives the lower-case result.

One test per registry: the name is upper-cased in the command a user types and the result
(keyed by canonical names) must equal the all-lower-case run's. Budgets are tiny (digits, a
subsample, one epoch) so each case takes a second or two.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ensprune.cli import main
from ensprune.ensemble import make_pool

# prune flags (all lower case); each registry's test upper-cases one of them
PRUNE = {
    "--dataset": "digits",
    "--model": "model_a",
    "--method": "magnitude",
    "--augment": "shift",
    "--optimizer": "adamw",
    "--lr-schedule": "cosine",
    "--param": "schedule=iterative",
}
PRUNE_FIXED = ["--sparsity", "0.5", "--epochs", "1", "--finetune-epochs", "1"]
PRUNE_FIXED += ["--max-train", "200", "--seed", "3", "--param", "rounds=2", "--json", "--quiet"]


def _prune(capsys: pytest.CaptureFixture[str], flags: dict[str, str]) -> dict[str, Any]:
    argv = ["prune", *PRUNE_FIXED]
    for flag, value in flags.items():
        argv += [flag, value]
    assert main(argv) == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    for row in (result["dense"], result["pruned"]):
        _drop_timings(row)
    # where the dense network came from (trained here or the dense cache) and how long its
    # training took are not results
    for key in ("source", "cache_file", "train_seconds"):
        result.get("recipe", {}).get("dense", {}).pop(key, None)
    return result


def _drop_timings(row: dict[str, Any]) -> None:
    """Wall-clock times (latency, its spread) are not results: equal runs measure them differently."""
    row.pop("latency_ms")
    measurement = row.get("measurement", {})
    for key in [k for k in measurement if k.startswith("latency_")]:
        del measurement[key]


@pytest.fixture(scope="module")
def lower_prune() -> dict[str, Any]:
    """The all-lower-case run, once for every registry's test (module fixtures cannot use capsys)."""
    import contextlib
    import io

    out = io.StringIO()
    argv = ["prune", *PRUNE_FIXED]
    for flag, value in PRUNE.items():
        argv += [flag, value]
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    result = json.loads(out.getvalue())
    for row in (result["dense"], result["pruned"]):
        _drop_timings(row)
    # where the dense network came from (trained here or the dense cache) and how long its
    # training took are not results
    for key in ("source", "cache_file", "train_seconds"):
        result.get("recipe", {}).get("dense", {}).pop(key, None)
    return result


@pytest.mark.parametrize(
    ("registry", "flag"),
    [
        ("datasets", "--dataset"),
        ("models", "--model"),
        ("methods", "--method"),
        ("augmentations", "--augment"),
        ("optimizers", "--optimizer"),
        ("lr_schedules", "--lr-schedule"),
        ("schedules", "--param"),
    ],
)
def test_prune_with_an_upper_case_name_equals_the_lower_case_run(
    registry: str, flag: str, lower_prune: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    flags = dict(PRUNE)
    key, _, value = flags[flag].partition("=")
    flags[flag] = f"{key}={value.upper()}" if flag == "--param" else key.upper()
    result = _prune(capsys, flags)
    assert result == lower_prune, registry
    assert result["pruned"]["method"] == "magnitude" and result["model"] == "model_a"
    assert result["pruned"]["method_params"]["schedule"] == "iterative"


@pytest.fixture(scope="module")
def preds_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pool(7, 200, 3, seed=5).save(tmp_path_factory.mktemp("case") / "val.npz")


SELECT = {"--selector": "hq", "--metric": "gd,kw", "--voting": "plurality"}


def _select(preds: Path, capsys: pytest.CaptureFixture[str], flags: dict[str, str]) -> dict:
    argv = ["select", str(preds), "--max-size", "3", "--json", "--quiet"]
    for flag, value in flags.items():
        argv += [flag, value]
    assert main(argv) == 0, capsys.readouterr().err
    doc = json.loads(capsys.readouterr().out)
    doc.pop("seconds", None)
    return doc


@pytest.mark.parametrize(
    ("registry", "flag"),
    [("selectors", "--selector"), ("metrics", "--metric"), ("voting", "--voting")],
)
def test_select_with_an_upper_case_name_equals_the_lower_case_run(
    registry: str, flag: str, preds_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lower = _select(preds_file, capsys, SELECT)
    upper = _select(preds_file, capsys, {**SELECT, flag: SELECT[flag].upper()})
    assert upper == lower, registry
    assert upper["selector"] == "hq" and upper["voting"] == "plurality"
    assert upper["params"]["metrics"] == ["gd", "kw"]


SPEC = """
[study]
name = "case"
seed = 2
[data]
dataset = "digits"
max_train = 200
[pool]
architectures = ["model_a"]
seeds = [0, 1]
epochs = 1
[search]
methods = ["magnitude"]
sparsity = [0.3, 0.9]
trials = 3
finetune_epochs = 0
sampler = "{sampler}"
[search.method_params.magnitude]
schedule = "oneshot"
[selection]
selector = "topk"
k = 2
max_size = 2
"""


@pytest.mark.slow
def test_run_with_an_upper_case_sampler_equals_the_lower_case_run(tmp_path: Path) -> None:
    results = []
    for sampler in ("random", "RANDOM"):
        spec = tmp_path / f"{sampler}.toml"
        spec.write_text(SPEC.format(sampler=sampler))
        run_dir = tmp_path / f"run-{sampler}"
        assert main(["run", str(spec), "--run-dir", str(run_dir), "--quiet"]) == 0
        trials = pd.read_csv(run_dir / "trials.csv")
        results.append(trials[["member", "number", "target_sparsity", "val_accuracy", "sparsity"]])
    pd.testing.assert_frame_equal(results[0], results[1])
