"""Evolutionary pruning: polynomial allocation, exact budget repair, the GA's determinism."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ensprune.errors import SpecError
from ensprune.models import count_parameters, prunable_parameters
from ensprune.parallel import parallel_config
from ensprune.pruning import make_method
from ensprune.pruning.evolutionary import (
    cdf_values,
    fit_magnitude_cdf,
    polynomial_allocation,
    repair_counts,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@st.composite
def _allocations(draw: st.DrawFn) -> tuple[list[float], list[int], list[int], int]:
    sizes = draw(st.lists(st.integers(1, 500), min_size=1, max_size=6))
    upper = [draw(st.integers(0, n - 1)) if n > 1 else 0 for n in sizes]
    n_prune = draw(st.integers(0, sum(upper)))
    genes = draw(st.lists(st.floats(-0.5, 1.5), min_size=len(sizes), max_size=len(sizes)))
    return genes, sizes, upper, n_prune


@settings(max_examples=200, deadline=None)
@given(_allocations())
def test_repair_meets_the_budget_exactly_within_bounds(case) -> None:
    genes, sizes, upper, n_prune = case
    counts = repair_counts(genes, sizes, upper, n_prune)
    assert sum(counts) == n_prune
    assert all(0 <= c <= u for c, u in zip(counts, upper, strict=True))
    # idempotent: a feasible allocation is left as it is
    again = repair_counts(
        [c / n for c, n in zip(counts, sizes, strict=True)], sizes, upper, n_prune
    )
    assert again == counts


def test_repair_spreads_the_difference_by_size_and_refuses_impossible_budgets() -> None:
    # rounding gives 10 + 10 = 20; 40 more go to the two layers in proportion to size (1:3)
    assert repair_counts([0.1, 0.0333], [100, 300], [99, 299], 60) == [20, 40]
    # a capped layer passes its share on
    assert repair_counts([0.0, 0.0], [100, 100], [10, 99], 50) == [10, 40]
    with pytest.raises(SpecError, match="per-layer caps allow 20"):
        repair_counts([0.5, 0.5], [100, 100], [10, 10], 30)


def test_polynomial_cdf_fit_follows_the_empirical_distribution() -> None:
    w = torch.randn(20_000, generator=_gen(0))
    fit = fit_magnitude_cdf(w, degree=7)
    u = np.linspace(0, 3, 61)
    rms = float(torch.sqrt((w * w).mean()))
    empirical = np.array([(w.abs() / rms <= x).float().mean().item() for x in u])
    assert np.max(np.abs(cdf_values(fit, u) - empirical)) < 0.02
    assert np.all(np.diff(cdf_values(fit, u)) >= 0)
    with pytest.raises(SpecError, match="degree"):
        fit_magnitude_cdf(w, degree=0)


def test_allocation_is_scale_free_and_favours_pruning_larger_layers() -> None:
    base = torch.randn(10_000, generator=_gen(1))
    # the same distribution at two scales: global magnitude would empty the small-scale layer,
    # the normalised fit prunes both alike when sizes are equal (exponent 0 or 1)
    for exponent in (0.0, 1.0):
        s = polynomial_allocation([base, 0.01 * base], 10_000, degree=6, exponent=exponent)
        assert s[0] == pytest.approx(s[1], abs=0.01)
        assert s[0] == pytest.approx(0.5, abs=0.02)
    # a ten times larger layer is pruned harder under exponent 1, equally under exponent 0
    big, small = torch.randn(50_000, generator=_gen(2)), torch.randn(5_000, generator=_gen(3))
    s1 = polynomial_allocation([big, small], 44_000, degree=6, exponent=1.0)
    s0 = polynomial_allocation([big, small], 44_000, degree=6, exponent=0.0)
    assert s1[0] > 0.8 > s1[1]
    assert s0[0] == pytest.approx(s0[1], abs=0.03)
    for s in (s0, s1):
        assert 50_000 * s[0] + 5_000 * s[1] == pytest.approx(44_000, rel=0.01)


def test_heavier_mass_near_zero_is_pruned_more() -> None:
    gauss = torch.randn(20_000, generator=_gen(4))
    laplace = torch.distributions.Laplace(0.0, 1.0).sample((20_000,))
    s = polynomial_allocation([gauss, laplace], 20_000, degree=7, exponent=0.0)
    assert s[1] > s[0]  # at the same normalised threshold a Laplace layer loses more weights


def _small(**knobs):
    settings = {"population": 6, "generations": 3, "patience": 2, "eval_steps": 5, **knobs}
    return make_method("evolutionary", **settings)


def test_budget_exact_deterministic_and_logged(trained_conv, make_context, caplog) -> None:
    net, _ = trained_conv
    context = make_context(epochs=1, seed=5)
    with caplog.at_level(logging.INFO, logger="ensprune.pruning.evolutionary"):
        first = _small().prune(net, 0.8, context)
    second = _small().prune(net, 0.8, context)
    total = count_parameters(net).prunable
    kept = count_parameters(first.model).prunable_nonzero
    assert kept == total - round(0.8 * total)  # ||W||_0 = k exactly
    assert first.info["layer_sparsity"] == second.info["layer_sparsity"]
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key])
    assert first.info["best_val_loss"] == sorted(first.info["best_val_loss"], reverse=True)
    gens = [r for r in caplog.records if "evolutionary generation" in r.getMessage()]
    assert len(gens) == first.info["generations"] + 1
    # inside each layer the smallest magnitudes went
    for name, w in prunable_parameters(net).items():
        mask = first.masks[name]
        if (~mask).any() and mask.any():
            assert w.detach().abs()[~mask].max() <= w.detach().abs()[mask].min()


def test_results_do_not_depend_on_the_joblib_backend(trained_conv, make_context) -> None:
    net, _ = trained_conv
    context = make_context(epochs=0, seed=2)
    inline = _small().prune(net, 0.6, context)
    with parallel_config(backend="threading", n_jobs=2):
        threaded = _small().prune(net, 0.6, context)
    assert inline.info["layer_sparsity"] == threaded.info["layer_sparsity"]
    assert inline.info["best_val_loss"] == threaded.info["best_val_loss"]


def test_the_evolved_allocation_is_no_worse_than_its_seeds_on_the_fitness(
    trained_conv, make_context
) -> None:
    net, _ = trained_conv
    result = _small(generations=0).prune(net, 0.7, make_context(epochs=0, seed=1))
    evolved = _small().prune(net, 0.7, make_context(epochs=0, seed=1))
    # generation 0 holds the polynomial, uniform, global-magnitude and LAMP allocations; elitism
    # keeps the best
    assert evolved.info["best_val_loss"][-1] <= result.info["best_val_loss"][0]
    assert result.info["generations"] == 0


def test_the_first_population_holds_the_global_magnitude_and_lamp_allocations(
    trained_conv, make_context, monkeypatch
) -> None:
    """The GA starts from the baselines it is compared with: the per-layer counts of global
    magnitude and of LAMP at the same budget are among the allocations scored first."""
    import ensprune.pruning.evolutionary as evolutionary
    from ensprune.pruning._masks import masks_from_scores
    from ensprune.pruning.lamp import lamp_scores

    net, _ = trained_conv
    scored: list[tuple[int, ...]] = []
    real = evolutionary._score_counts

    def spy(task, counts):
        scored.append(tuple(int(c) for c in counts))
        return real(task, counts)

    monkeypatch.setattr(evolutionary, "_score_counts", spy)
    _small(generations=0, population=4).prune(net, 0.7, make_context(epochs=0, seed=1))
    weights = prunable_parameters(net)
    for scores in (
        {n: p.detach().abs() for n, p in weights.items()},
        {n: lamp_scores(p.detach()) for n, p in weights.items()},
    ):
        masks = masks_from_scores(scores, 0.7, "global", None)
        assert tuple(int((~m).sum()) for m in masks.values()) in scored
    assert len(scored) <= 4  # the polynomial, uniform, global and LAMP allocations (deduplicated)


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("degree", 0),
        ("population", 3),
        ("elite", 6),
        ("sigma", 0.0),
        ("cx_prob", 2.0),
        ("n_jobs", 0),
    ],
)
def test_bad_knobs_raise_one_clear_error(knob: str, value: object) -> None:
    with pytest.raises(SpecError, match=f"evolutionary: {knob}"):
        make_method("evolutionary", **{"population": 6, knob: value})
