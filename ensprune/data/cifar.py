"""Reader for CIFAR-10's "python version": pickled batches, unpickled under a strict allow-list.

The batches are Python pickles, and unpickling runs whatever callables a pickle names, so a
tampered file could execute code. ``read_cifar10`` therefore (1) verifies the MD5 of the canonical
``cifar-10-python.tar.gz`` before opening it and (2) unpickles every batch with ``_BatchUnpickler``,
which resolves only the three globals a numpy array needs (``_reconstruct``, ``ndarray``, ``dtype``)
and refuses everything else with a ``DataError``. An extracted ``cifar-10-batches-py/`` folder has
no canonical checksum; it is protected by the allow-list and the shape checks alone.
"""

from __future__ import annotations

import os
import pickle
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from ensprune.data.download import verify_md5
from ensprune.data.paths import DATA_DIR_ENV
from ensprune.errors import DataError

CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"
CIFAR10_META = "batches.meta"
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

_IMAGE_SHAPE = (3, 32, 32)
_PIXELS = 3 * 32 * 32
_FIX = (
    f"delete it and run again to re-download {CIFAR10_ARCHIVE}, or point --data-dir / "
    f"{DATA_DIR_ENV} at a folder with an intact copy"
)


@dataclass(frozen=True, eq=False)
class CifarArrays:
    """The raw CIFAR-10 arrays.

    Attributes:
        x_train: uint8 (50000, 3, 32, 32) for the canonical data (batches 1-5 in order).
        y_train: int64 labels in [0, 10).
        x_test: uint8 (10000, 3, 32, 32).
        y_test: int64 labels in [0, 10).
        class_names: the ten class names from ``batches.meta``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]


# ndarray.__reduce__ names numpy's array-reconstruction function; taking it from there works on
# numpy 1 (numpy.core) and 2 (numpy._core) without importing the deprecated module path.
_RECONSTRUCT = cast("Callable[..., Any]", np.ndarray((0,)).__reduce__()[0])
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays, dicts, lists and scalars, and nothing else."""

    def __init__(self, file: IO[bytes], *, source: str) -> None:
        # the batches were written by Python 2: keep its byte strings as bytes
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._source}: refused to unpickle it: it references {module}.{name}, which a "
                f"CIFAR-10 batch never contains (only numpy arrays, lists and numbers), so the "
                f"file is corrupt or malicious; {_FIX}"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self._source}: refused to unpickle it (persistent ids); {_FIX}")


def unpickle_batch(file: IO[bytes], *, source: str) -> dict[str, Any]:
    """Unpickle one CIFAR batch (or ``batches.meta``) safely; keys come back as ``str``.

    Args:
        file: binary stream positioned at the pickle.
        source: what to call the file in messages (its path or archive member).

    Raises:
        DataError: the pickle is malformed, references anything but numpy arrays, or is not a dict.
    """
    try:
        obj = _BatchUnpickler(file, source=source).load()
    except DataError:
        raise
    except Exception as exc:  # a broken pickle can fail in many ways; all mean "corrupt file"
        raise DataError(f"{source}: not a valid CIFAR-10 batch ({exc}); {_FIX}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{source}: expected a dict, got {type(obj).__name__}; {_FIX}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _batch_arrays(batch: dict[str, Any], *, source: str) -> tuple[np.ndarray, np.ndarray]:
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataError(f"{source}: a CIFAR-10 batch needs 'data' (an array) and 'labels'; {_FIX}")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        raise DataError(
            f"{source}: 'data' must be uint8 of shape (N, 3072); got {data.dtype} {data.shape}; "
            f"{_FIX}"
        )
    try:
        y = np.asarray(labels)
    except (ValueError, TypeError):  # ragged or odd objects
        y = np.asarray(None)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) != len(data):
        raise DataError(
            f"{source}: 'labels' must be {len(data)} integers, one per image; got "
            f"{y.dtype} {y.shape}; {_FIX}"
        )
    if y.size and (y.min() < 0 or y.max() >= len(CIFAR10_CLASSES)):
        raise DataError(f"{source}: labels outside [0, {len(CIFAR10_CLASSES)}); {_FIX}")
    # rows are 1024 red, 1024 green, 1024 blue values, each a 32x32 image in row-major order
    return data.reshape(-1, *_IMAGE_SHAPE), y.astype(np.int64)


def _class_names(meta: dict[str, Any] | None, *, source: str) -> tuple[str, ...]:
    if meta is None:
        return CIFAR10_CLASSES
    names = meta.get("label_names")
    if (
        not isinstance(names, list)
        or len(names) != len(CIFAR10_CLASSES)
        or not all(isinstance(n, bytes | str) for n in names)
    ):
        raise DataError(f"{source}: 'label_names' must list 10 class names; {_FIX}")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else n for n in names)


def _read_members(archive: Path) -> dict[str, dict[str, Any]]:
    wanted = {f"{CIFAR10_FOLDER}/{b}" for b in (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH)}
    wanted.add(f"{CIFAR10_FOLDER}/{CIFAR10_META}")
    found: dict[str, dict[str, Any]] = {}
    try:
        # iterate once, in archive order: extracting by name would rewind the gzip stream
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile() and member.name not in found:
                    stream = tar.extractfile(member)
                    if stream is not None:
                        source = f"{archive}:{member.name}"
                        found[member.name] = unpickle_batch(stream, source=source)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{archive}: not a readable tar.gz archive ({exc}); {_FIX}") from None
    return {name.rsplit("/", 1)[1]: batch for name, batch in found.items()}


def _read_folder(folder: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name in (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH, CIFAR10_META):
        path = folder / name
        if not path.is_file():
            continue
        try:
            with open(path, "rb") as f:
                found[name] = unpickle_batch(f, source=str(path))
        except OSError as exc:
            raise DataError(f"{path}: cannot read it ({exc.strerror or exc}); {_FIX}") from exc
    return found


def read_cifar10(path: str | os.PathLike[str], *, md5: str | None = CIFAR10_MD5) -> CifarArrays:
    """Read CIFAR-10 from ``cifar-10-python.tar.gz`` or its extracted ``cifar-10-batches-py/``.

    Args:
        path: the archive, or the extracted folder (which has no checksum to verify).
        md5: expected MD5 of the archive; the canonical one by default. ``None`` skips the check,
            for archives you built yourself (e.g. a small subset); the batches are still
            unpickled under the allow-list and validated.

    Returns:
        The train (batches 1-5) and test arrays with the class names.

    Raises:
        DataError: wrong checksum, unreadable archive, missing batch, refused or malformed pickle,
            each naming the file and the fix.

    Example:
        >>> arrays = read_cifar10("data/cifar10/cifar-10-python.tar.gz")
        >>> arrays.x_train.shape
        (50000, 3, 32, 32)
    """
    path = Path(path)
    if path.is_dir():
        batches = _read_folder(path)
    elif path.is_file():
        if md5 is not None:
            verify_md5(path, md5)
        batches = _read_members(path)
    else:
        raise DataError(
            f"{path}: no such file or folder; download {CIFAR10_ARCHIVE} into it or point "
            f"--data-dir / {DATA_DIR_ENV} at a folder that has it"
        )
    missing = [b for b in (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH) if b not in batches]
    if missing:
        raise DataError(f"{path}: missing CIFAR-10 batch(es) {', '.join(missing)}; {_FIX}")
    train = [_batch_arrays(batches[b], source=f"{path}:{b}") for b in CIFAR10_TRAIN_BATCHES]
    x_test, y_test = _batch_arrays(batches[CIFAR10_TEST_BATCH], source=f"{path}:test_batch")
    return CifarArrays(
        x_train=np.concatenate([x for x, _ in train]),
        y_train=np.concatenate([y for _, y in train]),
        x_test=x_test,
        y_test=y_test,
        class_names=_class_names(batches.get(CIFAR10_META), source=f"{path}:{CIFAR10_META}"),
    )
