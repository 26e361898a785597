"""scikit-learn's bundled 8x8 handwritten digits: the default dataset, needs no download."""

from __future__ import annotations

import numpy as np

from ensprune.data.dataset import RawData, SourceRequest, dataset_source


@dataset_source(
    "digits",
    "scikit-learn's handwritten digits: 1797 8x8 grey images, 10 classes (bundled, no download)",
)
def digits(request: SourceRequest) -> RawData:
    """The UCI optical digits shipped with scikit-learn, pixels 0..16, as (1797, 1, 8, 8)."""
    from sklearn.datasets import load_digits  # deferred: keeps `import ensprune.data` fast

    bunch = load_digits()
    return RawData(
        x=bunch.images.astype(np.uint8)[:, None, :, :],
        y=bunch.target.astype(np.int64),
        num_classes=10,
        pixel_max=16.0,
        class_names=tuple(str(d) for d in range(10)),
    )
