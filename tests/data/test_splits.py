"""The split primitives: stratified_split / stratified_subsample, fraction rounding, statistics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensprune.data import channel_stats, stratified_split, stratified_subsample
from ensprune.data.splits import count_for_fraction
from ensprune.errors import DataError


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 5), min_size=1, max_size=200),
    share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_stratified_split_partitions_and_stratifies(
    labels: list[int], share: float, seed: int
) -> None:
    y = np.array(labels)
    n_take = round(share * len(y))
    kept, taken = stratified_split(y, n_take, np.random.default_rng(seed))
    assert len(taken) == n_take
    assert np.array_equal(np.sort(np.concatenate([kept, taken])), np.arange(len(y)))
    assert np.all(np.diff(kept) > 0) and np.all(np.diff(taken) > 0)
    counts = np.bincount(y, minlength=6)
    got = np.bincount(y[taken], minlength=6)
    assert np.all(np.abs(got - counts * n_take / len(y)) < 1.0)
    again = stratified_split(y, n_take, np.random.default_rng(seed))
    assert np.array_equal(again[1], taken)


def test_subsample_depends_on_the_generator() -> None:
    y = np.repeat(np.arange(4), 50)
    a = stratified_subsample(y, 20, np.random.default_rng(0))
    b = stratified_subsample(y, 20, np.random.default_rng(1))
    assert np.array_equal(np.bincount(y[a]), [5, 5, 5, 5])
    assert not np.array_equal(a, b)


def test_split_rejects_impossible_requests() -> None:
    with pytest.raises(DataError, match="cannot take"):
        stratified_split(np.zeros(3, int), 4, np.random.default_rng(0))
    with pytest.raises(DataError, match="one-dimensional"):
        stratified_split(np.zeros((3, 2), int), 1, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("n", "fraction", "expected"),
    [(1797, 0.2, 359), (1438, 0.1, 144), (60000, 0.1, 6000), (10, 0.01, 1), (10, 0.99, 9)],
)
def test_count_for_fraction_rounds_and_keeps_both_sides(
    n: int, fraction: float, expected: int
) -> None:
    assert count_for_fraction(n, fraction) == expected


def test_count_for_fraction_needs_two_samples() -> None:
    with pytest.raises(DataError, match="cannot split"):
        count_for_fraction(1, 0.5)


def test_channel_stats_match_numpy_and_guard_constant_channels() -> None:
    x = np.random.default_rng(0).random((9000, 3, 4, 4), dtype=np.float32)  # > one chunk
    x[:, 2] = 0.5
    mean, std = channel_stats(x)
    assert np.allclose(mean, x.astype(np.float64).mean(axis=(0, 2, 3)))
    assert np.allclose(std[:2], x.astype(np.float64).std(axis=(0, 2, 3))[:2])
    assert std[2] == 1.0  # zero spread: divide by one, not zero
