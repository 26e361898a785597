"""``load_dataset``: fetch a registered source, split it (seeded, stratified) and normalise it."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ensprune.data.dataset import DATASETS, Dataset, RawData, SourceRequest
from ensprune.data.paths import resolve_data_dir
from ensprune.data.splits import (
    channel_stats,
    count_for_fraction,
    normalise_,
    stratified_split,
    stratified_subsample,
)
from ensprune.errors import DataError, SpecError

# each random step draws from its own stream, so e.g. max_test never changes the train split
_TEST_SPLIT, _VAL_SPLIT, _TRAIN_SUBSAMPLE, _VAL_SUBSAMPLE, _TEST_SUBSAMPLE = range(5)


def _rng(seed: int, stage: int) -> np.random.Generator:
    return np.random.default_rng([seed, stage])


def _check_fraction(name: str, value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 < float(value) < 1.0
    ):
        raise SpecError(f"{name} must be a number strictly between 0 and 1; got {value!r}")


def _check_count(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise SpecError(f"{name} must be a positive integer or None; got {value!r}")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise SpecError(f"seed must be a non-negative integer; got {seed!r}")


def _check_raw(name: str, raw: RawData) -> None:
    pairs = [("x", raw.x, raw.y)]
    if raw.x_test is not None or raw.y_test is not None:
        if raw.x_test is None or raw.y_test is None:
            raise DataError(f"dataset source {name!r} returned only half of its test split")
        pairs.append(("x_test", raw.x_test, raw.y_test))
    for what, x, y in pairs:
        if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
            raise DataError(
                f"dataset source {name!r}: {what} must be (N, C, H, W) with N >= 1 labels; got "
                f"{x.shape} and {y.shape}"
            )
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= raw.num_classes:
            raise DataError(
                f"dataset source {name!r}: labels of {what} must be integers in "
                f"[0, {raw.num_classes})"
            )
    if raw.x_test is not None and raw.x_test.shape[1:] != raw.x.shape[1:]:
        raise DataError(f"dataset source {name!r}: train and test images differ in shape")


def _as_float(x: np.ndarray, pixel_max: float | None) -> np.ndarray:
    out = x.astype(np.float32)
    if pixel_max is not None:
        out /= np.float32(pixel_max)
    return out


def load_dataset(
    name: str = "digits",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    max_train: int | None = None,
    max_test: int | None = None,
    download: bool = True,
    progress: bool = True,
    mirrors: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Dataset:
    """Load dataset ``name`` split into train / validation / test, normalised with train stats.

    Splitting: sources with a canonical test split (mnist, fashion_mnist, cifar10) keep it and
    carve ``val_fraction`` of their train split out as validation; the others (digits,
    synthetic) first set ``test_fraction`` aside as test, then ``val_fraction`` of the rest as
    validation. Every split is stratified by class and seeded, and holds at least one sample.

    Subsampling: ``max_train`` keeps a stratified random ``max_train`` of the train split and
    shrinks validation in proportion (so it stays ``val_fraction`` of train + validation);
    ``max_test`` keeps a stratified random ``max_test`` of the test split. The full splits are
    drawn first, so a subsample never moves a sample from one split to another.

    Normalisation: pixels are scaled to [0, 1], then every split is normalised per channel with
    the mean and standard deviation of the (final) train split only, recorded in the result.

    The same arguments always give bit-identical arrays.

    Args:
        name: a registered dataset (see ``DATASETS.names()``); ``"digits"`` needs no files.
        data_dir: data directory; ``None`` means ``$ENSPRUNE_DATA_DIR``, else ``./data``.
        seed: seeds the splits and subsamples (a non-negative integer).
        val_fraction: fraction of the train pool used for validation, in (0, 1).
        test_fraction: fraction used for test, in (0, 1); ignored with a canonical test split.
        max_train: cap on the number of training samples, or ``None``.
        max_test: cap on the number of test samples, or ``None``.
        download: download missing files (MD5-verified) into the data directory.
        progress: show download progress bars.
        mirrors: base URLs to download from instead of the source's default mirrors (a private
            mirror, or a local server in tests).
        options: source-specific options, e.g. ``{"n_samples": 5000}`` for ``synthetic``.

    Returns:
        The ``Dataset``.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the valid names).
        SpecError: an invalid fraction, seed, cap or option.
        DataError: missing, corrupt or undownloadable files.

    Example:
        >>> ds = load_dataset("mnist", seed=1, max_train=5000, progress=False)
        >>> ds.x_train.shape, ds.input_shape
        ((5000, 1, 28, 28), (1, 28, 28))
    """
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    _check_seed(seed)
    _check_count("max_train", max_train)
    _check_count("max_test", max_test)
    source = DATASETS.get(name)
    given = dict(options or {})
    unknown = sorted(set(given) - set(source.options))
    if unknown:
        accepted = ", ".join(source.options) or "none"
        raise SpecError(
            f"dataset {name!r} does not take option(s) {', '.join(unknown)}; it accepts: {accepted}"
        )
    if isinstance(mirrors, str):  # a lone URL, not a sequence of one-character mirrors
        mirrors = (mirrors,)
    raw = source(
        SourceRequest(
            data_dir=resolve_data_dir(data_dir),
            download=download,
            progress=progress,
            mirrors=None if mirrors is None else tuple(mirrors),
            options=given,
        )
    )
    _check_raw(name, raw)
    seed = int(seed)
    y_all = raw.y.astype(np.int64)

    if raw.x_test is None or raw.y_test is None:
        n_test = count_for_fraction(len(y_all), test_fraction)
        pool, test_idx = stratified_split(y_all, n_test, _rng(seed, _TEST_SPLIT))
        x_test_src, y_test_src = raw.x, y_all
    else:
        pool, test_idx = np.arange(len(y_all)), np.arange(len(raw.y_test))
        x_test_src, y_test_src = raw.x_test, raw.y_test.astype(np.int64)
    n_val = count_for_fraction(len(pool), val_fraction)
    kept, taken = stratified_split(y_all[pool], n_val, _rng(seed, _VAL_SPLIT))
    train_idx, val_idx = pool[kept], pool[taken]

    if max_train is not None and max_train < len(train_idx):
        n_val = max(1, math.floor(max_train * val_fraction / (1.0 - val_fraction) + 0.5))
        sub = stratified_subsample(y_all[train_idx], max_train, _rng(seed, _TRAIN_SUBSAMPLE))
        train_idx = train_idx[sub]
        if n_val < len(val_idx):
            sub = stratified_subsample(y_all[val_idx], n_val, _rng(seed, _VAL_SUBSAMPLE))
            val_idx = val_idx[sub]
    if max_test is not None and max_test < len(test_idx):
        sub = stratified_subsample(y_test_src[test_idx], max_test, _rng(seed, _TEST_SUBSAMPLE))
        test_idx = test_idx[sub]

    x_train = _as_float(raw.x[train_idx], raw.pixel_max)
    x_val = _as_float(raw.x[val_idx], raw.pixel_max)
    x_test = _as_float(x_test_src[test_idx], raw.pixel_max)
    mean, std = channel_stats(x_train)
    for x in (x_train, x_val, x_test):
        normalise_(x, mean, std)
    c, h, w = (int(d) for d in raw.x.shape[1:])
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_all[train_idx],
        x_val=x_val,
        y_val=y_all[val_idx],
        x_test=x_test,
        y_test=y_test_src[test_idx],
        num_classes=int(raw.num_classes),
        input_shape=(c, h, w),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        class_names=tuple(raw.class_names),
    )
