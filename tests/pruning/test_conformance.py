"""One suite every registered pruning method passes: registering a method is enough to test it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch

from ensprune.errors import SpecError
from ensprune.models import SequentialNet, count_parameters, load_model, save_model
from ensprune.pruning import METHODS, PruningContext, PruningResult, make_method
from ensprune.pruning._compact import unit_layers

NAMES = METHODS.names()
TARGET = 0.5
_CACHE: dict[str, tuple[PruningResult, PruningResult]] = {}


def _context(make_context: Callable[..., PruningContext], init: dict) -> PruningContext:
    # Everything a method may ask for: a fine-tuning budget, θ₀ and an early checkpoint.
    return make_context(epochs=9, seed=3, initial_state=init, early_state=init)


def _run_twice(
    name: str, trained_conv: tuple[SequentialNet, dict], make_context: Callable[..., PruningContext]
) -> tuple[PruningResult, PruningResult]:
    if name not in _CACHE:
        net, init = trained_conv
        context = _context(make_context, init)
        first = make_method(name).prune(net, TARGET, context)
        second = make_method(name).prune(net, TARGET, context)
        _CACHE[name] = (first, second)
    return _CACHE[name]


@pytest.mark.parametrize("name", NAMES)
def test_result_is_consistent(
    name: str, trained_conv, make_context, digits, tmp_path: Path
) -> None:
    net, _ = trained_conv
    before = copy.deepcopy(net.state_dict())
    result, again = _run_twice(name, trained_conv, make_context)
    method = METHODS.get(name)

    # The input network is never modified.
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), f"{name} modified its input ({key})"
    assert result.model is not net

    # Shapes: same network with masks, or a compacted one with fewer units and the same outputs.
    x = torch.as_tensor(digits["x_val"][:32])
    net.eval(), result.model.eval()
    out = result.model(x)
    assert out.shape == net(x).shape
    assert torch.isfinite(out).all(), f"{name} produced non-finite outputs"
    if method.structured:
        assert result.masks == {}
        widths = [u.width for u in unit_layers(result.model)]
        assert len(widths) == len(unit_layers(net))
        assert all(w >= 1 for w in widths)
    else:
        assert result.model.layers == net.layers
        assert set(result.masks) == {k for k, _ in _prunable(net)}
        for key, param in _prunable(result.model):
            assert not param[~result.masks[key]].any(), f"{name}: masked weights of {key} not zero"

    # Reported sparsity equals the measured share of the dense prunable weights removed.
    dense = count_parameters(net).prunable
    measured = 1.0 - count_parameters(result.model).prunable_nonzero / dense
    assert result.info["sparsity"] == pytest.approx(measured, abs=1e-3)
    if not method.structured and method.exact_sparsity:
        assert measured == pytest.approx(TARGET, abs=0.01)
    assert measured > 0.05, f"{name} removed (almost) nothing at target {TARGET}"

    # Deterministic for the same seed.
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key]), f"{name}: not deterministic"

    # Saves and loads as architecture + weights.
    path = save_model(tmp_path / "pruned.pt", result.model)
    loaded, _ = load_model(path)
    loaded.eval()
    assert torch.allclose(loaded(x), out, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), "half"])
def test_out_of_range_sparsity_raises(name: str, bad: object, trained_conv, make_context) -> None:
    net, init = trained_conv
    with pytest.raises(SpecError):
        make_method(name).prune(net, bad, _context(make_context, init))  # type: ignore[arg-type]


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


def _prunable(net: SequentialNet) -> list[tuple[str, torch.Tensor]]:
    from ensprune.models import prunable_parameters

    return [(k, v.detach()) for k, v in prunable_parameters(net).items()]
