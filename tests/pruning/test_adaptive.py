"""Learned-ratio pruning: FFT density, hand-written gradients of r and τ, the method's contract."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ensprune.errors import SpecError
from ensprune.models import count_parameters
from ensprune.pruning import make_method
from ensprune.pruning._density import GRID_SIZE, fft_kde, silverman_bandwidth
from ensprune.pruning.adaptive import SoftMask, magnitude_threshold, quantile


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _direct_kde(samples: torch.Tensor, points: torch.Tensor, h: float) -> torch.Tensor:
    z = (points[:, None] - samples.double()[None, :]) / h
    return torch.exp(-0.5 * z**2).sum(1) / (samples.numel() * h * math.sqrt(2 * math.pi))


def test_fft_density_matches_a_direct_kernel_sum() -> None:
    x = torch.cat(
        [torch.randn(3000, generator=_gen()), 3 + 0.5 * torch.randn(1000, generator=_gen(1))]
    )
    est = fft_kde(x)
    assert est.grid.numel() == GRID_SIZE == 1024
    direct = _direct_kde(x, est.grid, est.bandwidth)
    assert torch.allclose(est.density, direct, atol=1e-4 * float(direct.max()))
    # between grid points, linear interpolation stays close to the direct sum too
    mid = (est.grid[:-1] + est.grid[1:])[::37] / 2
    assert torch.allclose(est(mid), _direct_kde(x, mid, est.bandwidth), atol=2e-3)


def test_reflected_density_of_magnitudes_matches_the_direct_reflected_sum() -> None:
    a = torch.randn(4000, generator=_gen(2)).abs()
    est = fft_kde(a, lower_bound=0.0)
    assert float(est.grid[0]) == 0.0
    h = est.bandwidth
    direct = _direct_kde(a, est.grid, h) + _direct_kde(-a, est.grid, h)
    assert torch.allclose(est.density, direct, atol=1e-4 * float(direct.max()))
    # the half-normal density is 2 φ(x): near 0 the reflected estimate is not halved
    assert float(est(0.0)) == pytest.approx(2 / math.sqrt(2 * math.pi), rel=0.08)


def test_silverman_bandwidth_follows_the_rule() -> None:
    x = torch.randn(5000, generator=_gen(3)).double()
    q = torch.quantile(x, torch.tensor([0.25, 0.75], dtype=torch.float64))
    expected = 0.9 * min(float(x.std()), float(q[1] - q[0]) / 1.349) * 5000 ** (-0.2)
    assert silverman_bandwidth(x) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(SpecError, match="at least 2"):
        silverman_bandwidth(torch.ones(1))


def test_soft_mask_gradients_match_finite_differences() -> None:
    w = torch.randn(40, generator=_gen(4), dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(SoftMask.apply, (w, t, tau))


def test_soft_mask_gradients_match_autograd() -> None:
    w = torch.randn(50, generator=_gen(5), dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    c = torch.randn(50, generator=_gen(6), dtype=torch.float64)
    (c * w * SoftMask.apply(w, t, tau)).sum().backward()
    hand = (w.grad.clone(), t.grad.clone(), tau.grad.clone())
    for p in (w, t, tau):
        p.grad = None
    (c * w * torch.sigmoid((w**2 - t**2) / tau)).sum().backward()
    for a, b in zip(hand, (w.grad, t.grad, tau.grad), strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("r", [0.3, 0.6, 0.9])
def test_threshold_gradient_is_the_inverse_density(r: float) -> None:
    # |w| half-normal: the r-quantile is Φ⁻¹((1 + r) / 2) and dt/dr = 1 / (2 φ(t)).
    mags = torch.randn(200_000, generator=_gen(7)).abs()
    ratio = torch.tensor(r, requires_grad=True)
    t, f_t = magnitude_threshold(mags, ratio)
    t.backward()
    normal = torch.distributions.Normal(0.0, 1.0)
    exact_t = float(normal.icdf(torch.tensor((1 + r) / 2)))
    exact_slope = 1 / (2 * math.exp(-(exact_t**2) / 2) / math.sqrt(2 * math.pi))
    assert float(t.detach()) == pytest.approx(exact_t, abs=0.01)
    assert float(ratio.grad) == pytest.approx(1 / f_t)
    assert float(ratio.grad) == pytest.approx(exact_slope, rel=0.05)
    # and the empirical quantile's finite difference: same sign (a larger r cuts deeper), same size
    h = 0.01
    fd = (float(quantile(mags, r + h)) - float(quantile(mags, r - h))) / (2 * h)
    assert float(ratio.grad) == pytest.approx(fd, rel=0.05)


def test_ratio_gradient_of_a_loss_matches_finite_differences() -> None:
    # L(r, τ) = Σ c_i w_i m_i(t(r), τ) on a fixed sample: the chain SoftMask ∘ QuantileThreshold
    w = torch.randn(100_000, generator=_gen(8), dtype=torch.float64)
    c = torch.linspace(-0.2, 1.0, w.numel(), dtype=torch.float64)[torch.argsort(w.abs())]

    def loss(r: float, tau: float) -> torch.Tensor:
        t = quantile(w.abs(), r)
        return (c * w * torch.sigmoid((w**2 - t**2) / tau)).sum()

    r0, tau0 = 0.5, 0.2
    ratio = torch.tensor(r0, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(tau0, dtype=torch.float64, requires_grad=True)
    t, _ = magnitude_threshold(w.abs(), ratio)
    (c * w * SoftMask.apply(w, t, tau)).sum().backward()
    h = 0.02
    fd_r = (float(loss(r0 + h, tau0)) - float(loss(r0 - h, tau0))) / (2 * h)
    fd_tau = (float(loss(r0, tau0 + 1e-4)) - float(loss(r0, tau0 - 1e-4))) / 2e-4
    assert float(ratio.grad) == pytest.approx(fd_r, rel=0.05)
    assert float(tau.grad) == pytest.approx(fd_tau, rel=1e-4)


def test_reports_the_realised_hard_sparsity(trained_conv, make_context) -> None:
    net, _ = trained_conv
    context = make_context(epochs=4, seed=1)
    result = make_method("adaptive", r0=0.2, r_lr=0.02).prune(net, 0.7, context)
    dense = count_parameters(net).prunable
    measured = 1.0 - count_parameters(result.model).prunable_nonzero / dense
    assert result.info["sparsity"] == pytest.approx(measured, abs=1e-9)
    assert result.info["learned_ratio"] == pytest.approx(measured, abs=0.01)
    assert result.info["target_sparsity"] == 0.7
    assert "regulariser target" in result.info["target_role"]
    # r moved from 0.2 towards the target; the regulariser, not the promise, set it
    assert 0.2 < result.info["ratio_history"][-1] < 0.7 + 1e-6
    assert len(result.info["ratio_history"]) == result.info["soft_epochs"] == 3


def test_the_regulariser_pulls_the_ratio_towards_its_target(trained_conv, make_context) -> None:
    net, _ = trained_conv
    context = make_context(epochs=2, seed=1)
    low = make_method("adaptive", r0=0.5, hard_share=0.0, r_lr=0.02).prune(net, 0.1, context)
    high = make_method("adaptive", r0=0.5, hard_share=0.0, r_lr=0.02).prune(net, 0.9, context)
    assert low.info["learned_ratio"] < 0.5 < high.info["learned_ratio"]


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("r0", 1.0),
        ("r0", "half"),
        ("tau0", 0.0),
        ("r_lr", -1.0),
        ("reg", -0.1),
        ("hard_share", 1.0),
    ],
)
def test_bad_knobs_raise_one_clear_error(knob: str, value: object) -> None:
    with pytest.raises(SpecError, match=f"adaptive: {knob}"):
        make_method("adaptive", **{knob: value})


def test_cli_prune_adaptive_reports_the_target_as_a_target(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ensprune.cli import main

    argv = ["prune", "--dataset", "digits", "--model", "model_a", "--method", "ADAPTIVE"]
    argv += ["--sparsity", "0.6", "--epochs", "4", "--param", "r_lr=0.02", "--json"]
    assert main(argv) == 0
    pruned = json.loads(capsys.readouterr().out)["pruned"]
    info = pruned["info"]
    assert info["target_sparsity"] == 0.6
    assert "regulariser target" in info["target_role"]
    assert pruned["sparsity"] == pytest.approx(info["sparsity"], abs=1e-6)  # the realised one
    assert pruned["target_sparsity"] == 0.6 and pruned["target_is_exact"] is False
    assert pruned["method_params"]["r_lr"] == 0.02
    assert main([*argv[:-3], "--param", "r0=2", "--json"]) == 2
    assert "adaptive: r0" in capsys.readouterr().err
