"""Datasets: a registry of sources, checksum-verified readers and downloads, seeded splits.

``load_dataset(name, ...)`` returns a ``Dataset`` with stratified train / validation / test splits
in the (N, C, H, W) layout, normalised with train statistics. Files live in the data directory
(``--data-dir``, else ``$ENSPRUNE_DATA_DIR``, else ``./data``); see ``resolve_data_dir``.

Example:
    >>> from ensprune.data import DATASETS, load_dataset
    >>> DATASETS.names()
    ['cifar10', 'digits', 'fashion_mnist', 'mnist', 'synthetic']
    >>> ds = load_dataset("digits", seed=0)
"""

from __future__ import annotations

from ensprune.data import sources  # noqa: F401  (registers the built-in datasets)
from ensprune.data.cifar import CIFAR10_MD5, CifarArrays, read_cifar10, unpickle_batch
from ensprune.data.dataset import (
    DATASETS,
    Dataset,
    DatasetSource,
    RawData,
    SourceRequest,
    dataset_source,
)
from ensprune.data.download import RemoteFile, download_file, ensure_files, md5_file, verify_md5
from ensprune.data.idx import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, read_idx, read_idx_pair
from ensprune.data.loading import load_dataset
from ensprune.data.paths import DATA_DIR_ENV, resolve_data_dir
from ensprune.data.splits import channel_stats, stratified_split, stratified_subsample

__all__ = [
    "CIFAR10_MD5",
    "DATASETS",
    "DATA_DIR_ENV",
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
    "CifarArrays",
    "Dataset",
    "DatasetSource",
    "RawData",
    "RemoteFile",
    "SourceRequest",
    "channel_stats",
    "dataset_source",
    "download_file",
    "ensure_files",
    "load_dataset",
    "md5_file",
    "read_cifar10",
    "read_idx",
    "read_idx_pair",
    "resolve_data_dir",
    "stratified_split",
    "stratified_subsample",
    "unpickle_batch",
    "verify_md5",
]
