"""Training-time augmentation of image batches: seeded random shifts, affine warps and flips.

Each augmentation maps a batch (B, C, H, W) to a batch of the same shape, drawing its randomness
from the ``torch.Generator`` it is given, so a training run stays reproducible. Warps resample with
``padding_mode="border"``: the border pixels of MNIST-like and CIFAR-like images are background, so
the uncovered margin looks like the rest of the background after normalisation.

Small nets on MNIST gain most of their remaining accuracy from this (Simard et al. 2003): a pruned
LeNet-300-100 fine-tuned with shifts generalises better than one fine-tuned on the raw images.

Example:
    >>> TrainConfig(epochs=100, augment="shift")  # train_model applies it to every batch
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

from ensprune._registry import Registry
from ensprune.errors import SpecError

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")

# Largest translation as a share of the image side: 2 px on 28 x 28, 1 px on 8 x 8.
SHIFT_FRACTION = 0.075
# CIFAR's customary 4 px on 32 x 32, with horizontal flips.
FLIP_SHIFT_FRACTION = 0.125
MAX_ROTATION_DEG = 10.0
MAX_SCALE_CHANGE = 0.1


def _uniform(n: int, gen: torch.Generator, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def _integer_shifts(x: torch.Tensor, gen: torch.Generator, fraction: float) -> torch.Tensor:
    """Per-sample (dx, dy) in pixels, integers in [-k, k] with k = max(1, round(fraction * side))."""
    n, _, h, w = x.shape
    kx, ky = max(1, round(fraction * w)), max(1, round(fraction * h))
    dx = torch.randint(-kx, kx + 1, (n,), generator=gen).float()
    dy = torch.randint(-ky, ky + 1, (n,), generator=gen).float()
    return torch.stack([dx, dy], dim=1)


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample ``x`` through the per-sample affine maps ``theta`` (B, 2, 3), border padding."""
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _translation_theta(shifts: torch.Tensor, h: int, w: int) -> torch.Tensor:
    theta = torch.zeros(len(shifts), 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    # affine_grid maps output to input coordinates in [-1, 1]: a shift of d px is -2d / side.
    theta[:, 0, 2] = -2.0 * shifts[:, 0] / w
    theta[:, 1, 2] = -2.0 * shifts[:, 1] / h
    return theta


@AUGMENTATIONS.register("shift")
def random_shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Translate every image by a random whole number of pixels (up to 7.5 % of its side)."""
    _, _, h, w = x.shape
    return _warp(x, _translation_theta(_integer_shifts(x, gen, SHIFT_FRACTION), h, w))


@AUGMENTATIONS.register("affine")
def random_affine(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random rotation (±10°), scale (±10 %) and translation (up to 7.5 % of the side)."""
    n, _, h, w = x.shape
    angle = _uniform(n, gen, -MAX_ROTATION_DEG, MAX_ROTATION_DEG) * (math.pi / 180.0)
    scale = _uniform(n, gen, 1.0 - MAX_SCALE_CHANGE, 1.0 + MAX_SCALE_CHANGE)
    theta = _translation_theta(_integer_shifts(x, gen, SHIFT_FRACTION), h, w)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    return _warp(x, theta)


@AUGMENTATIONS.register("flip_shift")
def random_flip_shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Horizontal flip with probability 1/2, then a shift of up to 12.5 % of the side (CIFAR)."""
    _, _, h, w = x.shape
    flip = torch.rand(len(x), generator=gen) < 0.5
    x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)
    return _warp(x, _translation_theta(_integer_shifts(x, gen, FLIP_SHIFT_FRACTION), h, w))


def get_augmentation(name: str) -> Augmentation:
    """The registered augmentation ``name`` (unknown names list the valid ones)."""
    return AUGMENTATIONS.get(name)


def check_image_batch(shape: tuple[int, ...], name: str) -> None:
    """Augmentations warp images: refuse inputs that are not (N, C, H, W)."""
    if len(shape) != 4:
        raise SpecError(
            f"augmentation {name!r} needs image inputs of shape (N, C, H, W); got shape "
            f"{tuple(shape)}: use augment=None for tabular data"
        )
