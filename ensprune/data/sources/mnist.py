"""MNIST handwritten digits (LeCun et al.): 60000 train + 10000 test 28x28 grey images."""

from __future__ import annotations

from ensprune.data.dataset import RawData, SourceRequest, dataset_source
from ensprune.data.download import RemoteFile
from ensprune.data.sources._idx_source import IdxDataset

MNIST = IdxDataset(
    name="mnist",
    folder="mnist",
    train_images=RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    train_labels=RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    test_images=RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    test_labels=RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    # yann.lecun.com now refuses automated downloads; these two mirror the original files
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    class_names=tuple(str(d) for d in range(10)),
)


@dataset_source(
    "mnist",
    "MNIST handwritten digits: 60000 train + 10000 test 28x28 grey images, 10 classes "
    "(downloaded, MD5-verified)",
)
def mnist(request: SourceRequest) -> RawData:
    """MNIST from ``data_dir/mnist/*.gz``, downloaded there when missing."""
    return MNIST.fetch(request)
