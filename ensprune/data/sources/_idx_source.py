"""What MNIST and Fashion-MNIST share: four canonical IDX files, MD5-verified, maybe downloaded."""

from __future__ import annotations

from dataclasses import dataclass

from ensprune.data.dataset import RawData, SourceRequest
from ensprune.data.download import RemoteFile, ensure_files
from ensprune.data.idx import read_idx_pair


@dataclass(frozen=True)
class IdxDataset:
    """An MNIST-format dataset: its folder in the data directory, files, mirrors and classes.

    Attributes:
        name: dataset name, for messages.
        folder: sub-folder of the data directory holding the files.
        train_images: the training images file.
        train_labels: the training labels file.
        test_images: the test images file.
        test_labels: the test labels file.
        mirrors: base URLs, tried in order.
        class_names: one name per class.
    """

    name: str
    folder: str
    train_images: RemoteFile
    train_labels: RemoteFile
    test_images: RemoteFile
    test_labels: RemoteFile
    mirrors: tuple[str, ...]
    class_names: tuple[str, ...]

    @property
    def files(self) -> tuple[RemoteFile, ...]:
        """The four files, train before test, images before labels."""
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)

    def fetch(self, request: SourceRequest) -> RawData:
        """Verify (or download) the files in ``data_dir/folder`` and read them."""
        mirrors = self.mirrors if request.mirrors is None else request.mirrors
        paths = ensure_files(
            request.data_dir / self.folder,
            self.files,
            mirrors,
            dataset=self.name,
            download=request.download,
            progress=request.progress,
        )
        num_classes = len(self.class_names)
        x, y = read_idx_pair(paths[0], paths[1], num_classes=num_classes, image_shape=(28, 28))
        x_test, y_test = read_idx_pair(
            paths[2], paths[3], num_classes=num_classes, image_shape=(28, 28)
        )
        return RawData(
            x=x,
            y=y,
            num_classes=num_classes,
            x_test=x_test,
            y_test=y_test,
            pixel_max=255.0,
            class_names=self.class_names,
        )
