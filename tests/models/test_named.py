"""Networks by name: zoo names in any case, and user factories by import path."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ensprune.errors import SpecError, UnknownNameError
from ensprune.models import load_model, save_model
from ensprune.models.named import build_named, canonical_model_name

NETS = '''
from torch import nn


def make_net(input_shape, num_classes, hidden=8):
    """Takes the dataset's shapes."""
    c, h, w = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))


def fixed(**kwargs):
    """Knows its own shapes; **kwargs get only what the user gave."""
    assert "input_shape" not in kwargs
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
'''


@pytest.fixture
def user_pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "user_nets_pkg").mkdir()
    (tmp_path / "user_nets_pkg" / "__init__.py").write_text("")
    (tmp_path / "user_nets_pkg" / "nets.py").write_text(textwrap.dedent(NETS))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "user_nets_pkg.nets"
    for name in ("user_nets_pkg", "user_nets_pkg.nets"):
        sys.modules.pop(name, None)


def test_a_factory_gets_the_dataset_shapes_and_saves_by_path(user_pkg: str, tmp_path: Path) -> None:
    net = build_named(f"{user_pkg}:make_net", (1, 8, 8), 10, seed=0, hidden=5)
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10) and net[1].out_features == 5
    again = build_named(f"{user_pkg}:make_net", (1, 8, 8), 10, seed=0, hidden=5)
    assert torch.equal(net[1].weight, again[1].weight)  # seeded
    loaded, _ = load_model(save_model(tmp_path / "u.pt", net))
    assert torch.equal(loaded[1].weight, net[1].weight)
    assert build_named(f"{user_pkg}:fixed", (1, 8, 8), 10, seed=0)(torch.zeros(1, 64)).shape == (
        1,
        10,
    )


def test_names_resolve_before_anything_runs(user_pkg: str) -> None:
    assert canonical_model_name("ResNet20") == "resnet20"
    assert canonical_model_name(f" {user_pkg}:make_net ") == f"{user_pkg}:make_net"
    with pytest.raises(UnknownNameError, match="unknown model 'resnet99'"):
        canonical_model_name("resnet99")
    with pytest.raises(SpecError, match="cannot import module 'no_such_pkg"):
        canonical_model_name("no_such_pkg.nets:make_net")
    with pytest.raises(SpecError, match="has no attribute 'missing'"):
        canonical_model_name(f"{user_pkg}:missing")
