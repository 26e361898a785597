"""Checkpoints of any model without pickled code: zoo by name and config, user models by factory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from ensprune.errors import CheckpointError, SpecError
from ensprune.models import (
    build_from_factory,
    build_from_layers,
    build_model,
    build_seeded,
    load_model,
    resolve_factory,
    save_model,
    source_of,
)
from ensprune.models.checkpoint import FORMAT_V1


class SkipConcatNet(nn.Module):
    """A user's own network: a residual addition, a concatenation and BatchNorm."""

    def __init__(self, width: int = 6, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.body = nn.Conv2d(width, width, 3, padding=1)
        self.side = nn.Conv2d(width, width // 2, 1)
        self.head = nn.Linear((width + width // 2) * 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = torch.relu(x + self.body(x))
        x = torch.cat([x, torch.relu(self.side(x))], dim=1)
        return self.head(torch.flatten(nn.functional.max_pool2d(x, 2), 1))


def make_net(width: int = 6, num_classes: int = 10) -> nn.Module:
    return SkipConcatNet(width, num_classes)


def not_a_module() -> int:
    return 1


NOT_CALLABLE = 3
HERE = __name__  # pytest registers this module under this name, so it is importable by path


def test_factory_by_import_path_records_its_source() -> None:
    net = build_from_factory(f"{HERE}:make_net", width=4)
    assert isinstance(net, SkipConcatNet) and net.stem.out_channels == 4
    assert source_of(net) == {
        "kind": "factory",
        "target": f"{HERE}:make_net",
        "kwargs": {"width": 4},
    }
    assert resolve_factory(f"{HERE}:SkipConcatNet") is SkipConcatNet


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("make_net", "import path"),
        ("no_such_pkg_xyz.nets:make_net", "cannot import"),
        (f"{__name__}:missing", "no attribute"),
        (f"{__name__}:NOT_CALLABLE", "not callable"),
        (f"{__name__}:not_a_module", "not a torch.nn.Module"),
    ],
)
def test_bad_factories_are_one_clear_error(target: str, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        build_from_factory(target)


def test_factory_arguments_are_checked() -> None:
    with pytest.raises(SpecError, match="refused"):
        build_from_factory(f"{HERE}:make_net", depth=3)
    with pytest.raises(SpecError, match="JSON"):
        build_from_factory(f"{HERE}:make_net", width=object())


def test_user_model_round_trip_with_pruned_shapes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_from_factory(f"{HERE}:make_net", width=6)
    assert isinstance(net, SkipConcatNet)
    # Remove channels along the whole residual group: stem, bn, body in/out, side in, head in.
    keep = torch.tensor([0, 2, 3, 5])
    with torch.no_grad():
        net.stem.weight = nn.Parameter(net.stem.weight[keep])
        net.stem.bias = nn.Parameter(net.stem.bias[keep])
        net.stem.out_channels = 4
        for name in ("weight", "bias", "running_mean", "running_var"):
            setattr(net.bn, name, type(getattr(net.bn, name))(getattr(net.bn, name)[keep]))
        net.bn.num_features = 4
        net.body.weight = nn.Parameter(net.body.weight[keep][:, keep])
        net.body.bias = nn.Parameter(net.body.bias[keep])
        net.body.in_channels = net.body.out_channels = 4
        net.side.weight = nn.Parameter(net.side.weight[:, keep])
        net.side.in_channels = 4
        cols = torch.cat([torch.arange(c * 16, c * 16 + 16) for c in [*keep.tolist(), 6, 7, 8]])
        net.head.weight = nn.Parameter(net.head.weight[:, cols])
        net.head.in_features = len(cols)
    net.eval()
    x = torch.randn(5, 1, 8, 8)
    path = save_model(tmp_path / "user.pt", net, {"note": "pruned"})
    loaded, meta = load_model(path)
    loaded.eval()
    assert meta == {"note": "pruned"}
    assert isinstance(loaded, SkipConcatNet)
    assert loaded.stem.out_channels == 4 and loaded.head.in_features == 7 * 16
    assert torch.equal(loaded(x), net(x))
    payload = torch.load(path, weights_only=True)
    assert payload["source"]["kind"] == "factory"


@pytest.mark.parametrize(
    ("name", "config", "shape"),
    [
        ("resnet20", {"width": 4}, (1, 8, 8)),
        ("model_c", {}, (3, 16, 16)),
        ("lenet300", {}, (1, 8, 8)),
    ],
)
def test_zoo_models_save_by_name_and_config(
    name: str, config: dict, shape: tuple[int, ...], tmp_path: Path
) -> None:
    net = build_seeded(name, shape, 10, seed=1, **config)
    net.eval()
    path = save_model(tmp_path / "zoo.pt", net)
    payload = torch.load(path, weights_only=True)
    assert payload["source"] == {
        "kind": "zoo",
        "name": name,
        "input_shape": list(shape),
        "num_classes": 10,
        "config": config,
    }
    loaded, _ = load_model(path)
    loaded.eval()
    x = torch.randn(3, *shape)
    assert torch.equal(loaded(x), net(x))
    assert source_of(loaded) == payload["source"]


def test_first_format_checkpoints_still_load(tmp_path: Path) -> None:
    net = build_from_layers(
        [
            {"type": "flatten"},
            {"type": "linear", "in": 64, "out": 5},
            {"type": "relu"},
            {"type": "linear", "in": 5, "out": 3},
        ],
        (1, 8, 8),
    )
    path = tmp_path / "v1.pt"
    torch.save(
        {
            "format": FORMAT_V1,
            "layers": [
                {"type": "flatten"},
                {"type": "linear", "in": 64, "out": 5},
                {"type": "relu"},
                {"type": "linear", "in": 5, "out": 3},
            ],
            "input_shape": [1, 8, 8],
            "state_dict": net.state_dict(),
            "meta": {"a": 1},
        },
        path,
    )
    loaded, meta = load_model(path)
    x = torch.randn(2, 1, 8, 8)
    assert meta == {"a": 1} and torch.equal(loaded(x), net(x))


def test_a_model_without_a_source_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="build_from_factory"):
        save_model(tmp_path / "x.pt", SkipConcatNet())


def test_a_checkpoint_whose_factory_is_gone_is_one_clear_error(tmp_path: Path) -> None:
    net = build_from_factory(f"{HERE}:make_net")
    path = save_model(tmp_path / "user.pt", net)
    payload = torch.load(path, weights_only=True)
    payload["source"]["target"] = "gone_pkg_xyz.nets:make_net"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="cannot import"):
        load_model(path)


def test_zoo_options_are_checked() -> None:
    with pytest.raises(SpecError, match="resnet20"):
        build_model("resnet20", (1, 8, 8), 10, depth=3)
    with pytest.raises(SpecError, match="width"):
        build_model("resnet20", (1, 8, 8), 10, width=0)
