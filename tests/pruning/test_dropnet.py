"""DropNet and APoZ: which units go, stop rules, floors, and the compacted result."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from ensprune.errors import SpecError
from ensprune.pruning import make_method, mask_units
from ensprune.pruning.dropnet import DropNetPruning

# No training (reset="none", epochs=0) and no accuracy rule: unit choice alone is tested.
STATIC = {"reset": "none", "kappa": 0.0}


def _relu_outputs(net, x) -> dict[str, torch.Tensor]:
    """Post-activations of the tiny conv net's hidden layers (ReLUs at positions 2 and 6)."""
    net.eval()
    with torch.no_grad():
        modules = list(net)
        a = nn.Sequential(*modules[:3])(torch.as_tensor(x))
        b = nn.Sequential(*modules[3:7])(a)
    return {"0.weight": a, "5.weight": b}


def test_scores_are_mean_post_activations(trained_conv, make_context, digits) -> None:
    net, _ = trained_conv
    scores = DropNetPruning(score_samples=None).unit_scores(net, make_context())
    acts = _relu_outputs(net, digits["x_train"])
    assert torch.allclose(scores["0.weight"], acts["0.weight"].mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(scores["5.weight"], acts["5.weight"].mean(dim=0), atol=1e-5)


def test_apoz_scores_are_one_minus_share_of_zeros(trained_conv, make_context, digits) -> None:
    net, _ = trained_conv
    method = make_method("apoz", score_samples=None)
    scores = method.unit_scores(net, make_context())  # type: ignore[attr-defined]
    acts = _relu_outputs(net, digits["x_train"])
    zeros = (acts["0.weight"] == 0).double().mean(dim=(0, 2, 3))
    assert torch.allclose(scores["0.weight"].double(), 1 - zeros, atol=1e-6)


@pytest.mark.parametrize("metric", ["min", "max"])
def test_layer_scope_drops_the_right_units(metric: str, trained_conv, make_context) -> None:
    net, _ = trained_conv
    context = make_context(epochs=0)
    scores = DropNetPruning().unit_scores(net, context)
    method = make_method("dropnet", metric=metric, scope="layer", fraction=0.25, **STATIC)
    result = method.prune(net, 0.25, context)
    for name, n_drop in (("0.weight", 2), ("5.weight", 6)):
        order = torch.argsort(scores[name], stable=True, descending=metric == "max")
        expected_kept = sorted(order[n_drop:].tolist())
        assert result.info["kept_units"][name] == expected_kept
    assert result.info["rounds"] == 1 and result.info["stop"] == "target"


def test_global_scope_drops_the_lowest_units_of_the_network(trained_conv, make_context) -> None:
    net, _ = trained_conv
    context = make_context(epochs=0)
    scores = DropNetPruning().unit_scores(net, context)
    result = make_method("dropnet", scope="global", fraction=0.25, **STATIC).prune(
        net, 0.25, context
    )
    everything = torch.cat([scores["0.weight"], scores["5.weight"]])
    threshold = torch.sort(everything).values[7]  # 8 of 32 units go
    for name, score in scores.items():
        kept = set(result.info["kept_units"][name])
        assert kept == {i for i in range(len(score)) if score[i] > threshold}


def test_rounds_remove_a_fraction_of_the_remaining_units(trained_conv, make_context) -> None:
    net, _ = trained_conv
    result = make_method("dropnet", fraction=0.2, **STATIC).prune(net, 0.6, make_context(epochs=0))
    # 32 -> 26 -> 21 -> 17 -> 14 -> 13 (the last round stops exactly at 60 % removed)
    assert result.info["rounds"] == 5
    assert sum(result.info["units_per_layer"].values()) == 13
    assert [round(h["units_remaining"] * 32) for h in result.info["history"]] == [
        26,
        21,
        17,
        14,
        13,
    ]


def test_result_is_the_compacted_masked_network(trained_conv, make_context, digits) -> None:
    net, _ = trained_conv
    result = make_method("dropnet", fraction=0.3, **STATIC).prune(net, 0.5, make_context(epochs=0))
    masked = copy.deepcopy(net)
    units = {}
    for name, kept in result.info["kept_units"].items():
        keep = torch.zeros(8 if name == "0.weight" else 24, dtype=torch.bool)
        keep[kept] = True
        units[name] = keep
    mask_units(masked, units)
    masked.eval(), result.model.eval()
    x = torch.as_tensor(digits["x_val"][:50])
    assert torch.allclose(result.model(x), masked(x), atol=1e-5)
    assert result.info["units_per_layer"] == {n: int(k.sum()) for n, k in units.items()}


def test_floor_of_units_per_layer(trained_conv, make_context) -> None:
    net, _ = trained_conv
    method = make_method("dropnet", min_units=0.5, fraction=0.5, **STATIC)
    result = method.prune(net, 0.9, make_context(epochs=0))
    assert result.info["units_per_layer"] == {"0.weight": 4, "5.weight": 12}
    assert result.info["stop"] == "floor"


def test_kappa_stops_and_returns_the_last_good_network(trained_conv, make_context) -> None:
    net, _ = trained_conv
    method = make_method("dropnet", reset="random", kappa=1.0)
    result = method.prune(net, 0.5, make_context(epochs=1))
    assert result.info["stop"] == "kappa"
    assert result.info["accepted_rounds"] == 0 and result.info["units_remaining"] == 1.0
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in result.model.state_dict().items())


def test_reset_needs_training_and_initial_state(trained_conv, make_context) -> None:
    net, init = trained_conv
    with pytest.raises(SpecError, match="epochs"):
        make_method("dropnet").prune(net, 0.5, make_context(epochs=0, initial_state=init))
    with pytest.raises(SpecError, match="initial_state"):
        make_method("dropnet", reset="init").prune(net, 0.5, make_context(epochs=1))


def test_reset_init_retrains_from_theta_zero(trained_conv, make_context) -> None:
    net, init = trained_conv
    context = make_context(epochs=1, initial_state=init)
    result = make_method("dropnet", kappa=0.0, fraction=0.5).prune(net, 0.5, context)
    assert result.info["units_remaining"] == pytest.approx(0.5)
    assert result.info["train_epochs"] == result.info["rounds"]  # one epoch per round


@pytest.mark.parametrize(
    "knobs",
    [{"metric": "median"}, {"scope": "unit"}, {"fraction": 1.0}, {"reset": "zero"}, {"kappa": 2}],
)
def test_bad_knobs_raise(knobs: dict) -> None:
    with pytest.raises(SpecError):
        make_method("dropnet", **knobs)


def test_rounds_yield_every_round_without_the_kappa_rule(trained_conv, make_context) -> None:
    net, _ = trained_conv
    method = make_method("dropnet", reset="random", kappa=1.0, fraction=0.5)
    steps = list(method.rounds(net, 0.5, make_context(epochs=1)))  # type: ignore[attr-defined]
    assert [s.index for s in steps] == [1]
    assert steps[-1].stop == "target" and steps[-1].units_remaining == pytest.approx(0.5)


def test_only_resetting_methods_ask_for_a_full_training_budget() -> None:
    assert make_method("dropnet").retrains_from_scratch
    assert make_method("dropnet", reset="random").retrains_from_scratch
    assert not make_method("dropnet", reset="none").retrains_from_scratch
    assert not make_method("magnitude").retrains_from_scratch


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_align_keeps_multiples_of_align_units(scope: str, make_context) -> None:
    from ensprune.models import build_seeded

    net = build_seeded("lenet300", (1, 8, 8), 10, seed=0)  # hidden widths 300 and 100
    method = make_method("dropnet", scope=scope, fraction=0.2, align=16, **STATIC)
    steps = list(method.rounds(net, 0.9, make_context(epochs=0)))  # type: ignore[attr-defined]
    assert len(steps) >= 4
    widths = {"1.weight": 300, "3.weight": 100}
    removed_before = 0
    for step in steps:
        kept = {n: int(k.sum()) for n, k in step.keep.items()}
        for name, count in kept.items():
            # a layer is either untouched or shrunk to a positive multiple of 16
            assert count == widths[name] or (count % 16 == 0 and count >= 16), (step.index, kept)
        removed = sum(widths[n] - c for n, c in kept.items())
        assert removed > removed_before  # every round makes progress
        assert removed <= math.floor(0.9 * 400)  # never past the target
        removed_before = removed
    assert steps[-1].stop in {"target", "floor"}


def test_align_one_is_the_paper_rule(make_context) -> None:
    from ensprune.models import build_seeded

    net = build_seeded("lenet300", (1, 8, 8), 10, seed=0)
    plain = make_method("dropnet", fraction=0.2, **STATIC)
    one = make_method("dropnet", fraction=0.2, align=1, **STATIC)
    a = plain.prune(net, 0.6, make_context(epochs=0)).info["kept_units"]
    b = one.prune(net, 0.6, make_context(epochs=0)).info["kept_units"]
    assert a == b


@pytest.mark.parametrize("align", [0, -16, 2.5, True, "abc", None])
def test_bad_align_is_refused(align: object) -> None:
    with pytest.raises(SpecError, match="align must be an integer >= 1"):
        make_method("dropnet", align=align)
