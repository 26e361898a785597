"""A seeded synthetic classification task (scikit-learn's make_classification) as square images.

The features are laid out as a 1xSxS image (64 features -> 1x8x8), so convolutional models accept
it as readily as MLPs. The data itself is fixed by the ``data_seed`` option (default 0), like any
other dataset; ``load_dataset``'s ``seed`` only changes how it is split.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ensprune.data.dataset import RawData, SourceRequest, dataset_source
from ensprune.errors import SpecError

DEFAULTS: dict[str, Any] = {
    "n_samples": 2000,
    "n_features": 64,
    "n_classes": 10,
    "n_informative": 16,
    "n_redundant": 8,
    "n_clusters_per_class": 2,
    "class_sep": 1.0,
    "flip_y": 0.01,
    "data_seed": 0,
}
"""Default options; ``n_features`` must be a perfect square."""

_MINIMUM = {"n_samples": 2, "n_features": 1, "n_classes": 2, "n_informative": 1}


def _int_option(options: dict[str, Any], key: str) -> int:
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SpecError(f"synthetic option {key} must be an integer; got {value!r}")
    if value < _MINIMUM.get(key, 0):
        raise SpecError(f"synthetic option {key} must be >= {_MINIMUM.get(key, 0)}; got {value}")
    return int(value)


def _float_option(options: dict[str, Any], key: str, low: float, high: float) -> float:
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SpecError(f"synthetic option {key} must be a number; got {value!r}")
    if not (low <= float(value) <= high):
        raise SpecError(f"synthetic option {key} must lie in [{low}, {high}]; got {value}")
    return float(value)


@dataset_source(
    "synthetic",
    "seeded make_classification: 2000 samples, 64 features as 1x8x8 images, 10 classes "
    "(no download)",
    options=tuple(DEFAULTS),
)
def synthetic(request: SourceRequest) -> RawData:
    """Generate the task from ``DEFAULTS`` updated with ``request.options``."""
    from sklearn.datasets import make_classification  # deferred: keeps imports fast

    options = {**DEFAULTS, **request.options}
    ints = {
        key: _int_option(options, key)
        for key in (
            "n_samples",
            "n_features",
            "n_classes",
            "n_informative",
            "n_redundant",
            "n_clusters_per_class",
            "data_seed",
        )
    }
    side = math.isqrt(ints["n_features"])
    if side * side != ints["n_features"]:
        raise SpecError(
            f"synthetic option n_features must be a perfect square (it becomes a 1xSxS image); "
            f"got {ints['n_features']}, try {side * side} or {(side + 1) ** 2}"
        )
    try:
        x, y = make_classification(
            n_samples=ints["n_samples"],
            n_features=ints["n_features"],
            n_informative=ints["n_informative"],
            n_redundant=ints["n_redundant"],
            n_classes=ints["n_classes"],
            n_clusters_per_class=ints["n_clusters_per_class"],
            class_sep=_float_option(options, "class_sep", 0.0, math.inf),
            flip_y=_float_option(options, "flip_y", 0.0, 1.0),
            random_state=ints["data_seed"],
        )
    except ValueError as exc:  # scikit-learn's own consistency checks between the options
        raise SpecError(f"synthetic options are inconsistent: {exc}") from None
    return RawData(
        x=x.astype(np.float32).reshape(-1, 1, side, side),
        y=y.astype(np.int64),
        num_classes=ints["n_classes"],
        pixel_max=None,
        class_names=tuple(f"class_{k}" for k in range(ints["n_classes"])),
    )
