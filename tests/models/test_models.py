"""Model zoo, training loop, measurement and checkpoints."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ensprune.errors import CheckpointError, SpecError, UnknownNameError
from ensprune.models import (
    MODELS,
    TrainConfig,
    build_model,
    build_seeded,
    count_macs,
    count_parameters,
    evaluate,
    load_model,
    measure_latency_ms,
    predict_proba,
    prunable_parameters,
    save_model,
    train_model,
)

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("shape", SHAPES)
def test_every_zoo_model_adapts_to_the_input_shape(name: str, shape: tuple[int, ...]) -> None:
    net = build_model(name, shape, 10)
    out = net(torch.zeros(2, *shape))
    assert out.shape == (2, 10)


def test_zoo_architectures_match_the_papers() -> None:
    def widths(name: str) -> list[int]:
        net = build_model(name, (1, 28, 28), 10)
        return [
            m.out_features if isinstance(m, nn.Linear) else m.out_channels
            for m in net
            if isinstance(m, (nn.Linear, nn.Conv2d))
        ]

    assert widths("model_a") == [40, 40, 10]
    assert widths("lenet300") == [300, 100, 10]
    assert widths("model_b") == [64, 64, 10]
    assert widths("model_c") == [64, 64, 128, 128, 256, 10]
    assert count_parameters(build_model("lenet300", (1, 28, 28), 10)).total == 266_610  # Han et al.


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match="lenet300"):
        build_model("resnet9000", (1, 8, 8), 10)


def test_conv_model_on_flat_input_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="image input"):
        build_model("model_b", (64,), 10)


def test_seeded_build_is_deterministic_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_seeded("model_a", (1, 8, 8), 10, seed=5)
    after = torch.rand(1)
    b = build_seeded("model_a", (1, 8, 8), 10, seed=5)
    c = build_seeded("model_a", (1, 8, 8), 10, seed=6)
    assert torch.equal(before, after)
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert not torch.equal(a[1].weight, c[1].weight)


def blobs(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 1, 4, 4)).astype(np.float32) + y[:, None, None, None] * 1.5
    return x.astype(np.float32), y


@pytest.mark.slow
def test_training_learns_is_seeded_and_stops_early() -> None:
    x, y = blobs()
    cfg = TrainConfig(epochs=50, batch_size=32, lr=0.01, patience=3, seed=1)
    runs = []
    for _ in range(2):
        net = build_seeded("model_a", (1, 4, 4), 3, seed=0)
        history = train_model(net, x[:300], y[:300], x[300:], y[300:], cfg, progress=False)
        runs.append((net, history))
    (net, history), (net2, _) = runs
    assert evaluate(net, x[300:], y[300:])[1] > 0.9
    assert history.stopped_early and history.epochs_run < 50
    assert history.best_epoch == int(np.argmin(history.val_loss))
    assert all(
        torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), net2.state_dict().values(), strict=False)
    )
    proba = predict_proba(net, x[300:])
    assert proba.shape == (100, 3) and np.allclose(proba.sum(1), 1.0)


def test_step_hooks_run_every_step() -> None:
    x, y = blobs(64)
    calls = {"before": 0, "after": 0}
    net = build_seeded("model_a", (1, 4, 4), 3, seed=0)
    train_model(
        net,
        x,
        y,
        x,
        y,
        TrainConfig(epochs=2, batch_size=16, patience=0),
        progress=False,
        before_step=lambda m: calls.__setitem__("before", calls["before"] + 1),
        after_step=lambda m: calls.__setitem__("after", calls["after"] + 1),
    )
    assert calls == {"before": 8, "after": 8}


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"epochs": -1}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_train_config(kwargs: dict, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment):
        TrainConfig(**kwargs)


def test_counts_and_macs_reference_values() -> None:
    net = build_model("lenet300", (1, 28, 28), 10)
    assert count_macs(net, (1, 28, 28)) == 784 * 300 + 300 * 100 + 100 * 10
    conv = build_model("model_b", (1, 8, 8), 10)
    # two 3x3 'same' convolutions on 8x8, then a 64*4*4 -> 10 classifier
    assert count_macs(conv, (1, 8, 8)) == 64 * 9 * 64 + 64 * 64 * 9 * 64 + 64 * 16 * 10
    with torch.no_grad():
        first = prunable_parameters(net)["1.weight"]  # layer 0 is the Flatten
        first[:, :392] = 0
    counts = count_parameters(net)
    assert counts.prunable == 266_200
    assert counts.prunable_nonzero == 266_200 - 300 * 392
    assert count_macs(net, (1, 28, 28), effective=True) == counts.prunable_nonzero
    assert counts.sparsity == pytest.approx(300 * 392 / 266_200)


def test_latency_is_a_positive_median() -> None:
    net = build_model("model_a", (1, 8, 8), 10)
    assert 0 < measure_latency_ms(net, (1, 8, 8), batch_size=8, warmup=1, repeats=3) < 1000


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    net = build_seeded("model_b", (1, 8, 8), 10, seed=0)
    path = save_model(tmp_path / "m.pt", net, {"member": "x", "val_accuracy": 0.5})
    loaded, meta = load_model(path)
    assert meta == {"member": "x", "val_accuracy": 0.5}
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(net.eval()(x), loaded.eval()(x))
    assert loaded.layers == net.layers


def test_corrupt_and_foreign_checkpoints_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not an ensprune checkpoint"):
        load_model(foreign)


class _Evil:
    def __reduce__(self) -> tuple:
        return (Path.touch, (Path("/tmp/ensprune-pwned"),))


def test_checkpoints_never_unpickle_code(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"format": "ensprune-checkpoint/1", "payload": _Evil()}, evil, pickle_module=pickle)
    with pytest.raises(CheckpointError):
        load_model(evil)
    assert not Path("/tmp/ensprune-pwned").exists()
