"""eigendamage: the Kronecker eigenbasis against autograd, exact rebuilds, the direction rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ensprune.errors import SpecError
from ensprune.models import build_from_layers, count_parameters
from ensprune.pruning import LayerSelection, PruningContext, make_method
from ensprune.pruning._curvature import iter_batches, kfac_factors, layer_views
from ensprune.pruning.eigendamage import (
    Eigenbasis,
    EigenDamagePruning,
    _choose_directions,
    install_eigen_factors,
)

MLP = [
    {"type": "flatten"},
    {"type": "linear", "in": 64, "out": 48},
    {"type": "relu"},
    {"type": "linear", "in": 48, "out": 32},
    {"type": "relu"},
    {"type": "linear", "in": 32, "out": 10},
]


class TinyNet(nn.Module):
    """Conv2d -> Linear -> Linear on (1, 4, 4) inputs: small enough for exact oracles."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc1 = nn.Linear(3 * 4 * 4, 5)
        self.fc2 = nn.Linear(5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(x)).flatten(1)
        return self.fc2(torch.tanh(self.fc1(h)))


class TinyNet1d(nn.Module):
    """Strided, dilated Conv1d without bias -> Linear, on (2, 9) inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3, stride=2, padding=2, dilation=2, bias=False)
        self.fc = nn.Linear(4 * 5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def _tiny() -> tuple[TinyNet, PruningContext]:
    torch.manual_seed(0)
    net = TinyNet()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 1, 4, 4)).astype(np.float32)
    y = rng.integers(0, 4, size=20)
    return net, PruningContext(x, y, x[:4], y[:4])


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_from_layers(MLP, (1, 8, 8))


def test_eigenbasis_costs_match_kfac_computed_by_autograd() -> None:
    """OBD in the eigenbasis: ½ λ_S,i λ_A,j W*_ij², with A and S from per-sample autograd."""
    net, context = _tiny()
    method = EigenDamagePruning(fisher="empirical", damping=1e-9, samples=20)
    bases = method.eigenbases(net, context)
    x, y = next(iter_batches(context, 20))
    # The oracle for fc1, in float64: A = E[h hᵀ] of its inputs, S = E[g gᵀ] of per-sample
    # dℓ/db (= dℓ/dz, one backward per sample).
    oracle = TinyNet().double()
    oracle.load_state_dict(net.state_dict())
    x = x.double()
    h = torch.tanh(oracle.conv(x)).flatten(1).detach()
    a = h.T @ h / len(x)
    grads = []
    for i in range(len(x)):
        oracle.zero_grad()
        F.cross_entropy(oracle(x[i : i + 1]), y[i : i + 1]).backward()
        grads.append(oracle.fc1.bias.grad.detach().clone())
    g = torch.stack(grads)
    s = g.T @ g / len(x)
    basis = bases["fc1.weight"]
    w = oracle.fc1.weight.detach()
    values_a, values_s = torch.linalg.eigvalsh(a), torch.linalg.eigvalsh(s)
    tol_a, tol_s = 1e-5 * float(values_a.max()), 1e-5 * float(values_s.max())
    assert torch.allclose(basis.q_a.T @ a @ basis.q_a, torch.diag(values_a), atol=tol_a)
    assert torch.allclose(basis.q_s.T @ s @ basis.q_s, torch.diag(values_s), atol=tol_s)
    expected = 0.5 * torch.outer(values_s.clamp_min(0), values_a.clamp_min(0)) * basis.rotated**2
    assert torch.allclose(basis.costs, expected, rtol=1e-4, atol=1e-6 * float(expected.max()))
    # The total is basis-independent: ½ vec(W)ᵀ (A ⊗ S) vec(W) = ½ tr(S W A Wᵀ).
    total = float(0.5 * torch.trace(s @ w @ a @ w.T))
    assert float(basis.costs.sum()) == pytest.approx(total, rel=1e-5)
    # Every layer (the convolution too) against _curvature's factors, through the same identity.
    factors = kfac_factors(net, iter_batches(context, 20), "empirical", torch.Generator())
    for name, view in layer_views(net).items():
        m = view.matrix().double()
        d = m.shape[1]
        total = 0.5 * torch.trace(factors[name].S @ m @ factors[name].A[:d, :d] @ m.T)
        assert float(bases[name].costs.sum()) == pytest.approx(float(total), rel=1e-6), name


def test_ekfac_costs_use_the_refitted_eigenvalues() -> None:
    """EKFAC: Λ*_ij = E[(Q_Sᵀ ∇_W ℓ_n Q_A)_ij²] from per-sample autograd gradients."""
    net, context = _tiny()
    bases = EigenDamagePruning("ekfac", "empirical", 1e-9, 20).eigenbases(net, context)
    x, y = next(iter_batches(context, 20))
    basis = bases["fc2.weight"]
    squares = []
    for i in range(len(x)):
        net.zero_grad()
        F.cross_entropy(net(x[i : i + 1]), y[i : i + 1]).backward()
        squares.append((basis.q_s.T @ net.fc2.weight.grad.double() @ basis.q_a) ** 2)
    expected = 0.5 * torch.stack(squares).mean(0) * basis.rotated**2
    assert torch.allclose(basis.costs, expected, rtol=1e-4, atol=1e-6 * float(expected.max()))


@pytest.mark.parametrize("kind", ["conv2d", "conv1d"])
def test_the_rebuilt_layers_without_pruning_compute_the_same_network(kind: str) -> None:
    net, context = _tiny()
    rebuilt: nn.Module = TinyNet()
    if kind == "conv1d":
        torch.manual_seed(0)
        net, rebuilt = TinyNet1d(), TinyNet1d()
        rng = np.random.default_rng(1)
        x = rng.normal(size=(20, 2, 9)).astype(np.float32)
        y = rng.integers(0, 3, size=20)
        context = PruningContext(x, y, x[:4], y[:4])
    bases = EigenDamagePruning(samples=20).eigenbases(net, context)
    rebuilt.load_state_dict(net.state_dict())
    for name, basis in bases.items():
        # the rotation round trip: Q_S W* Q_Aᵀ is W again
        everything = torch.arange(basis.rotated.shape[0]), torch.arange(basis.rotated.shape[1])
        w = layer_views(net)[name].matrix().double()
        assert torch.allclose(basis.reconstruct(*everything), w, atol=1e-12)
        install_eigen_factors(rebuilt, name.removesuffix(".weight"), basis, *everything)
    conv = rebuilt.get_submodule("conv")
    assert isinstance(conv, nn.Sequential) and len(conv) == 3
    x = torch.as_tensor(context.x_train[:16])
    assert torch.allclose(rebuilt(x), net(x), atol=1e-5)


def test_directions_go_cheapest_first_within_the_budget() -> None:
    # One 4x6 layer: row costs (summed over columns) 1, 2, 30, 40; columns 0.5 then 14.5 each.
    costs = torch.zeros(4, 6, dtype=torch.float64)
    costs[:, 0] = torch.tensor([0.1, 0.1, 0.2, 0.1])  # column 0 costs 0.5
    costs[:, 1:] = torch.tensor([[0.18], [0.38], [5.96], [7.98]]).expand(4, 5)
    eye4, eye6 = torch.eye(4, dtype=torch.float64), torch.eye(6, dtype=torch.float64)
    basis = Eigenbasis(eye4, eye6, torch.ones(4, 6, dtype=torch.float64), costs)
    # Dense 24 weights, budget 50 % -> 12. Removal order: column 0, rows 0 and 1, columns 1-4
    # (column 5 is the last input direction), row 2: then r_in = r_out = 1 costs 6 + 1 + 4 = 11.
    keep = _choose_directions({"w": basis}, head=None, dense=24, target=0.5)
    rows, cols = keep["w"]
    assert rows.tolist() == [3] and cols.tolist() == [5]
    # As the head it keeps every output direction (and so never gets smaller than 6 + 4 + 16).
    rows, cols = _choose_directions({"w": basis}, head="w", dense=24, target=0.5)["w"]
    assert rows.tolist() == [0, 1, 2, 3] and cols.tolist() == [5]


def test_sparsity_is_reached_and_the_network_is_physically_smaller(make_context, digits) -> None:
    net = _mlp()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = make_method("eigendamage", samples=256).prune(net, 0.6, make_context(epochs=0))
    dense = count_parameters(net).prunable
    assert count_parameters(result.model).prunable <= round(0.4 * dense)
    assert result.info["sparsity"] >= 0.6
    assert result.info["prunable_after"] == count_parameters(result.model).prunable
    for name, layer in result.info["rebuilt"].items():
        assert layer["weights_after"] < layer["weights_before"]
        assert len(result.model.get_submodule(name)) == 3
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key])  # the input network is untouched
    again = make_method("eigendamage", samples=256).prune(net, 0.6, make_context(epochs=0))
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key])
    out = result.model(torch.as_tensor(digits["x_val"][:8]))
    assert out.shape == (8, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("protect", [True, False])
def test_the_protected_head_keeps_every_output_direction(make_context, protect: bool) -> None:
    context = make_context(epochs=0, layers=LayerSelection(protect_head=protect))
    result = make_method("eigendamage", samples=256).prune(_mlp(), 0.95, context)
    head = result.info["rebuilt"]["5"]  # at 95 % every layer has to shrink
    assert (head["rank_out"] == 10) is protect


def test_layers_that_would_not_shrink_and_excluded_layers_stay_as_they_were(make_context) -> None:
    net = _mlp()
    context = make_context(epochs=0, layers=LayerSelection(exclude=("1",)))
    result = make_method("eigendamage", samples=256).prune(net, 0.2, context)
    assert isinstance(result.model.get_submodule("1"), nn.Linear)  # excluded
    assert "1" not in result.info["left_alone"] and "1" not in result.info["rebuilt"]
    assert torch.equal(result.model.get_submodule("1").weight, net.get_submodule("1").weight)
    for name in result.info["left_alone"]:
        assert torch.equal(result.model.get_submodule(name).weight, net.get_submodule(name).weight)
    assert result.info["rebuilt"], "nothing was rebuilt at 20 % of the remaining layers"


def test_bad_knobs_are_refused() -> None:
    with pytest.raises(SpecError, match="eigenvalues must be one of kfac, ekfac"):
        make_method("eigendamage", eigenvalues="diag")
    with pytest.raises(SpecError, match="damping"):
        make_method("eigendamage", damping=0)
