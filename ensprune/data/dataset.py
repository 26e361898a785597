"""The ``Dataset`` every stage consumes, and the registry of dataset sources that produce them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ensprune._registry import Registry
from ensprune.errors import DataError


@dataclass(frozen=True, eq=False)
class Dataset:
    """One dataset, split into train / validation / test, normalised with train statistics.

    Images are always in the (N, C, H, W) layout, so convolutional and fully connected models
    accept every dataset alike (MLPs flatten).

    Attributes:
        name: registry name of the source (``"digits"``, ``"mnist"``, ...).
        x_train: float32 array (N_train, C, H, W), normalised.
        y_train: int64 array (N_train,) with labels in ``[0, num_classes)``.
        x_val: float32 array (N_val, C, H, W), normalised with the train statistics.
        y_val: int64 array (N_val,).
        x_test: float32 array (N_test, C, H, W), normalised with the train statistics.
        y_test: int64 array (N_test,).
        num_classes: number of classes C of the task.
        input_shape: (C, H, W) of one sample.
        mean: per-channel mean subtracted (in [0, 1] pixel units for image data).
        std: per-channel standard deviation divided by; ``x_raw01 = x * std + mean`` undoes it.
        class_names: human-readable name of each class (empty when the source has none).

    Equality is identity (arrays make ``==`` ambiguous); compare arrays explicitly.

    Example:
        >>> ds = load_dataset("digits", seed=0)
        >>> ds.x_train.shape[1:] == ds.input_shape
        True
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        shape = tuple(self.input_shape)
        if len(shape) != 3:
            raise DataError(f"dataset {self.name!r}: input_shape must be (C, H, W); got {shape}")
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != np.float32 or x.shape[1:] != shape:
                raise DataError(
                    f"dataset {self.name!r}: x_{split} must be float32 of shape (N, *{shape}); "
                    f"got {x.dtype} {x.shape}"
                )
            if y.dtype != np.int64 or y.shape != (x.shape[0],):
                raise DataError(
                    f"dataset {self.name!r}: y_{split} must be int64 of shape ({x.shape[0]},); "
                    f"got {y.dtype} {y.shape}"
                )
            if y.size and (y.min() < 0 or y.max() >= self.num_classes):
                raise DataError(
                    f"dataset {self.name!r}: y_{split} holds labels outside [0, {self.num_classes})"
                )
        if len(self.mean) != shape[0] or len(self.std) != shape[0]:
            raise DataError(
                f"dataset {self.name!r}: mean and std need one value per channel ({shape[0]})"
            )

    @property
    def sizes(self) -> dict[str, int]:
        """Number of samples per split, e.g. ``{"train": 1294, "val": 144, "test": 359}``."""
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return (
            f"Dataset(name={self.name!r}, {sizes}, input_shape={tuple(self.input_shape)}, "
            f"num_classes={self.num_classes})"
        )


@dataclass(frozen=True, eq=False)
class RawData:
    """What a source hands to ``load_dataset``: unsplit, unnormalised arrays in (N, C, H, W).

    Attributes:
        x: samples of the pool that train and validation are drawn from (any numeric dtype).
        y: integer labels of ``x``.
        num_classes: number of classes.
        x_test: the canonical test split, or ``None`` to carve one out of ``x``.
        y_test: labels of ``x_test``.
        pixel_max: divide by this to scale pixels to [0, 1] (255 for 8-bit images); ``None`` for
            non-pixel features, which are only standardised.
        class_names: optional names of the classes.
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    pixel_max: float | None = None
    class_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceRequest:
    """Everything a source may need to produce its ``RawData``.

    Attributes:
        data_dir: resolved data directory (sources use their own sub-folder of it).
        download: whether missing files may be downloaded.
        progress: whether to show download progress bars.
        mirrors: base URLs replacing the source's default mirror list (``None``: the defaults).
        options: source-specific options, already checked against ``DatasetSource.options``.
    """

    data_dir: Path
    download: bool = True
    progress: bool = True
    mirrors: tuple[str, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


SourceFetch = Callable[[SourceRequest], RawData]


@dataclass(frozen=True)
class DatasetSource:
    """A registered dataset: how to get its raw arrays, plus what ``ensprune list`` shows.

    Attributes:
        name: registry name.
        description: one line for ``ensprune list datasets``.
        fetch: function ``SourceRequest -> RawData``.
        options: names of the source-specific options it accepts (see ``load_dataset``).
    """

    name: str
    description: str
    fetch: SourceFetch
    options: tuple[str, ...] = ()

    def __call__(self, request: SourceRequest) -> RawData:
        return self.fetch(request)


def _plugin_dataset(name: str, obj: Any) -> DatasetSource:
    """An entry point of ``ensprune.datasets``: a ``DatasetSource``, or a fetch function
    ``SourceRequest -> RawData`` (its docstring's first line describes it)."""
    if isinstance(obj, DatasetSource):
        return obj
    if not callable(obj):
        raise TypeError(f"{obj!r} is neither a DatasetSource nor a fetch function")
    doc = (getattr(obj, "__doc__", None) or "").strip()
    description = doc.splitlines()[0] if doc else f"plugin dataset {name}"
    return DatasetSource(name=name, description=description, fetch=obj)


DATASETS: Registry[DatasetSource] = Registry(
    "dataset", entry_points="ensprune.datasets", adapt=_plugin_dataset
)


def dataset_source(
    name: str, description: str, *, options: tuple[str, ...] = ()
) -> Callable[[SourceFetch], DatasetSource]:
    """Decorator registering a fetch function as dataset ``name`` in ``DATASETS``.

    Example:
        >>> @dataset_source("toy", "four random 2x2 images")
        ... def toy(request: SourceRequest) -> RawData:
        ...     return RawData(x=np.zeros((4, 1, 2, 2)), y=np.array([0, 1, 0, 1]), num_classes=2)
    """
    if "\n" in description or not description.strip():
        raise ValueError(f"dataset {name!r} needs a non-empty one-line description")

    def decorator(fetch: SourceFetch) -> DatasetSource:
        source = DatasetSource(name=name, description=description, fetch=fetch, options=options)
        return DATASETS.register(name)(source)

    return decorator
