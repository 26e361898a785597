"""Training-time augmentation: exact shifts, seeded draws, shape checks, wiring into train_model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from ensprune.data.augment import AUGMENTATIONS, get_augmentation, random_shift
from ensprune.errors import SpecError, UnknownNameError
from ensprune.models import TrainConfig, build_seeded, train_model


def _images(n: int = 6, side: int = 28) -> torch.Tensor:
    return torch.rand(n, 1, side, side, generator=torch.Generator().manual_seed(1))


def _shift_with_border(img: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Reference: move content dx px right / dy px down, replicating the border."""
    pad = max(abs(dx), abs(dy))
    padded = F.pad(img[None], (pad, pad, pad, pad), mode="replicate")[0]
    h, w = img.shape[-2:]
    return padded[..., pad - dy : pad - dy + h, pad - dx : pad - dx + w]


def test_shift_moves_every_image_by_whole_pixels_within_the_limit() -> None:
    x = _images()
    out = random_shift(x, torch.Generator().manual_seed(0))
    moves = set()
    for img, shifted in zip(x, out, strict=True):
        matches = [
            (dx, dy)
            for dx in range(-2, 3)
            for dy in range(-2, 3)
            if torch.allclose(shifted, _shift_with_border(img, dx, dy), atol=1e-5)
        ]
        assert len(matches) == 1, "each output is exactly one shift of its input"
        moves.add(matches[0])
    assert len(moves) > 1, "shifts are drawn per image"


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_augmentations_are_seeded_and_keep_shape(name: str) -> None:
    x = _images(side=32)
    augment = get_augmentation(name)
    a = augment(x, torch.Generator().manual_seed(3))
    b = augment(x, torch.Generator().manual_seed(3))
    c = augment(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.isfinite(a).all()
    # Resampling with border padding never leaves the input's value range.
    assert a.min() >= x.min() - 1e-6 and a.max() <= x.max() + 1e-6


def test_unknown_augmentation_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="valid augmentation names: affine, flip_shift"):
        TrainConfig(augment="mixup")


def test_augmentation_refuses_tabular_inputs() -> None:
    net = build_seeded("mlp_40_20", (5,), 2, 0)
    x = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    y = np.arange(20) % 2
    with pytest.raises(SpecError, match=r"needs image inputs of shape \(N, C, H, W\)"):
        train_model(net, x, y, x, y, TrainConfig(epochs=1, augment="shift"), progress=False)


def test_augmented_training_is_reproducible_and_differs_from_plain() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=64)

    def trained(augment: str | None) -> dict[str, torch.Tensor]:
        net = build_seeded("model_a", (1, 8, 8), 3, 0)
        cfg = TrainConfig(epochs=2, batch_size=16, patience=0, augment=augment)
        train_model(net, x, y, x, y, cfg, progress=False)
        return net.state_dict()

    first, second, plain = trained("shift"), trained("shift"), trained(None)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], plain[k]) for k in first)
