"""Curvature estimates against independent oracles: per-sample autograd loops and exact Hessians."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ensprune.errors import SpecError
from ensprune.pruning._curvature import (
    ekfac_eigenvalues,
    fisher_diagonal,
    guarded_eigh,
    kfac_factors,
    layer_views,
    sampled_labels,
)


class TinyNet(nn.Module):
    """Grouped Conv1d -> Conv2d -> Linear -> Linear: every layer kind the curvature code handles."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(2, 4, 3, padding=1, groups=2)
        self.c2 = nn.Conv2d(2, 2, 3, stride=2, padding=1, groups=2, bias=False)
        self.fc = nn.Sequential(nn.Linear(2 * 1 * 3, 5), nn.Tanh(), nn.Linear(5, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.c1(x))  # (N, 4, 6)
        h = torch.tanh(self.c2(h.reshape(-1, 2, 2, 6)))  # (N, 2, 1, 3)
        return self.fc(h.flatten(1))


def _net() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet().double()


def _data(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, 2, 6, generator=gen, dtype=torch.float64), torch.randint(
        0, 4, (n,), generator=gen
    )


def _per_sample_grads(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[dict]:
    """The oracle: one autograd backward per sample."""
    views = layer_views(net)
    out = []
    for i in range(len(x)):
        net.zero_grad()
        F.cross_entropy(net(x[i : i + 1]), y[i : i + 1]).backward()
        out.append({n: v.weight.grad.detach().clone() for n, v in views.items()})
        out[-1].update(
            {
                f"{n}:bias": v.module.bias.grad.detach().clone()
                for n, v in views.items()
                if v.has_bias
            }
        )
    return out


def test_patches_reproduce_every_layer() -> None:
    net, (x, _) = _net(), _data()
    views = layer_views(net)
    from ensprune.pruning._curvature import Recorder

    outputs = {}
    hooks = [
        v.module.register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, o))
        for n, v in views.items()
    ]
    with Recorder(views, grads=False) as rec, torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    for name, view in views.items():
        z = view.patches(rec.inputs[name]) @ view.matrix().T
        if view.has_bias:
            z = z + view.module.bias
        expected = outputs[name]
        expected = (
            expected.reshape(len(x), -1, expected.shape[-1])
            if name.startswith("fc")
            else expected.flatten(2).transpose(1, 2)
        )
        assert torch.allclose(z, expected, atol=1e-10), name


def test_empirical_fisher_diagonal_matches_per_sample_autograd() -> None:
    net, (x, y) = _net(), _data()
    got = fisher_diagonal(net, iter([(x, y)]), "empirical", torch.Generator())
    grads = _per_sample_grads(net, x, y)
    for name in got:
        expected = torch.stack([g[name] ** 2 for g in grads]).mean(0)
        assert torch.allclose(got[name], expected, rtol=1e-8, atol=1e-12), name


def test_true_fisher_uses_labels_sampled_from_the_model() -> None:
    net, (x, _) = _net(), _data()
    got = fisher_diagonal(
        net, iter([(x, x[:, 0, 0].long())]), "true", torch.Generator().manual_seed(5)
    )
    labels = sampled_labels(net(x), torch.Generator().manual_seed(5))
    grads = _per_sample_grads(net, x, labels)
    for name in got:
        expected = torch.stack([g[name] ** 2 for g in grads]).mean(0)
        assert torch.allclose(got[name], expected, rtol=1e-8, atol=1e-12), name
    again = fisher_diagonal(net, iter([(x, labels)]), "true", torch.Generator().manual_seed(5))
    assert all(torch.equal(got[n], again[n]) for n in got)  # seeded: reproducible


def test_true_fisher_converges_to_its_expectation() -> None:
    """Many sampled labels of one input -> Σ_c p_c (∇ℓ_c)² (exact, by autograd per class)."""
    net, (x, _) = _net(), _data(1)
    xs = x.expand(4000, -1, -1)
    got = fisher_diagonal(
        net,
        iter([(xs, torch.zeros(4000, dtype=torch.long))]),
        "true",
        torch.Generator().manual_seed(0),
    )
    probs = torch.softmax(net(x), 1)[0].detach()
    per_class = _per_sample_grads(net, x.expand(4, -1, -1), torch.arange(4))
    for name in got:
        expected = sum(p * g[name] ** 2 for p, g in zip(probs, per_class, strict=True))
        assert torch.allclose(got[name], expected, rtol=0.1, atol=1e-4 * expected.max()), name


def test_hutchinson_is_v_times_exact_hessian_v_averaged() -> None:
    """Against the exact Hessian (autograd.functional): mean over probes of v ⊙ Hv, same v.

    E[v ⊙ Hv] = diag(H) for Rademacher v, so this pins an unbiased estimate of the diagonal.
    """
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x = torch.randn(16, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (16,))
    probes = 5
    got = fisher_diagonal(
        net, iter([(x, y)]), "hutchinson", torch.Generator().manual_seed(0), probes=probes
    )
    params = dict(net.named_parameters())
    names = ("0.weight", "2.weight")

    def loss(w0: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(x @ w0.T + params["0.bias"])
        return F.cross_entropy(h @ w2.T + params["2.bias"], y)

    hess = torch.autograd.functional.hessian(loss, tuple(params[n] for n in names))
    sizes = [params[n].numel() for n in names]
    full = torch.cat(
        [torch.cat([hess[i][j].reshape(sizes[i], sizes[j]) for j in range(2)], 1) for i in range(2)]
    )
    gen = torch.Generator().manual_seed(0)
    expected = torch.zeros(sum(sizes), dtype=torch.float64)
    for _ in range(probes):
        v = torch.cat(
            [
                (torch.randint(0, 2, params[n].shape, generator=gen).double() * 2 - 1).reshape(-1)
                for n in names
            ]
        )
        expected += v * (full @ v) / probes
    for name, part in zip(names, torch.split(expected, sizes), strict=True):
        assert torch.allclose(got[name], part.reshape(params[name].shape), atol=1e-10), name
    # and the estimate is of the right thing: the diagonal, within the noise of 5 probes
    assert torch.corrcoef(torch.stack([expected, torch.diagonal(full)]))[0, 1] > 0.5


def test_kfac_of_one_sample_is_its_exact_fisher_block() -> None:
    """With one sample (and one position), A ⊗ S is that sample's gradient outer product."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x, y = torch.randn(1, 3, dtype=torch.float64), torch.tensor([2])
    factors = kfac_factors(net, iter([(x, y)]), "empirical", torch.Generator())
    grads = _per_sample_grads(net, x, y)[0]
    for name, f in factors.items():
        theta = torch.cat([grads[name], grads[f"{name}:bias"][:, None]], 1)  # (out, d + 1)
        vec = theta.T.reshape(-1)  # column-stacked: index (j, i) -> j * out + i
        assert torch.allclose(torch.kron(f.A, f.S), torch.outer(vec, vec), atol=1e-12), name


def test_kfac_factors_are_input_and_gradient_covariances() -> None:
    net, (x, y) = _net(), _data()
    factors = kfac_factors(
        net, iter([(x[:5], y[:5]), (x[5:], y[5:])]), "empirical", torch.Generator()
    )
    grads = _per_sample_grads(net, x, y)
    # Linear layers: S = mean of per-sample bias gradients' outer products (dℓ/db = g).
    bias_grads = torch.stack([g["fc.2.weight:bias"] for g in grads])
    assert torch.allclose(factors["fc.2.weight"].S, bias_grads.T @ bias_grads / len(x))
    for f in factors.values():
        assert torch.equal(f.A, f.A.T) and torch.equal(f.S, f.S.T)
        assert torch.linalg.eigvalsh(f.A).min() > -1e-10


def test_ekfac_eigenvalues_are_the_exact_fisher_diagonal_in_the_eigenbasis() -> None:
    net, (x, y) = _net(), _data()
    factors = kfac_factors(net, iter([(x, y)]), "empirical", torch.Generator())
    bases = {n: (guarded_eigh(f.S)[1], guarded_eigh(f.A)[1]) for n, f in factors.items()}
    values = ekfac_eigenvalues(net, iter([(x, y)]), bases, "empirical", torch.Generator())
    grads = _per_sample_grads(net, x, y)
    views = layer_views(net)
    for name, (q_s, q_a) in bases.items():
        if views[name].groups > 1:
            continue  # refitted on the block-diagonal matrix, whose zeros are no parameters
        rows = []
        for g in grads:
            theta = g[name].reshape(g[name].shape[0], -1)
            if factors[name].bias:
                theta = torch.cat([theta, g[f"{name}:bias"][:, None]], 1)
            rows.append((q_s.T @ theta @ q_a) ** 2)
        assert torch.allclose(values[name], torch.stack(rows).mean(0), atol=1e-12), name


def test_guarded_eigh_survives_singular_and_asymmetric_input() -> None:
    m = torch.zeros(4, 4)
    m[0, 1] = 1e-9  # not symmetric, singular
    values, vectors = guarded_eigh(m)
    assert torch.isfinite(values).all() and (values >= 0).all() and torch.isfinite(vectors).all()


def test_circular_padding_is_refused() -> None:
    net = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular"))
    with pytest.raises(SpecError, match="padding_mode='circular'"):
        layer_views(net)


def test_grouped_matrix_round_trip() -> None:
    view = layer_views(_net())["c2.weight"]
    m = view.matrix()
    assert m.shape == (2, 2 * 9)
    assert (m[0, 9:] == 0).all() and (m[1, :9] == 0).all()  # block-diagonal
    assert torch.equal(view.to_weight(m), view.weight.detach())
