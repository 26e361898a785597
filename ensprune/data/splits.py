"""Seeded stratified splits and subsamples, and per-channel normalisation statistics.

Everything here is a pure function of its inputs and an explicit ``numpy.random.Generator``, so the
same data and seed give bit-identical results.
"""

from __future__ import annotations

import math

import numpy as np

from ensprune.errors import DataError

_STATS_CHUNK = 4096


def count_for_fraction(n: int, fraction: float) -> int:
    """``fraction`` of ``n`` samples, rounded half up and kept in ``[1, n - 1]``.

    Both sides of a split therefore hold at least one sample (for ``n >= 2``).

    Raises:
        DataError: ``n < 2``, which cannot be split.
    """
    if n < 2:
        raise DataError(f"cannot split {n} sample(s) into two non-empty parts; use more data")
    return min(max(math.floor(n * fraction + 0.5), 1), n - 1)


def _quotas(counts: np.ndarray, take: int) -> np.ndarray:
    """Per-class counts summing to ``take``, proportional to ``counts`` (largest remainder)."""
    n = int(counts.sum())
    scaled = counts.astype(np.int64) * take  # exact integer arithmetic: no float ties
    quota, remainder = scaled // n, scaled % n
    # hand the leftover units to the largest remainders; ties go to the lower class index
    leftover = take - int(quota.sum())
    quota[np.argsort(-remainder, kind="stable")[:leftover]] += 1
    return quota


def stratified_split(
    y: np.ndarray, n_take: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split the indices of ``y`` into a kept part and ``n_take`` taken ones, per class.

    Each class contributes to the taken part in proportion to its frequency (within one sample),
    chosen uniformly at random by ``rng``.

    Args:
        y: labels (any sortable values), shape (N,).
        n_take: size of the taken part, in ``[0, N]``.
        rng: the random generator (consumed: one permutation of N).

    Returns:
        ``(kept, taken)``: sorted, disjoint int64 index arrays that together cover ``range(N)``.

    Example:
        >>> kept, taken = stratified_split(y, 100, np.random.default_rng(0))
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"labels must be one-dimensional; got shape {y.shape}")
    if not 0 <= n_take <= len(y):
        raise DataError(f"cannot take {n_take} of {len(y)} samples")
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    quota = _quotas(counts, n_take)
    # a random permutation, then a stable sort by class: each class's members in random order
    order = rng.permutation(len(y))
    order = order[np.argsort(inverse[order], kind="stable")]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank_in_class = np.arange(len(y)) - starts[inverse[order]]
    taken = rank_in_class < quota[inverse[order]]
    return np.sort(order[~taken]).astype(np.int64), np.sort(order[taken]).astype(np.int64)


def stratified_subsample(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a class-stratified random subsample of ``n`` of the labels ``y``."""
    return stratified_split(y, n, rng)[1]


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of images (N, C, H, W), in float64.

    Computed in chunks (two passes) so large float32 datasets need no float64 copy. A channel
    with zero spread gets std 1, so normalising it cannot divide by zero.
    """
    if x.ndim != 4 or len(x) == 0:
        raise DataError(f"need a non-empty (N, C, H, W) array; got shape {x.shape}")
    count = x.shape[0] * x.shape[2] * x.shape[3]
    total = np.zeros(x.shape[1])
    for start in range(0, len(x), _STATS_CHUNK):
        total += x[start : start + _STATS_CHUNK].sum(axis=(0, 2, 3), dtype=np.float64)
    mean = total / count
    squares = np.zeros(x.shape[1])
    for start in range(0, len(x), _STATS_CHUNK):
        centred = x[start : start + _STATS_CHUNK].astype(np.float64) - mean[None, :, None, None]
        squares += np.square(centred).sum(axis=(0, 2, 3))
    std = np.sqrt(squares / count)
    std[std == 0] = 1.0
    return mean, std


def normalise_(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Normalise float32 images (N, C, H, W) in place, per channel: ``(x - mean) / std``."""
    x -= mean.astype(np.float32)[None, :, None, None]
    x /= std.astype(np.float32)[None, :, None, None]
    return x
