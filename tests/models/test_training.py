"""Knowledge distillation in train_model."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
import torch

from ensprune.errors import SpecError
from ensprune.models import TrainConfig, build_seeded, train_model


@pytest.mark.slow
def test_distillation_with_full_weight_follows_the_teacher_not_the_labels() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 1, 8, 8)).astype(np.float32)
    teacher = build_seeded("model_a", (1, 8, 8), 3, 1)  # an arbitrary fixed function
    with torch.no_grad():
        teacher_labels = teacher(torch.as_tensor(x)).argmax(1).numpy()
    noise = rng.integers(0, 3, size=256)  # labels unrelated to the teacher

    def agreement(distill: float) -> float:
        student = build_seeded("model_a", (1, 8, 8), 3, 2)
        cfg = TrainConfig(
            epochs=40, batch_size=32, lr=3e-3, patience=0, distill=distill, temperature=1.0
        )
        train_model(student, x, noise, x, teacher_labels, cfg, progress=False, teacher=teacher)
        with torch.no_grad():
            return float((student(torch.as_tensor(x)).argmax(1).numpy() == teacher_labels).mean())

    assert agreement(1.0) > 0.9
    assert agreement(0.0) < 0.6


def test_distillation_needs_a_teacher_and_a_weight_in_range() -> None:
    net = build_seeded("model_a", (1, 8, 8), 3, 0)
    x = np.zeros((8, 1, 8, 8), dtype=np.float32)
    y = np.zeros(8, dtype=np.int64)
    with pytest.raises(SpecError, match="needs a teacher network"):
        train_model(net, x, y, x, y, TrainConfig(epochs=1, distill=0.5), progress=False)
    with pytest.raises(SpecError, match=r"distill must lie in \[0, 1\]"):
        TrainConfig(distill=1.5)
    with pytest.raises(SpecError, match="temperature must be a positive number"):
        TrainConfig(distill=0.5, temperature=0.0)


def test_cosine_schedule_decays_the_lr_to_zero_over_the_budget() -> None:
    from ensprune.models.training import _make_lr_scheduler

    net = build_seeded("model_a", (1, 8, 8), 3, 0)
    cfg = TrainConfig(epochs=4, lr=0.2, lr_schedule="cosine")
    optimizer = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    scheduler = _make_lr_scheduler(optimizer, cfg, steps_per_epoch=5)
    assert scheduler is not None
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.2)
    assert lrs[10] == pytest.approx(0.1)  # half-way: cos(pi / 2)
    assert all(a > b for a, b in itertools.pairwise(lrs))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert _make_lr_scheduler(optimizer, TrainConfig(), steps_per_epoch=5) is None


def test_clean_epochs_switch_augmentation_off_at_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    import ensprune.models.training as training

    calls: list[int] = []

    def counting(name: str):
        def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            calls.append(len(x))
            return x

        return augment

    monkeypatch.setattr(training, "get_augmentation", counting)
    net = build_seeded("model_a", (1, 8, 8), 3, 0)
    x = np.zeros((40, 1, 8, 8), dtype=np.float32)
    y = np.zeros(40, dtype=np.int64)
    cfg = TrainConfig(epochs=5, batch_size=10, patience=0, augment="shift", clean_epochs=3)
    history = train_model(net, x, y, x, y, cfg, progress=False)
    assert history.epochs_run == 5
    assert calls == [10] * 8  # 2 augmented epochs of 4 batches, then 3 clean ones


def test_lr_schedule_and_clean_epochs_are_validated() -> None:
    with pytest.raises(SpecError, match="valid lr schedule names: constant, cosine"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(SpecError, match="clean_epochs must be an integer >= 0"):
        TrainConfig(clean_epochs=-1)
    with pytest.raises(SpecError, match="clean_epochs must be an integer >= 0"):
        TrainConfig(clean_epochs=1.5)  # type: ignore[arg-type]


@pytest.mark.slow
def test_keep_best_false_returns_the_last_weights() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=64)  # random labels: validation loss rises as the net memorises
    x_val = rng.normal(size=(32, 1, 8, 8)).astype(np.float32)
    y_val = rng.integers(0, 3, size=32)
    last: dict[str, torch.Tensor] = {}

    def remember(model: torch.nn.Module) -> None:
        last.update({k: v.clone() for k, v in model.state_dict().items()})

    def is_last(keep_best: bool | None, **changes: object) -> bool:
        net = build_seeded("model_a", (1, 8, 8), 3, 0)
        fields: dict = {"epochs": 30, "batch_size": 16, "lr": 3e-3, "patience": 0, **changes}
        cfg = TrainConfig(**fields)
        history = train_model(
            net, x, y, x_val, y_val, cfg, progress=False, after_step=remember, keep_best=keep_best
        )
        assert history.best_epoch < 29  # the lowest validation loss is not the last epoch's
        return all(torch.equal(v, last[k]) for k, v in net.state_dict().items())

    assert is_last(keep_best=False)
    assert not is_last(keep_best=True)
    assert not is_last(keep_best=None)  # constant lr: the best weights
    assert is_last(keep_best=None, lr_schedule="cosine")  # a completed cosine run: the last ones
    # a cosine run stopped early restores the best weights
    assert not is_last(keep_best=None, lr_schedule="cosine", patience=2)


def test_progress_when_piped_is_log_lines_not_a_bar(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ensprune.progress")
    net = build_seeded("model_a", (1, 8, 8), 3, 0)
    x = np.zeros((20, 1, 8, 8), dtype=np.float32)
    y = np.zeros(20, dtype=np.int64)
    cfg = TrainConfig(epochs=3, batch_size=10, patience=0)
    train_model(net, x, y, x, y, cfg, progress=True, desc="train m0")
    assert capsys.readouterr().err == ""  # captured stderr is no terminal: no bar
    lines = [r.getMessage() for r in caplog.records]
    # periodic lines may come first on a slow machine; the last one reports completion
    assert lines and all(line.startswith("train m0: ") and "\r" not in line for line in lines)
    assert lines[-1].startswith("train m0: 3/3 epoch (100%)") and "val_acc=" in lines[-1]
    caplog.clear()
    train_model(net, x, y, x, y, cfg, progress=False)
    assert caplog.records == []
