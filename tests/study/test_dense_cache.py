"""``ensprune prune`` trains a dense network once per recipe and reuses it from the cache."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from ensprune.cli import main
from ensprune.study import dense_cache, single

# tiny and fast: digits, 3 epochs, a one-round magnitude prune with one fine-tuning epoch
ARGV = ["prune", "--model", "model_a", "--epochs", "3", "--sparsity", "0.5", "--json"]
ARGV += ["--param", "rounds=1", "--finetune-epochs", "1", "--quiet"]


@pytest.fixture
def training_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ``desc`` of every dense training run ``prune`` starts (fine-tuning is not counted)."""
    calls: list[str] = []
    real = single.train_model

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(str(kwargs.get("desc")))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(single, "train_model", counting)
    return calls


def prune(capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    assert main([*ARGV, *extra]) == 0
    return json.loads(capsys.readouterr().out)


def cache_files() -> list[Path]:
    return sorted(dense_cache.cache_dir().glob("*.pt"))


def test_second_call_loads_the_cached_network_instead_of_training(
    capsys: pytest.CaptureFixture[str], training_calls: list[str]
) -> None:
    first = prune(capsys)
    assert training_calls == ["train"]
    assert first["recipe"]["dense"]["source"] == "trained"
    assert [str(p) for p in cache_files()] == [first["recipe"]["dense"]["cache_file"]]

    second = prune(capsys)
    assert training_calls == ["train"]  # no second training run
    assert second["recipe"]["dense"]["source"] == "cache"
    assert second["recipe"]["dense"]["epochs_run"] == first["recipe"]["dense"]["epochs_run"]
    # the same dense network, and the same θ₀/early state: the same pruned result
    assert second["dense"]["accuracy"] == first["dense"]["accuracy"]
    assert second["pruned"]["accuracy"] == first["pruned"]["accuracy"]


@pytest.mark.slow  # four prune runs
def test_a_changed_recipe_or_no_cache_trains_again(
    capsys: pytest.CaptureFixture[str], training_calls: list[str]
) -> None:
    prune(capsys)
    prune(capsys, "--lr", "0.002")  # another recipe: its own entry
    assert training_calls == ["train", "train"]
    assert len(cache_files()) == 2
    prune(capsys, "--seed", "1")
    assert len(training_calls) == 3 and len(cache_files()) == 3
    result = prune(capsys, "--no-cache")  # a cached recipe, but the cache is skipped
    assert len(training_calls) == 4 and len(cache_files()) == 3
    assert result["recipe"]["dense"]["source"] == "trained"
    assert result["recipe"]["dense"]["cache_file"] is None


@pytest.mark.slow  # three prune runs
def test_a_corrupt_entry_is_retrained_with_a_warning(
    capsys: pytest.CaptureFixture[str],
    training_calls: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = prune(capsys)
    (path,) = cache_files()
    path.write_bytes(path.read_bytes()[:100])  # truncated, as by a full disk
    with caplog.at_level(logging.WARNING, logger="ensprune.study"):
        second = prune(capsys)
    assert "is unreadable" in caplog.text and "training it again" in caplog.text
    assert len(training_calls) == 2
    assert second["dense"]["accuracy"] == first["dense"]["accuracy"]
    third = prune(capsys)  # the retrained network replaced the corrupt entry
    assert len(training_calls) == 2 and third["recipe"]["dense"]["source"] == "cache"


def test_an_entry_of_another_key_is_not_used(tmp_path: Path) -> None:
    entry = dense_cache.CachedDense(
        {"w": torch.ones(2)}, {"w": torch.zeros(2)}, None, {"epochs_run": 1}
    )
    path = dense_cache.store_entry(tmp_path / "a.pt", "key-a", entry)
    loaded = dense_cache.load_entry(path, "key-a")
    assert loaded is not None and torch.equal(loaded.state["w"], torch.ones(2))
    assert loaded.early_state is None and loaded.facts == {"epochs_run": 1}
    assert dense_cache.load_entry(path, "key-b") is None  # a renamed or colliding file
    assert dense_cache.load_entry(tmp_path / "missing.pt", "key-a") is None


def test_the_json_recipe_shows_both_dense_stages(
    capsys: pytest.CaptureFixture[str], training_calls: list[str]
) -> None:
    threads_before = torch.get_num_threads()
    result = prune(capsys, "--dense-anneal", "0.1", "--batch-size", "128")
    assert training_calls == ["train", "train (annealed)"]
    dense = result["recipe"]["dense"]
    assert dense["lr_stages"] == pytest.approx([1e-3, 1e-4])
    assert dense["anneal"] == 0.1 and dense["batch_size"] == 128 and dense["optimizer"] == "adam"
    assert result["recipe"]["threads"] == 1  # the default: no oversubscription on small nets
    assert torch.get_num_threads() == threads_before  # restored for the caller
    finetune = result["recipe"]["finetune"]
    assert finetune["epochs"] == 1 and finetune["batch_size"] == 128
    assert finetune["method"] == "magnitude" and finetune["method_params"]["rounds"] == 1


def test_cache_location_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENSPRUNE_CACHE_DIR", "/somewhere")
    assert dense_cache.cache_dir() == Path("/somewhere/dense")
    monkeypatch.delenv("ENSPRUNE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert dense_cache.cache_dir() == Path("/xdg/ensprune/dense")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dense-anneal", "0"], "dense anneal must lie in (0, 1]"),
        (["--dense-anneal", "1.5"], "dense anneal must lie in (0, 1]"),
        (["--threads", "-1"], "--threads must be >= 0"),
    ],
)
def test_bad_recipe_flags_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], training_calls: list[str], flags: list[str], message: str
) -> None:
    assert main([*ARGV, *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert training_calls == []  # refused before any training
