"""Weights from a file into a network built here: plain state_dicts and ensprune checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from ensprune.errors import CheckpointError
from ensprune.models import build_seeded, save_model
from ensprune.models.weights import load_weights, read_state_dict


def net(hidden: int = 6) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))


def test_a_plain_state_dict_and_an_ensprune_checkpoint_load(tmp_path: Path) -> None:
    trained = net()
    torch.save(trained.state_dict(), tmp_path / "plain.pt")
    fresh = load_weights(net(), tmp_path / "plain.pt")
    x = torch.randn(5, 1, 2, 2)
    assert torch.equal(fresh(x), trained(x))

    zoo = build_seeded("model_a", (1, 8, 8), 10, seed=1)
    save_model(tmp_path / "zoo.pt", zoo, {"note": "x"})
    other = load_weights(build_seeded("model_a", (1, 8, 8), 10, seed=2), tmp_path / "zoo.pt")
    for key, value in zoo.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)


@pytest.mark.parametrize(
    ("write", "fragment"),
    [
        (
            lambda p: torch.save(net(hidden=5).state_dict(), p),
            r"3 shape mismatch\(es\), first 1\.weight: checkpoint \(5, 4\) vs model \(6, 4\)",
        ),
        (
            lambda p: torch.save({"1.weight": torch.zeros(6, 4)}, p),
            r"missing keys 1\.bias, 3\.weight",
        ),
        (
            lambda p: torch.save({**net().state_dict(), "extra": torch.zeros(1)}, p),
            "unexpected keys extra",
        ),
        (lambda p: torch.save(net(), p), "weights_only=True"),  # a pickled model, not weights
        (lambda p: p.write_bytes(b"not a checkpoint"), "cannot be read"),
        (lambda p: torch.save({"a": 1}, p), "entry 'a' is not a named tensor"),
        (lambda p: torch.save([torch.zeros(1)], p), "neither a state_dict"),
    ],
)
def test_a_file_that_does_not_fit_is_one_line(tmp_path: Path, write, fragment: str) -> None:
    path = tmp_path / "w.pt"
    write(path)
    with pytest.raises(CheckpointError, match=fragment) as info:
        load_weights(net(), path)
    assert "\n" not in str(info.value)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pt")
