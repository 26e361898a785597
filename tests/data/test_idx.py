"""The IDX reader on small files written here, and checksum refusal of dataset files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from ensprune.data import (
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    load_dataset,
    md5_file,
    read_idx,
    read_idx_pair,
    verify_md5,
)
from ensprune.errors import DataError

_TYPE_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}


def write_idx(
    path: Path, array: np.ndarray, *, magic: int | None = None, cut: int = 0, extra: bytes = b""
) -> Path:
    """Write ``array`` as IDX (gzip when the name ends in .gz), optionally damaged."""
    if magic is None:
        magic = (_TYPE_CODES[array.dtype] << 8) | array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = array.astype(array.dtype.newbyteorder(">")).tobytes()
    data = header + payload[: len(payload) - cut] + extra
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_reads_plain_and_gzip_files(tmp_path: Path, images: np.ndarray, name: str) -> None:
    path = write_idx(tmp_path / name, images)
    got = read_idx(path, expected_magic=IDX_IMAGES_MAGIC)
    assert got.dtype == np.uint8 and np.array_equal(got, images)
    got.flags.writeable = True  # a writable copy, not a view of the file buffer


@pytest.mark.parametrize("dtype", [np.int32, np.float32])
def test_reads_wider_big_endian_types(tmp_path: Path, dtype: type) -> None:
    array: np.ndarray = np.arange(24, dtype=dtype).reshape(2, 3, 4) - 5
    got = read_idx(write_idx(tmp_path / "a.idx", array))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative and np.array_equal(got, array)


def test_bad_magic_is_refused_with_the_file_named(tmp_path: Path, images: np.ndarray) -> None:
    path = write_idx(tmp_path / "x.gz", images, magic=0x12340803)
    with pytest.raises(DataError, match=r"x\.gz.*not a valid IDX magic number.*delete it"):
        read_idx(path)


def test_unexpected_kind_is_refused(tmp_path: Path) -> None:
    labels = write_idx(tmp_path / "labels.gz", np.arange(5, dtype=np.uint8))
    with pytest.raises(DataError, match=r"labels\.gz: IDX magic number is 0x00000801, expected"):
        read_idx(labels, expected_magic=IDX_IMAGES_MAGIC)


def test_truncated_payload_is_refused(tmp_path: Path, images: np.ndarray) -> None:
    path = write_idx(tmp_path / "cut.gz", images, cut=10)
    with pytest.raises(DataError, match=r"cut\.gz: payload truncated.*\(5, 28, 28\)"):
        read_idx(path)


def test_trailing_bytes_are_refused(tmp_path: Path, images: np.ndarray) -> None:
    path = write_idx(tmp_path / "long", images, extra=b"\0\0")
    with pytest.raises(DataError, match="trailing bytes"):
        read_idx(path)


def test_truncated_gzip_and_short_header_are_refused(tmp_path: Path, images: np.ndarray) -> None:
    path = write_idx(tmp_path / "img.gz", images)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"img\.gz: corrupt or truncated gzip"):
        read_idx(path)
    short = tmp_path / "short"
    short.write_bytes(struct.pack(">I", IDX_IMAGES_MAGIC) + b"\0\0\0\5")
    with pytest.raises(DataError, match="header of 3 dimensions is cut short"):
        read_idx(short)
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\0\0")
    with pytest.raises(DataError, match="too short"):
        read_idx(tiny)


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "absent.gz")


def test_pair_checks_counts_labels_and_size(tmp_path: Path, images: np.ndarray) -> None:
    img = write_idx(tmp_path / "img.gz", images)
    lab = write_idx(tmp_path / "lab.gz", np.array([0, 1, 2, 3, 9], np.uint8))
    x, y = read_idx_pair(img, lab, num_classes=10, image_shape=(28, 28))
    assert x.shape == (5, 1, 28, 28) and y.dtype == np.int64 and list(y) == [0, 1, 2, 3, 9]

    four = write_idx(tmp_path / "four.gz", np.array([0, 1, 2, 3], np.uint8))
    with pytest.raises(DataError, match=r"img\.gz holds 5 images but .*four\.gz holds 4 labels"):
        read_idx_pair(img, four, num_classes=10)
    bad = write_idx(tmp_path / "bad.gz", np.array([0, 1, 2, 3, 10], np.uint8))
    with pytest.raises(DataError, match=r"bad\.gz: label 10 is outside \[0, 10\)"):
        read_idx_pair(img, bad, num_classes=10)
    with pytest.raises(DataError, match="images are 28x28, expected 32x32"):
        read_idx_pair(img, lab, num_classes=10, image_shape=(32, 32))
    assert IDX_LABELS_MAGIC == 0x801 and IDX_IMAGES_MAGIC == 0x803


def test_checksum_mismatch_names_file_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"hello")
    assert md5_file(path) == "5d41402abc4b2a76b9719d911017c592"
    verify_md5(path, "5D41402ABC4B2A76B9719D911017C592")
    with pytest.raises(DataError) as info:
        verify_md5(path, "0" * 32)
    message = str(info.value)
    assert str(path) in message and "5d41402abc4b2a76b9719d911017c592" in message
    assert "0" * 32 in message and "delete it" in message and "--data-dir" in message


def test_corrupt_dataset_file_is_refused_before_use(tmp_path: Path, images: np.ndarray) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    # a valid IDX file, but not the canonical one: only the checksum can tell
    write_idx(folder / "train-images-idx3-ubyte.gz", images)
    with pytest.raises(DataError) as info:
        load_dataset("mnist", data_dir=tmp_path, download=False, progress=False)
    message = str(info.value)
    assert str(folder / "train-images-idx3-ubyte.gz") in message
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in message and "MD5" in message
    assert "delete it" in message


def test_missing_files_without_download_list_paths_and_sources(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("fashion_mnist", data_dir=tmp_path, download=False)
    message = str(info.value)
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert str(tmp_path / "fashion-mnist" / name) in message
    assert "fashion-mnist.s3-website" in message and "ENSPRUNE_DATA_DIR" in message
    assert not (tmp_path / "fashion-mnist").exists()  # nothing created when not downloading
