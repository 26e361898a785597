"""One suite every registered pruning method passes, on four kinds of network.

Registering a method is enough to test it: every method runs on an MLP, a CNN with BatchNorm, a
ResNet-20 and a network defined only in this file (standing in for a user's own: a residual
block of grouped convolutions (2 and 4 groups), a concatenation, BatchNorm and a depthwise
convolution). For each: the input network is
untouched, the sparsity is reached, the result is deterministic, it saves and loads without
pickled code, and removing the units nothing reads (compaction) leaves its outputs unchanged.

A method that genuinely cannot handle a kind of network must raise a clear ``SpecError`` for it;
declare that in ``REFUSALS`` (method, kind) -> a regex of the message, and the suite asserts it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
from torch import nn

from ensprune.errors import SpecError
from ensprune.models import (
    build_from_factory,
    build_from_layers,
    build_seeded,
    count_parameters,
    load_model,
    prunable_parameters,
    save_model,
)
from ensprune.pruning import (
    METHODS,
    PruningContext,
    PruningResult,
    compact,
    dead_units,
    make_method,
    unit_layers,
)

NAMES = METHODS.names()
TARGET = 0.5
# (method, model kind) -> regex of the SpecError the method raises for that kind of network.
REFUSALS: dict[tuple[str, str], str] = {
    # ResNet-20's only Linear layer is its head: PCA has (almost) nothing it may shrink.
    ("pca", "resnet20"): "pca can shrink only Linear layers fed by a hidden layer",
}


# conv -> BatchNorm -> pool -> flatten -> linear -> linear: a layer-list CNN (saved as its list).
TINY_CNN = [
    {"type": "conv2d", "in": 1, "out": 8, "kernel": 3, "padding": 1},
    {"type": "batchnorm2d", "features": 8},
    {"type": "relu"},
    {"type": "maxpool2d", "kernel": 2},
    {"type": "flatten"},
    {"type": "linear", "in": 8 * 4 * 4, "out": 24},
    {"type": "relu"},
    {"type": "linear", "in": 24, "out": 10},
]


class UserNet(nn.Module):
    """A user's own network: skip connections (one over grouped convs), concatenation,
    BatchNorm, depthwise conv."""

    def __init__(self, width: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.body = nn.Conv2d(width, width, 3, padding=1)
        self.side = nn.Conv2d(width, width, 1)
        self.depthwise = nn.Conv2d(2 * width, 2 * width, 3, padding=1, groups=2 * width)
        self.grouped = nn.Conv2d(2 * width, 2 * width, 3, padding=1, groups=2)
        self.mix = nn.Conv2d(2 * width, 2 * width, 1, groups=4)
        self.head = nn.Linear(2 * width * 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = torch.relu(x + self.body(x))  # skip connection
        x = torch.cat([x, torch.relu(self.side(x))], dim=1)  # concatenation
        x = torch.relu(self.depthwise(x))
        x = torch.relu(x + self.mix(torch.relu(self.grouped(x))))  # skip over grouped convs
        return self.head(torch.flatten(nn.functional.max_pool2d(x, 2), 1))


def make_user_net(width: int = 8) -> nn.Module:
    return UserNet(width)


def _seeded(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def seeded() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return build()

    return seeded


MODELS: dict[str, Callable[[], nn.Module]] = {
    "mlp": lambda: build_seeded("model_a", (1, 8, 8), 10, seed=0),
    "cnn": _seeded(lambda: build_from_layers(TINY_CNN, (1, 8, 8))),
    "resnet20": lambda: build_seeded("resnet20", (1, 8, 8), 10, seed=0, width=4),
    "user": _seeded(lambda: build_from_factory(f"{__name__}:make_user_net")),
}
_CACHE: dict[tuple[str, str], tuple[nn.Module, PruningResult, PruningResult]] = {}


def _context(make_context: Callable[..., PruningContext], net: nn.Module) -> PruningContext:
    # Everything a method may ask for; the networks are untrained, so theta_0 is their weights.
    init = {k: v.clone() for k, v in net.state_dict().items()}
    return make_context(epochs=1, seed=3, initial_state=init, early_state=init)


def _run_twice(
    name: str, kind: str, make_context: Callable[..., PruningContext]
) -> tuple[nn.Module, PruningResult, PruningResult]:
    if (name, kind) not in _CACHE:
        net = MODELS[kind]()
        context = _context(make_context, net)
        first = make_method(name).prune(net, TARGET, context)
        second = make_method(name).prune(net, TARGET, context)
        _CACHE[name, kind] = (net, first, second)
    return _CACHE[name, kind]


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("name", NAMES)
def test_result_is_consistent(name: str, kind: str, make_context, digits, tmp_path: Path) -> None:
    if (name, kind) in REFUSALS:
        net = MODELS[kind]()
        with pytest.raises(SpecError, match=REFUSALS[name, kind]):
            make_method(name).prune(net, TARGET, _context(make_context, net))
        return
    fresh = MODELS[kind]()
    net, result, again = _run_twice(name, kind, make_context)
    method = METHODS.get(name)

    # The input network is never modified.
    for key, value in net.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), f"{name} modified its input ({key})"
    assert result.model is not net

    # Shapes: the same network with masks, or a compacted one with fewer units.
    x = torch.as_tensor(digits["x_val"][:32])
    net.eval(), result.model.eval()
    out = result.model(x)
    assert out.shape == net(x).shape
    assert torch.isfinite(out).all(), f"{name} produced non-finite outputs"
    if method.structured:
        assert result.masks == {}
        widths = [g.width for g in unit_layers(result.model, x[:1])]
        if not method.replaces_modules:  # factorised layers add unit layers of their own
            assert len(widths) == len(unit_layers(net, x[:1]))
        assert all(w >= 1 for w in widths)
    else:
        assert set(result.masks) == set(prunable_parameters(net))
        for key, param in prunable_parameters(result.model).items():
            assert not param[~result.masks[key]].any(), f"{name}: masked weights of {key} not zero"

    # Reported sparsity equals the measured share of the dense prunable weights removed.
    dense = count_parameters(net).prunable
    measured = 1.0 - count_parameters(result.model).prunable_nonzero / dense
    assert result.info["sparsity"] == pytest.approx(measured, abs=1e-3)
    if not method.structured and method.exact_sparsity:
        assert measured == pytest.approx(TARGET, abs=0.01)
    if method.removes_weights:
        assert measured > 0.05, f"{name} removed (almost) nothing at target {TARGET} on {kind}"

    # Deterministic for the same seed.
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key]), f"{name}: not deterministic"

    # Saves and loads without pickled code (zoo name / factory path + shapes + weights).
    path = save_model(tmp_path / "pruned.pt", result.model)
    loaded, _ = load_model(path)
    loaded.eval()
    assert torch.allclose(loaded(x), out, atol=1e-6)

    # Compaction is exact: removing every unit nothing reads leaves the outputs unchanged.
    if method.replaces_modules:
        return  # compact() does not yet understand factorised / wrapped layers
    small = compact(result.model, dead_units(result.model, x[:1]), x[:1])
    small.eval()
    assert torch.allclose(small(x), out, atol=1e-5)
    assert count_parameters(small).prunable <= count_parameters(result.model).prunable


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), "half"])
def test_out_of_range_sparsity_raises(name: str, bad: object, make_context) -> None:
    net = MODELS["mlp"]()
    with pytest.raises(SpecError):
        make_method(name).prune(net, bad, _context(make_context, net))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", NAMES)
def test_search_space_builds_the_method(name: str) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        params = METHODS.get(name).search_space(trial)
        method = make_method(name, **params)
        assert all(p.startswith(f"{name}.") for p in trial.params), trial.params
        assert set(params) <= set(method.params())
        study.tell(trial, 0.0)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_raises(name: str) -> None:
    with pytest.raises(SpecError):
        make_method(name, no_such_knob=1)


def test_the_user_network_is_really_a_graph() -> None:
    # The stand-in for a user's model must keep its skip, concatenation and depthwise conv.
    net = MODELS["user"]()
    groups = {g.name: g for g in unit_layers(net, torch.zeros(1, 1, 8, 8))}
    # stem, bn, body, the skip sum, side and the depthwise conv share one group through the
    # concatenation and the depthwise conv; the head is protected.
    assert "head.weight" not in groups
    coupled = max(groups.values(), key=lambda g: len(g.producers))
    assert {p for p, _ in coupled.producers} >= {"stem", "body", "side", "depthwise", "mix"}
    # It reaches the grouped convs (2 and 4 channel groups): it loses alike from 4 blocks; the
    # grouped conv's own outputs form a group of their own, blocked likewise.
    assert len(coupled.blocks) == 4 and len(groups["grouped.weight"].blocks) == 4
