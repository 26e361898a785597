"""The real MNIST and Fashion-MNIST files (from ENSPRUNE_DATA_DIR, else ../shared/data)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ensprune.data import load_dataset, md5_file, read_idx
from ensprune.data.sources.fashion_mnist import FASHION_MNIST
from ensprune.data.sources.mnist import MNIST

pytestmark = pytest.mark.real_data

CASES = {
    # name: (source spec, train-split mean/std in [0, 1] units, canonical test class counts)
    "mnist": (MNIST, (0.1307, 0.3081), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]),
    "fashion_mnist": (FASHION_MNIST, (0.2860, 0.3530), [1000] * 10),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_dataset_loads_verified_and_split(
    name: str, real_folder: Callable[[str], Path]
) -> None:
    spec, (mean, std), test_counts = CASES[name]
    folder = real_folder(spec.folder)
    for remote in spec.files:
        assert md5_file(folder / remote.name) == remote.md5, remote.name
    ds = load_dataset(name, data_dir=folder.parent, download=False, progress=False, seed=0)
    assert ds.sizes == {"train": 54000, "val": 6000, "test": 10000}
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert ds.x_train.shape == (54000, 1, 28, 28) and ds.x_train.dtype == np.float32
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert y.dtype == np.int64 and y.min() == 0 and y.max() == 9
    # the canonical test split is kept whole and in order
    assert np.bincount(ds.y_test).tolist() == test_counts
    raw_test = read_idx(folder / spec.test_labels.name)
    assert np.array_equal(ds.y_test, raw_test)
    # validation is a stratified 10 % of the canonical 60000
    train_counts = np.bincount(np.concatenate([ds.y_train, ds.y_val]))
    assert np.all(np.abs(np.bincount(ds.y_val) - train_counts / 10) <= 1)
    assert ds.mean[0] == pytest.approx(mean, abs=2e-3)
    assert ds.std[0] == pytest.approx(std, abs=2e-3)
    assert abs(float(ds.x_train.mean())) < 1e-4


def test_checksums_agree_with_the_shared_md5sums(real_data_root: Path) -> None:
    md5sums = real_data_root / "MD5SUMS"
    if not md5sums.is_file():
        pytest.skip(f"no MD5SUMS file in {real_data_root}")
    listed = {}
    for line in md5sums.read_text().splitlines():
        if line.strip():
            md5, name = line.split()
            listed[name] = md5
    for spec in (MNIST, FASHION_MNIST):
        for remote in spec.files:
            key = f"{spec.folder}/{remote.name}"
            if key in listed:
                assert listed[key] == remote.md5, key
