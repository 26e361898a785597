"""Tiny data and networks for the pruning tests: sklearn digits (8x8), a few hundred samples."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from ensprune.models import SequentialNet, TrainConfig, build_from_layers, train_model
from ensprune.pruning import PruningContext

Digits = dict[str, np.ndarray]

# conv -> batch norm -> pool -> flatten -> linear -> linear: every compaction boundary in one net.
TINY_CONV_LAYERS: list[dict[str, Any]] = [
    {"type": "conv2d", "in": 1, "out": 8, "kernel": 3, "padding": 1},
    {"type": "batchnorm2d", "features": 8},
    {"type": "relu"},
    {"type": "maxpool2d", "kernel": 2},
    {"type": "flatten"},
    {"type": "linear", "in": 8 * 4 * 4, "out": 24},
    {"type": "relu"},
    {"type": "linear", "in": 24, "out": 10},
]


def tiny_conv(seed: int = 0) -> SequentialNet:
    """A small conv net on (1, 8, 8) inputs, initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_from_layers(TINY_CONV_LAYERS, (1, 8, 8))


@pytest.fixture(name="tiny_conv")
def tiny_conv_fixture() -> Callable[[int], SequentialNet]:
    """The :func:`tiny_conv` builder, for tests (conftest modules are not importable)."""
    return tiny_conv


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # the test machine's cores are shared, and 1 thread is deterministic


@pytest.fixture(scope="session")
def digits() -> Digits:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0 - 0.3).astype(np.float32).reshape(-1, 1, 8, 8)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order].astype(np.int64)
    return {"x_train": x[:600], "y_train": y[:600], "x_val": x[600:900], "y_val": y[600:900]}


@pytest.fixture(scope="session")
def make_context(digits: Digits) -> Callable[..., PruningContext]:
    """``make_context(epochs=2, **fields)``: a context on the digits subset, small budget."""

    def factory(epochs: int = 2, **fields: Any) -> PruningContext:
        return PruningContext(
            digits["x_train"],
            digits["y_train"],
            digits["x_val"],
            digits["y_val"],
            finetune=TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, patience=3),
            **fields,
        )

    return factory


@pytest.fixture(scope="session")
def trained_conv(digits: Digits) -> tuple[SequentialNet, dict[str, torch.Tensor]]:
    """(the tiny conv net trained a few epochs, its initial state_dict)."""
    torch.set_num_threads(1)
    net = tiny_conv(0)
    init = {k: v.clone() for k, v in net.state_dict().items()}
    config = TrainConfig(epochs=6, batch_size=64, lr=3e-3, patience=0)
    train_model(
        net,
        digits["x_train"],
        digits["y_train"],
        digits["x_val"],
        digits["y_val"],
        config,
        progress=False,
    )
    return net, init
