"""OBS (layer-wise, OBC) and K-FAC/EKFAC saliencies against closed forms; OBD ordering."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ensprune.errors import SpecError
from ensprune.models import evaluate
from ensprune.pruning import make_method
from ensprune.pruning._curvature import KroneckerFactors, LayerView
from ensprune.pruning.kfac import kfac_curvature, obs_update, saliency_scores
from ensprune.pruning.obs import obc_prune_rows, refit


def _problem(rows: int = 3, d: int = 6, n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(d, n, generator=gen, dtype=torch.float64)
    x[1] += 0.8 * x[0]  # correlated inputs: the update matters
    w = torch.randn(rows, d, generator=gen, dtype=torch.float64)
    return w, x


def _ridge_h(x: torch.Tensor, damping: float) -> torch.Tensor:
    h = 2 * x @ x.T / x.shape[1]
    return h + damping * h.diagonal().mean() * torch.eye(len(h), dtype=h.dtype)


def test_obc_survivors_are_the_optimal_refit_for_the_chosen_mask() -> None:
    """OBS with updates ends where least squares on the kept weights does (same H)."""
    w, x = _problem()
    damping = 0.01
    h = 2 * x @ x.T / x.shape[1]
    counts = torch.tensor([2, 4, 0])
    new, keep = obc_prune_rows(w, h, counts, damping)
    assert keep.shape == w.shape
    assert ((~keep).sum(1) == counts).all()
    assert (new[~keep] == 0).all()
    hd = _ridge_h(x, damping)
    for r in range(w.shape[0]):
        k = keep[r]
        # min (w' - w)ᵀ H (w' - w) s.t. w'_pruned = 0  ->  w'_K = H_KK⁻¹ H_K: w
        expected = torch.linalg.solve(hd[k][:, k], hd[k] @ w[r])
        assert torch.allclose(new[r, k].double(), expected, atol=1e-4), r


def test_obc_first_removal_is_the_smallest_obs_cost() -> None:
    w, x = _problem(rows=1)
    h = 2 * x @ x.T / x.shape[1]
    _, keep = obc_prune_rows(w, h, torch.tensor([1]), 0.01)
    inverse = torch.linalg.inv(_ridge_h(x, 0.01))
    cost = w[0] ** 2 / torch.diagonal(inverse)
    assert int((~keep[0]).nonzero()) == int(cost.argmin())


def test_obc_never_prunes_frozen_columns_and_keeps_one_weight() -> None:
    w, x = _problem(rows=2, d=5)
    h = 2 * x @ x.T / x.shape[1]
    new, keep = obc_prune_rows(w, h, torch.tensor([9, 9]), 0.01, frozen=1)
    assert keep.shape == (2, 4)
    assert (keep.sum(1) == 1).all()  # counts clamp: a row keeps at least one prunable weight
    assert (new[:, -1] != 0).all()  # the frozen (bias) column is updated, never removed


def test_refit_reproduces_outputs_on_new_inputs() -> None:
    w, x = _problem(rows=2, d=4, n=200)
    moved = x + 0.1 * torch.randn(
        x.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype
    )
    h = 2 * moved @ moved.T / x.shape[1]
    cross = 2 * x @ moved.T / x.shape[1]
    fitted = refit(w, h, cross, 1e-9)
    best = torch.linalg.lstsq(moved.T, (w @ x).T).solution.T
    assert torch.allclose(fitted, best, atol=1e-5)


def _layer_and_factors() -> tuple[LayerView, KroneckerFactors]:
    torch.manual_seed(0)
    layer = nn.Linear(3, 2).double()
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(3 + 1, 3 + 1, generator=gen, dtype=torch.float64)
    s = torch.randn(2, 2, generator=gen, dtype=torch.float64)
    return LayerView("weight", layer), KroneckerFactors(a @ a.T, s @ s.T, bias=True)


def test_kfac_saliencies_match_the_explicit_kronecker_matrix() -> None:
    view, f = _layer_and_factors()
    curvature = kfac_curvature(f, 1e-3)
    fisher = torch.kron(f.A, f.S)  # column-stacked vec([W b])
    eye = lambda m: m + 1e-3 * torch.linalg.eigvalsh(m).mean() * torch.eye(len(m), dtype=m.dtype)  # noqa: E731
    inverse = torch.kron(torch.linalg.inv(eye(f.A)), torch.linalg.inv(eye(f.S)))
    w = view.weight.detach()
    w_vec = w.T.reshape(-1)
    obd = saliency_scores({"weight": view}, {"weight": curvature}, "obd")["weight"]
    obs = saliency_scores({"weight": view}, {"weight": curvature}, "obs")["weight"]
    n = w.numel()
    assert torch.allclose(obd.T.reshape(-1), 0.5 * w_vec**2 * torch.diagonal(fisher)[:n])
    assert torch.allclose(obs.T.reshape(-1), w_vec**2 / (2 * torch.diagonal(inverse)[:n]))


def test_kfac_obs_update_of_one_weight_is_the_obs_formula() -> None:
    view, f = _layer_and_factors()
    curvature = kfac_curvature(f, 1e-3)
    theta = torch.cat([view.weight.detach(), view.module.bias.detach()[:, None]], 1)
    vec = theta.T.reshape(-1)
    eye = lambda m: m + 1e-3 * torch.linalg.eigvalsh(m).mean() * torch.eye(len(m), dtype=m.dtype)  # noqa: E731
    inverse = torch.kron(torch.linalg.inv(eye(f.A)), torch.linalg.inv(eye(f.S)))
    q = 3  # column-stacked index of W[1, 1]
    expected = vec - vec[q] / inverse[q, q] * inverse[:, q]
    keep = torch.ones(2, 3, dtype=torch.bool)
    keep[1, 1] = False
    obs_update(view, keep, curvature)
    got = torch.cat([view.weight.detach(), view.module.bias.detach()[:, None]], 1).T.reshape(-1)
    assert got[q] == 0
    assert torch.allclose(got, expected, atol=1e-10)


@pytest.mark.parametrize(
    ("name", "knobs", "match"),
    [
        ("obd", {"fisher": "diagonal"}, "fisher must be one of empirical, true, hutchinson"),
        ("kfac", {"saliency": "woodfisher"}, "saliency must be one of obd, obs"),
        ("kfac", {"fisher": "hutchinson"}, "fisher must be one of empirical, true"),
        ("ekfac", {"damping": 0}, "damping must be a positive number"),
        ("obs", {"samples": 0}, "samples must be an integer >= 1"),
        ("kfac", {"update": "yes"}, "update must be true or false"),
    ],
)
def test_bad_knobs_name_the_problem(name: str, knobs: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        make_method(name, **knobs)


def test_second_order_beats_magnitude_one_shot(trained_conv, make_context, digits) -> None:
    """At 80 % one-shot without fine-tuning, layer-wise OBS keeps more accuracy than magnitude."""
    net, _ = trained_conv
    context = make_context(epochs=0)
    acc = {}
    for name in ("magnitude", "obs"):
        result = make_method(name, schedule="oneshot").prune(net, 0.8, context)
        acc[name] = evaluate(result.model, digits["x_val"], digits["y_val"])[1]
    assert acc["obs"] > acc["magnitude"] + 0.02, acc


class GroupedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.head = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.depthwise(torch.relu(self.stem(x))))
        return self.head(x.flatten(1))


@pytest.mark.parametrize(
    ("name", "knobs"),
    [("obd", {"fisher": "hutchinson"}), ("kfac", {}), ("ekfac", {"saliency": "obd"}), ("obs", {})],
)
def test_grouped_convolutions_are_pruned(name: str, knobs: dict, make_context) -> None:
    torch.manual_seed(0)
    net = GroupedNet()
    result = make_method(name, schedule="oneshot", samples=128, **knobs).prune(
        net, 0.6, make_context(epochs=0)
    )
    weight = result.model.depthwise.weight
    assert weight.shape == net.depthwise.weight.shape
    assert not weight[~result.masks["depthwise.weight"]].any()
    assert result.info["sparsity"] == pytest.approx(0.6, abs=0.01)
