"""The CIFAR-10 reader on tiny archives written here in the real format, and hostile pickles."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ensprune.data import CIFAR10_MD5, load_dataset, md5_file, read_cifar10, unpickle_batch
from ensprune.data.sources import cifar10 as cifar10_source
from ensprune.errors import DataError

BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_BATCH = 6


def _string(value: bytes) -> bytes:
    """The protocol-0 STRING opcode, as Python 2 wrote byte strings."""
    return b"S" + repr(value)[1:].encode("ascii") + b"\n"


def py2_batch_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled the way the canonical files were: Python 2, protocol 0, numpy.core."""
    parts = [
        b"(dp0\n",
        _string(b"data"),
        b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I0\nt",
        _string(b"b"),
        b"tR(I1\n",
        f"(I{data.shape[0]}\nI{data.shape[1]}\nt".encode(),
        b"cnumpy\ndtype\n(",
        _string(b"u1"),
        b"I0\nI1\ntR(I3\n",
        _string(b"|"),
        b"NNNI-1\nI-1\nI0\ntbI00\n",
        _string(data.tobytes()),
        b"tbs",
        _string(b"labels"),
        b"(l",
        *(f"I{v}\na".encode() for v in labels),
        b"s.",
    ]
    return b"".join(parts)


def make_batches(seed: int = 0, *, py2: bool = False) -> dict[str, bytes]:
    """The seven files of cifar-10-batches-py/, each with PER_BATCH random images."""
    rng = np.random.default_rng(seed)
    files: dict[str, bytes] = {}
    for i, name in enumerate(BATCHES):
        data = rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
        labels = [(i + k) % 10 for k in range(PER_BATCH)]
        if py2:
            files[name] = py2_batch_pickle(data, labels)
        else:
            batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data}
            files[name] = pickle.dumps(batch, protocol=4)
    meta = {b"label_names": [c.encode() for c in CLASSES], b"num_cases_per_batch": PER_BATCH}
    files["batches.meta"] = pickle.dumps(meta, protocol=4)
    return files


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    return folder


def write_archive(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def expected_arrays(files: dict[str, bytes]) -> dict[str, np.ndarray]:
    batches = [pickle.loads(files[b], encoding="bytes") for b in BATCHES]
    return {
        "x_train": np.concatenate([b[b"data"] for b in batches[:5]]).reshape(-1, 3, 32, 32),
        "y_train": np.concatenate([b[b"labels"] for b in batches[:5]]),
        "x_test": batches[5][b"data"].reshape(-1, 3, 32, 32),
        "y_test": np.asarray(batches[5][b"labels"]),
    }


@pytest.mark.parametrize("py2", [False, True], ids=["protocol4", "python2-format"])
def test_reads_a_tiny_archive(tmp_path: Path, py2: bool) -> None:
    files = make_batches(py2=py2)
    archive = write_archive(tmp_path / "cifar-10-python.tar.gz", files)
    arrays = read_cifar10(archive, md5=None)  # not the canonical archive: skip its checksum
    for key, value in expected_arrays(files).items():
        got = getattr(arrays, key)
        assert np.array_equal(got, value), key
    assert arrays.x_train.shape == (5 * PER_BATCH, 3, 32, 32) and arrays.x_train.dtype == np.uint8
    assert arrays.y_train.dtype == np.int64
    assert arrays.class_names == tuple(CLASSES)


def test_channels_are_unpacked_red_green_blue(tmp_path: Path) -> None:
    data = np.zeros((1, 3072), np.uint8)
    data[0, :1024], data[0, 1024:2048], data[0, 2048:] = 10, 20, 30
    data[0, 1] = 99  # red, row 0, column 1
    files = make_batches()
    files["test_batch"] = pickle.dumps({b"data": data, b"labels": [3]}, protocol=4)
    x = read_cifar10(write_folder(tmp_path, files)).x_test
    assert x[0, :, 5, 5].tolist() == [10, 20, 30] and x[0, 0, 0, 1] == 99


def test_the_canonical_checksum_is_enforced_by_default(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "cifar-10-python.tar.gz", make_batches())
    with pytest.raises(DataError) as info:
        read_cifar10(archive)
    message = str(info.value)
    assert str(archive) in message and CIFAR10_MD5 in message and "delete it" in message


def test_load_dataset_uses_an_extracted_folder(tmp_path: Path) -> None:
    files = make_batches(py2=True)
    write_folder(tmp_path / "cifar10", files)
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False, val_fraction=0.2)
    assert ds.input_shape == (3, 32, 32) and len(ds.mean) == 3 and len(ds.std) == 3
    assert ds.sizes == {"train": 24, "val": 6, "test": PER_BATCH}
    assert np.array_equal(ds.y_test, expected_arrays(files)["y_test"])
    assert ds.class_names == tuple(CLASSES)
    assert np.allclose(ds.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-5)


def test_load_dataset_refuses_a_non_canonical_archive(tmp_path: Path) -> None:
    write_archive(tmp_path / "cifar10" / "cifar-10-python.tar.gz", make_batches())
    write_folder(tmp_path / "cifar10", make_batches())  # the verifiable archive takes precedence
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz: MD5 checksum"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


def test_missing_cifar_without_download_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "cifar10" / "cifar-10-python.tar.gz") in message
    assert "https://www.cs.toronto.edu/~kriz/" in message


class _Exploit:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("where", ["folder", "archive"])
def test_malicious_pickle_is_refused(tmp_path: Path, where: str) -> None:
    marker = tmp_path / "pwned"
    files = make_batches()
    files["data_batch_3"] = pickle.dumps({b"data": _Exploit(marker), b"labels": [0]})
    if where == "folder":
        path = write_folder(tmp_path, files)
    else:
        path = write_archive(tmp_path / "evil.tar.gz", files)
    with pytest.raises(DataError) as info:
        read_cifar10(path, md5=None)
    message = str(info.value)
    assert "data_batch_3" in message and "refused" in message
    assert "system" in message and "corrupt or malicious" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps({b"data": print}),  # builtins.print
        pickle.dumps({b"x": np.load}),  # a numpy function that is not on the allow-list
        pickle.dumps(np.arange(3, dtype=np.uint8), protocol=5),
    ],
    ids=["builtins", "numpy-function", "protocol5-frombuffer"],
)
def test_only_the_array_globals_are_allowed(payload: bytes) -> None:
    with pytest.raises(DataError, match="refused to unpickle"):
        unpickle_batch(io.BytesIO(payload), source="batch")


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 integers"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, r"\(N, 3072\)"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "outside"),
        ({b"labels": [0, 1]}, "needs 'data'"),
    ],
)
def test_malformed_batches_are_refused(tmp_path: Path, batch: dict[bytes, Any], match: str) -> None:
    files = make_batches()
    files["test_batch"] = pickle.dumps(batch, protocol=4)
    with pytest.raises(DataError, match=match):
        read_cifar10(write_folder(tmp_path, files))


def test_broken_files_are_data_errors(tmp_path: Path) -> None:
    files = make_batches()
    del files["data_batch_5"]
    with pytest.raises(DataError, match=r"missing CIFAR-10 batch.*data_batch_5"):
        read_cifar10(write_folder(tmp_path / "a", files))
    files = make_batches()
    files["data_batch_1"] = files["data_batch_1"][:50]
    with pytest.raises(DataError, match="data_batch_1: not a valid CIFAR-10 batch"):
        read_cifar10(write_folder(tmp_path / "b", files))
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not a tar file at all")
    with pytest.raises(DataError, match=r"not a readable tar\.gz"):
        read_cifar10(garbage, md5=None)
    with pytest.raises(DataError, match="no such file or folder"):
        read_cifar10(tmp_path / "absent")


def test_archive_download_is_verified_then_read(
    tmp_path: Path, serve: Callable[[Path], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    served = tmp_path / "mirror"
    files = make_batches()
    archive = write_archive(served / "cifar-10-python.tar.gz", files)
    url = serve(served).url
    data_dir = tmp_path / "data"
    # with the canonical checksum, the tiny archive is refused and nothing is left behind
    with pytest.raises(DataError, match="MD5 checksum of the download"):
        load_dataset("cifar10", data_dir=data_dir, mirrors=[url], progress=False)
    assert list((data_dir / "cifar10").iterdir()) == []
    # with its own checksum in the table, it is downloaded, verified and read
    monkeypatch.setattr(cifar10_source, "CIFAR10_MD5", md5_file(archive))
    ds = load_dataset("cifar10", data_dir=data_dir, mirrors=[url], progress=False)
    assert (data_dir / "cifar10" / "cifar-10-python.tar.gz").read_bytes() == archive.read_bytes()
    assert np.array_equal(ds.y_test, expected_arrays(files)["y_test"])
