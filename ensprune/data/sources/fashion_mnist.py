"""Fashion-MNIST (Zalando): 60000 train + 10000 test 28x28 grey images of clothing."""

from __future__ import annotations

from ensprune.data.dataset import RawData, SourceRequest, dataset_source
from ensprune.data.download import RemoteFile
from ensprune.data.sources._idx_source import IdxDataset

FASHION_MNIST = IdxDataset(
    name="fashion_mnist",
    folder="fashion-mnist",
    train_images=RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    train_labels=RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
    test_images=RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
    test_labels=RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
)


@dataset_source(
    "fashion_mnist",
    "Fashion-MNIST clothing: 60000 train + 10000 test 28x28 grey images, 10 classes "
    "(downloaded, MD5-verified)",
)
def fashion_mnist(request: SourceRequest) -> RawData:
    """Fashion-MNIST from ``data_dir/fashion-mnist/*.gz``, downloaded there when missing."""
    return FASHION_MNIST.fetch(request)
