"""LAMP scores on a hand example, and LAMP's global threshold in a network."""

from __future__ import annotations

import pytest
import torch

from ensprune.models import prunable_parameters
from ensprune.pruning import lamp_scores, make_method


def test_lamp_scores_by_hand() -> None:
    w = torch.tensor([[3.0, -1.0], [0.0, 2.0]])
    # sorted w²: 0, 1, 4, 9; tails: 14, 14, 13, 9
    expected = torch.tensor([[9 / 9, 1 / 14], [0 / 14, 4 / 13]])
    assert torch.allclose(lamp_scores(w), expected)


def test_lamp_largest_weight_of_each_layer_scores_one() -> None:
    w = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    scores = lamp_scores(w)
    assert scores.flatten()[w.abs().argmax()] == pytest.approx(1.0)
    assert (scores <= 1.0 + 1e-6).all()


def test_lamp_keeps_every_layer_and_reaches_the_target(trained_conv, make_context) -> None:
    net, _ = trained_conv
    result = make_method("lamp", schedule="oneshot").prune(net, 0.95, make_context(epochs=0))
    assert result.info["sparsity"] == pytest.approx(0.95, abs=1e-3)
    for name, weight in prunable_parameters(result.model).items():
        assert int(torch.count_nonzero(weight)) >= 1, name
