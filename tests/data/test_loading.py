"""load_dataset on the bundled digits and on synthetic data: splits, seeds, normalisation, caps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits

from ensprune.data import Dataset, channel_stats, load_dataset
from ensprune.errors import DataError, SpecError

SPLITS = ("train", "val", "test")


def _xy(ds: Dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    return getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")


def _raw_digits(ds: Dataset, split: str) -> np.ndarray:
    """Undo the normalisation and the [0, 1] scaling: back to digits' integer pixels 0..16."""
    x = _xy(ds, split)[0].astype(np.float64) * ds.std[0] + ds.mean[0]
    return np.rint(x * 16).astype(np.int64)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits", seed=0)


def test_digits_shapes_dtypes_and_sizes(digits: Dataset) -> None:
    # 1797 samples: 20 % test (359), then 10 % of the remaining 1438 as validation (144)
    assert digits.sizes == {"train": 1294, "val": 144, "test": 359}
    assert digits.input_shape == (1, 8, 8)
    assert digits.num_classes == 10
    assert digits.class_names == tuple("0123456789")
    for split in SPLITS:
        x, y = _xy(digits, split)
        assert x.dtype == np.float32 and x.shape[1:] == (1, 8, 8)
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert set(np.unique(y)) == set(range(10))
    assert "digits" in repr(digits) and "train=1294" in repr(digits)


def test_digits_splits_partition_the_dataset(digits: Dataset) -> None:
    """Every original image lands in exactly one split, with its label (duplicates included)."""
    bunch = load_digits()
    original = np.concatenate([bunch.images.reshape(-1, 64), bunch.target[:, None]], axis=1)
    parts = [
        np.concatenate([_raw_digits(digits, s).reshape(-1, 64), _xy(digits, s)[1][:, None]], 1)
        for s in SPLITS
    ]
    recovered = np.concatenate(parts)
    assert len(recovered) == len(original)
    assert np.array_equal(
        recovered[np.lexsort(recovered.T)], original.astype(np.int64)[np.lexsort(original.T)]
    )


def test_digits_splits_are_stratified(digits: Dataset) -> None:
    overall = np.bincount(load_digits().target, minlength=10) / 1797
    for split in SPLITS:
        y = _xy(digits, split)[1]
        counts = np.bincount(y, minlength=10)
        # largest-remainder allocation: each class within one sample of its exact share
        assert np.all(np.abs(counts - overall * len(y)) <= 1.0 + 1e-9), (split, counts)


def test_same_seed_is_bit_identical_and_other_seeds_differ(digits: Dataset) -> None:
    again = load_dataset("digits", seed=0)
    for split in SPLITS:
        for a, b in zip(_xy(digits, split), _xy(again, split), strict=True):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert again.mean == digits.mean and again.std == digits.std
    other = load_dataset("digits", seed=1)
    assert other.sizes == digits.sizes
    assert not np.array_equal(other.y_test, digits.y_test)
    assert not np.array_equal(other.x_train, digits.x_train)


def test_normalisation_uses_train_statistics_only(digits: Dataset) -> None:
    train = digits.x_train.astype(np.float64)
    assert abs(train.mean()) < 1e-5
    assert abs(train.std() - 1.0) < 1e-5
    # validation and test are normalised with the train statistics, so they are close, not exact
    for split in ("val", "test"):
        x = _xy(digits, split)[0].astype(np.float64)
        assert abs(x.mean()) > 1e-4 and abs(x.mean()) < 0.2
    # the recorded statistics are those of the train split in [0, 1] pixel units ...
    raw_train = _raw_digits(digits, "train")[:, None] / 16.0
    mean, std = channel_stats(raw_train.reshape(-1, 1, 8, 8))
    assert digits.mean == pytest.approx(tuple(mean), abs=1e-7)
    assert digits.std == pytest.approx(tuple(std), abs=1e-7)
    # ... which differ from those of the whole dataset
    everything = load_digits().images[:, None] / 16.0
    assert abs(float(everything.mean()) - digits.mean[0]) > 1e-5


def test_max_train_subsample_is_stratified_and_leaves_test_alone(digits: Dataset) -> None:
    small = load_dataset("digits", seed=0, max_train=200, max_test=100)
    assert small.sizes == {"train": 200, "val": 22, "test": 100}  # val stays 10 % of train + val
    for split, n in (("train", 200), ("val", 22), ("test", 100)):
        counts = np.bincount(_xy(small, split)[1], minlength=10)
        full = np.bincount(_xy(digits, split)[1], minlength=10)
        assert np.all(np.abs(counts - full / full.sum() * n) <= 1.0 + 1e-9), (split, counts)
    # subsamples are drawn from the full splits: no sample changes split
    for split in SPLITS:
        rows = {r.tobytes() for r in _raw_digits(digits, split).reshape(-1, 64)}
        assert all(r.tobytes() in rows for r in _raw_digits(small, split).reshape(-1, 64))
    # a cap on test alone does not change train / val
    capped = load_dataset("digits", seed=0, max_test=50)
    assert np.array_equal(capped.x_train, digits.x_train)
    assert np.array_equal(capped.y_val, digits.y_val)
    # a cap larger than the split is a no-op
    assert load_dataset("digits", seed=0, max_train=10**6).sizes == digits.sizes


def test_splits_of_the_subsample_are_disjoint() -> None:
    small = load_dataset("synthetic", seed=3, max_train=300, max_test=80)
    rows = [
        {r.tobytes() for r in _xy(small, s)[0].reshape(len(_xy(small, s)[0]), -1)} for s in SPLITS
    ]
    assert [len(r) for r in rows] == [300, 33, 80]
    assert not (rows[0] & rows[1]) and not (rows[0] & rows[2]) and not (rows[1] & rows[2])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"val_fraction": -0.1}, "val_fraction"),
        ({"val_fraction": float("nan")}, "val_fraction"),
        ({"val_fraction": "0.1"}, "val_fraction"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"test_fraction": True}, "test_fraction"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": True}, "seed"),
        ({"seed": "0"}, "seed"),
        ({"max_train": 0}, "max_train"),
        ({"max_train": 2.5}, "max_train"),
        ({"max_test": -3}, "max_test"),
        ({"options": {"n_samples": 10}}, "does not take option"),
    ],
)
def test_invalid_options_raise_spec_error(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        load_dataset("digits", **kwargs)


def test_numpy_integer_seed_and_fractions_are_accepted(digits: Dataset) -> None:
    seed: Any = np.int64(0)  # numpy scalars from user code are accepted at run time
    ds = load_dataset("digits", seed=seed, val_fraction=np.float64(0.1))
    assert np.array_equal(ds.y_train, digits.y_train)


def test_synthetic_is_a_square_image_and_fixed_by_data_seed() -> None:
    ds = load_dataset("synthetic", seed=0)
    assert ds.input_shape == (1, 8, 8) and ds.x_train.shape[1:] == (1, 8, 8)
    assert sum(ds.sizes.values()) == 2000 and ds.num_classes == 10
    assert abs(float(ds.x_train.mean())) < 1e-5 and abs(float(ds.x_train.std()) - 1) < 1e-5
    wide = load_dataset("synthetic", options={"n_features": 100, "n_classes": 3, "n_samples": 300})
    assert wide.input_shape == (1, 10, 10) and wide.num_classes == 3
    assert sum(wide.sizes.values()) == 300

    def pool(d: Dataset) -> np.ndarray:
        """All samples, un-normalised, in a canonical row order."""
        x = np.concatenate([d.x_train, d.x_val, d.x_test]).astype(np.float64)
        x = (x * d.std[0] + d.mean[0]).reshape(len(x), -1)
        return x[np.lexsort(x.T[::-1])]

    # another split seed reshuffles the same data; another data_seed is other data
    assert np.allclose(pool(load_dataset("synthetic", seed=1)), pool(ds), atol=1e-4)
    other = pool(load_dataset("synthetic", options={"data_seed": 1}))
    assert not np.allclose(other, pool(ds), atol=1e-1)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"n_features": 50}, "perfect square"),
        ({"n_informative": 70}, "inconsistent"),
        ({"n_classes": 1}, "n_classes"),
        ({"n_samples": 2.5}, "integer"),
        ({"flip_y": 2.0}, "flip_y"),
    ],
)
def test_synthetic_rejects_bad_options(options: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        load_dataset("synthetic", options=options)


def test_dataset_validates_its_arrays() -> None:
    x, y = np.zeros((4, 1, 2, 2), np.float32), np.array([0, 1, 0, 1])
    good: dict[str, Any] = {
        "name": "toy",
        "x_train": x,
        "y_train": y,
        "x_val": x,
        "y_val": y,
        "x_test": x,
        "y_test": y,
        "num_classes": 2,
        "input_shape": (1, 2, 2),
        "mean": (0.0,),
        "std": (1.0,),
    }
    Dataset(**good)
    for change, match in (
        ({"x_val": x.astype(np.float64)}, "x_val"),
        ({"y_test": y[:3]}, "y_test"),
        ({"y_train": np.array([0, 1, 2, 1])}, "outside"),
        ({"mean": (0.0, 0.0)}, "per channel"),
        ({"input_shape": (4,)}, "input_shape"),
    ):
        with pytest.raises(DataError, match=match):
            Dataset(**{**good, **change})
