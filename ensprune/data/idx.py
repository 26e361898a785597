"""Reader for the IDX format of MNIST-style datasets (optionally gzip-compressed).

An IDX file is a 4-byte magic number ``0x0000TTDD`` (``TT`` the element type, ``DD`` the number of
dimensions), ``DD`` big-endian uint32 sizes, then the elements in C order, big-endian. Images of
MNIST are ``0x00000803`` (uint8, 3 dims), labels ``0x00000801`` (uint8, 1 dim).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

from ensprune.data.paths import DATA_DIR_ENV
from ensprune.errors import DataError

IDX_LABELS_MAGIC = 0x00000801
"""Magic number of an IDX file of uint8 labels (one dimension)."""

IDX_IMAGES_MAGIC = 0x00000803
"""Magic number of an IDX file of uint8 images (three dimensions: N, rows, columns)."""

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"
_FIX = (
    f"delete it and run again to re-download it, or point --data-dir / {DATA_DIR_ENV} at a "
    "folder with intact copies"
)


def read_idx(path: str | os.PathLike[str], *, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed, detected from its first bytes) into numpy.

    The header is validated (magic number, element type, dimensions) and the payload must hold
    exactly the number of bytes the header promises: a truncated or padded file is refused.

    Args:
        path: the ``.idx``/``-ubyte`` file, optionally ``.gz``.
        expected_magic: refuse any other magic number (e.g. ``IDX_IMAGES_MAGIC``).

    Returns:
        An array of the header's shape in native byte order (uint8 for MNIST files).

    Raises:
        DataError: the file cannot be read, is not valid gzip/IDX, or is not of the expected kind;
            the message names the file and the fix.

    Example:
        >>> images = read_idx("data/mnist/t10k-images-idx3-ubyte.gz", expected_magic=0x803)
        >>> images.shape
        (10000, 28, 28)
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc}); {_FIX}") from exc
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip data ({exc}); {_FIX}") from None
    if len(data) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(data)} bytes); {_FIX}")
    (magic,) = struct.unpack(">I", data[:4])
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{path}: IDX magic number is 0x{magic:08X}, expected 0x{expected_magic:08X}; the "
            f"file is corrupt or not the one expected; {_FIX}"
        )
    type_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if magic >> 16 != 0 or type_code not in _DTYPES or ndim == 0:
        raise DataError(f"{path}: 0x{magic:08X} is not a valid IDX magic number; {_FIX}")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{path}: IDX header of {ndim} dimensions is cut short; {_FIX}")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = np.dtype(_DTYPES[type_code])
    expected_bytes = math.prod(dims) * dtype.itemsize
    payload = len(data) - header_len
    if payload != expected_bytes:
        what = "truncated" if payload < expected_bytes else "has trailing bytes"
        raise DataError(
            f"{path}: payload {what}: the header promises shape {dims} ({expected_bytes} bytes) "
            f"but the file holds {payload} bytes after it; {_FIX}"
        )
    array = np.frombuffer(data, dtype=dtype, count=math.prod(dims), offset=header_len)
    # astype copies into a writable array in native byte order
    return array.reshape(dims).astype(dtype.newbyteorder("="))


def read_idx_pair(
    images_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    *,
    num_classes: int,
    image_shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read matching IDX image and label files of a classification dataset.

    Args:
        images_path: IDX file with magic ``0x00000803`` (N, rows, columns).
        labels_path: IDX file with magic ``0x00000801`` (N,).
        num_classes: labels must lie in ``[0, num_classes)``.
        image_shape: required (rows, columns), e.g. ``(28, 28)``; ``None`` accepts any.

    Returns:
        ``(x, y)``: uint8 images (N, 1, rows, columns) and int64 labels (N,).

    Raises:
        DataError: a bad file, an image/label count mismatch, a wrong image size or labels out of
            range, naming the offending file(s).
    """
    images = read_idx(images_path, expected_magic=IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, expected_magic=IDX_LABELS_MAGIC)
    if image_shape is not None and images.shape[1:] != tuple(image_shape):
        raise DataError(
            f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, expected "
            f"{image_shape[0]}x{image_shape[1]}; {_FIX}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
            f"labels; the two files do not belong together; {_FIX}"
        )
    if labels.size and int(labels.max()) >= num_classes:
        raise DataError(
            f"{labels_path}: label {int(labels.max())} is outside [0, {num_classes}); {_FIX}"
        )
    return images[:, None, :, :], labels.astype(np.int64)
