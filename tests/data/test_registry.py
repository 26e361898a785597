"""The dataset registry: built-in names, descriptions, unknown names, custom sources."""

from __future__ import annotations

import numpy as np
import pytest

import ensprune.data as data_pkg
from ensprune.data import (
    DATASETS,
    DatasetSource,
    RawData,
    SourceRequest,
    dataset_source,
    load_dataset,
)
from ensprune.errors import UnknownNameError


def test_builtin_datasets_are_registered_with_one_line_descriptions() -> None:
    assert {"digits", "mnist", "fashion_mnist", "cifar10", "synthetic"} <= set(DATASETS.names())
    for name, source in DATASETS.items():
        assert isinstance(source, DatasetSource) and source.name == name
        assert source.description.strip() and "\n" not in source.description
        assert len(source.description) <= 110


def test_public_api_is_complete() -> None:
    for name in data_pkg.__all__:
        assert getattr(data_pkg, name) is not None


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        load_dataset("imagenet")
    message = str(info.value)
    assert "'imagenet'" in message
    assert all(name in message for name in DATASETS.names())


def test_a_registered_source_loads_like_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    # a private copy of the registry, so the toy source does not leak into other tests
    monkeypatch.setattr(DATASETS, "_items", dict(DATASETS._items))
    seen: list[SourceRequest] = []

    @dataset_source("toy", "forty 2x2 colour images, 2 classes", options=("size",))
    def toy(request: SourceRequest) -> RawData:
        seen.append(request)
        x = np.arange(40 * 12, dtype=np.uint8).reshape(40, 3, 2, 2)
        return RawData(x=x, y=np.arange(40) % 2, num_classes=2, pixel_max=255.0)

    ds = load_dataset("toy", options={"size": 1}, mirrors="http://127.0.0.1:9/", progress=False)
    assert ds.input_shape == (3, 2, 2) and len(ds.mean) == 3
    assert ds.sizes == {"train": 29, "val": 3, "test": 8}
    assert seen[0].options == {"size": 1} and seen[0].mirrors == ("http://127.0.0.1:9/",)
    assert DATASETS.get("toy") is toy
    with pytest.raises(ValueError, match="one-line"):
        dataset_source("bad", "two\nlines")
