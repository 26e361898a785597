"""Knowledge distillation in train_model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ensprune.errors import SpecError
from ensprune.models import TrainConfig, build_seeded, train_model


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
