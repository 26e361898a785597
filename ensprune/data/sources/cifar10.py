"""CIFAR-10 (Krizhevsky): 50000 train + 10000 test 32x32 colour images, python-pickle format."""

from __future__ import annotations

from ensprune.data.cifar import (
    CIFAR10_ARCHIVE,
    CIFAR10_FOLDER,
    CIFAR10_MD5,
    read_cifar10,
)
from ensprune.data.dataset import RawData, SourceRequest, dataset_source
from ensprune.data.download import RemoteFile, ensure_files

FOLDER = "cifar10"
MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)


@dataset_source(
    "cifar10",
    "CIFAR-10 tiny images: 50000 train + 10000 test 32x32 colour images, 10 classes "
    "(downloaded, MD5-verified)",
)
def cifar10(request: SourceRequest) -> RawData:
    """CIFAR-10 from ``data_dir/cifar10/``.

    The canonical ``cifar-10-python.tar.gz`` is preferred (its MD5 is verified); without it an
    extracted ``cifar-10-batches-py/`` folder is used; with neither, the archive is downloaded.
    """
    folder = request.data_dir / FOLDER
    archive, extracted = folder / CIFAR10_ARCHIVE, folder / CIFAR10_FOLDER
    if not archive.exists() and extracted.is_dir():
        arrays = read_cifar10(extracted)
    else:
        mirrors = MIRRORS if request.mirrors is None else request.mirrors
        ensure_files(
            folder,
            [RemoteFile(CIFAR10_ARCHIVE, CIFAR10_MD5)],
            mirrors,
            dataset="cifar10",
            download=request.download,
            progress=request.progress,
        )
        # ensure_files verified the checksum just now; skip hashing 170 MB a second time
        arrays = read_cifar10(archive, md5=None)
    return RawData(
        x=arrays.x_train,
        y=arrays.y_train,
        num_classes=len(arrays.class_names),
        x_test=arrays.x_test,
        y_test=arrays.y_test,
        pixel_max=255.0,
        class_names=arrays.class_names,
    )
