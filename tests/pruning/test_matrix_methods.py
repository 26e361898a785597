"""lowrank, pca and randmm: closed forms, physical size, exactness cases, save/load, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from ensprune.errors import SpecError
from ensprune.models import build_from_layers, count_macs, count_parameters, load_model, save_model
from ensprune.models.edits import RandMMLinear, apply_edit, edits_of
from ensprune.pruning import make_method

MLP = [
    {"type": "flatten"},
    {"type": "linear", "in": 64, "out": 48},
    {"type": "relu"},
    {"type": "linear", "in": 48, "out": 32},
    {"type": "relu"},
    {"type": "linear", "in": 32, "out": 10},
]


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_from_layers(MLP, (1, 8, 8))


def test_lowrank_meets_the_budget_and_is_physically_smaller(make_context, digits) -> None:
    net = _mlp()
    result = make_method("lowrank").prune(net, 0.6, make_context(epochs=0))
    dense = count_parameters(net).prunable
    assert count_parameters(result.model).prunable <= round(0.4 * dense)
    assert result.info["sparsity"] >= 0.6 - 1e-9
    assert count_macs(result.model, (1, 8, 8)) < count_macs(net, (1, 8, 8))
    assert result.info["ranks"], "no layer was factorised"


def test_lowrank_error_is_the_discarded_singular_energy(make_context) -> None:
    """Eckart–Young: ‖W − Ŵ‖² = Σ_{i>r} σ_i², and Ŵ is what the two factors compute."""
    net = _mlp()
    result = make_method("lowrank", energy=0.8).prune(net, 0.0, make_context(epochs=0))
    for name, rank in result.info["ranks"].items():
        w = net.get_submodule(name).weight.detach().double()
        factors = result.model.get_submodule(name)
        approx = (factors[1].weight @ factors[0].weight).detach().double()
        s = torch.linalg.svdvals(w)
        assert torch.allclose(((w - approx) ** 2).sum(), (s[rank:] ** 2).sum(), rtol=1e-4)
        assert (s[:rank] ** 2).sum() / (s**2).sum() >= 0.8 - 1e-9
        assert (s[: rank - 1] ** 2).sum() / (s**2).sum() < 0.8  # the fewest directions


def test_lowrank_conv_factors_compute_the_truncated_convolution(make_context, tiny_conv) -> None:
    net = tiny_conv(0)
    result = make_method("lowrank", energy=0.7).prune(net, 0.0, make_context(epochs=0))
    assert "0" in result.info["ranks"]
    conv = net[0]
    factors = result.model.get_submodule("0")
    assert isinstance(factors[0], nn.Conv2d) and factors[1].kernel_size == (1, 1)
    w = conv.weight.detach().reshape(conv.out_channels, -1)
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    r = result.info["ranks"]["0"]
    reference = nn.Conv2d(1, 8, 3, padding=1)
    reference.weight.data = ((u[:, :r] * s[:r]) @ vh[:r]).reshape(conv.weight.shape)
    reference.bias.data = conv.bias.detach()
    x = torch.randn(5, 1, 8, 8)
    assert torch.allclose(factors(x), reference(x), atol=1e-5)


def test_pca_is_exact_when_activations_span_few_directions(make_context, digits) -> None:
    torch.manual_seed(0)
    layers = [
        {"type": "flatten"},
        {"type": "linear", "in": 64, "out": 40},
        {"type": "linear", "in": 40, "out": 30},
        {"type": "relu"},
        {"type": "linear", "in": 30, "out": 10},
    ]
    net = build_from_layers(layers, (1, 8, 8))
    with torch.no_grad():  # the first layer's outputs live in a 3-dimensional affine subspace
        net[1].weight.copy_(torch.randn(40, 3) @ torch.randn(3, 64) / 8)
    result = make_method("pca", variance=0.999999).prune(net, 0.0, make_context(epochs=0))
    assert result.info["components"]["2"] == 3
    x = torch.as_tensor(digits["x_val"][:64])
    assert torch.allclose(result.model(x), net(x), atol=1e-4)
    assert count_parameters(result.model).prunable < count_parameters(net).prunable


def test_pca_budget_and_refusal(make_context) -> None:
    net = _mlp()
    result = make_method("pca").prune(net, 0.3, make_context(epochs=0))
    assert result.info["sparsity"] > 0.05
    assert "1" not in result.info["components"]  # fed by the network input: no hidden layer
    with pytest.raises(SpecError, match="pca needs a Linear layer fed by a hidden layer"):
        make_method("pca").prune(
            nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), 0.3, make_context(epochs=0)
        )


def test_randmm_is_unbiased_and_exact_with_every_index() -> None:
    torch.manual_seed(0)
    dense = nn.Linear(20, 3)
    x = torch.randn(4, 20)
    exact = dense(x).detach()
    total = torch.zeros_like(exact)
    for seed in range(2000):
        layer = RandMMLinear(20, 3, samples=5, seed=seed)
        layer.load_state_dict(dense.state_dict())
        total += layer(x).detach()
    assert torch.allclose(total / 2000, exact, atol=0.1 * float(exact.abs().max()))
    full = RandMMLinear(20, 3, samples=20, seed=0)
    full.load_state_dict(dense.state_dict())
    assert torch.allclose(full(x), exact)


def test_randmm_wraps_linears_and_saves(make_context, tmp_path: Path, digits) -> None:
    net = _mlp()
    result = make_method("randmm", samples=16).prune(net, 0.0, make_context(epochs=0))
    assert set(result.info["samples"]) == {"1", "3", "5"}
    assert all(isinstance(result.model.get_submodule(n), RandMMLinear) for n in ("1", "3", "5"))
    assert [e["op"] for e in edits_of(result.model)] == ["randmm"] * 3
    x = torch.as_tensor(digits["x_val"][:32])
    loaded, _ = load_model(save_model(tmp_path / "r.pt", result.model))
    assert torch.equal(loaded(x), result.model(x))
    by_sparsity = make_method("randmm").prune(net, 0.75, make_context(epochs=0))
    assert by_sparsity.info["samples"] == {"1": 16, "3": 12, "5": 8}
    with pytest.raises(SpecError, match="has none to wrap"):
        make_method("randmm").prune(nn.Sequential(nn.Conv2d(1, 2, 3)), 0.5, make_context())


def test_edits_refuse_what_they_cannot_express() -> None:
    net = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4), nn.Flatten())
    with pytest.raises(SpecError, match="cannot factorise '0'"):
        apply_edit(net, {"op": "factorise", "name": "0", "rank": 2})
    with pytest.raises(SpecError, match="wraps Linear layers"):
        apply_edit(net, {"op": "randmm", "name": "0", "samples": 2})
