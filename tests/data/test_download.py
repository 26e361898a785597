"""The real download code against a local HTTP server (never the internet) and file:// URLs."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ensprune.data import download_file, ensure_files, load_dataset, md5_file
from ensprune.data.download import RemoteFile
from ensprune.errors import DataError

Serve = Callable[[Path], Any]
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


@pytest.fixture
def payload(tmp_path: Path) -> tuple[Path, bytes, str]:
    """A served folder holding ``blob.bin`` (300 KiB, several chunks); its bytes and MD5."""
    root = tmp_path / "served"
    root.mkdir()
    data = np.random.default_rng(0).bytes(300 * 1024)
    (root / "blob.bin").write_bytes(data)
    return root, data, hashlib.md5(data).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.part"))


def test_download_verifies_and_renames_into_place(
    payload: tuple[Path, bytes, str], tmp_path: Path, serve: Serve
) -> None:
    root, data, md5 = payload
    server = serve(root)
    dest = tmp_path / "data" / "nested" / "blob.bin"  # folders are created
    assert download_file([f"{server.url}/blob.bin"], dest, md5=md5, progress=False) == dest
    assert dest.read_bytes() == data
    assert _leftovers(dest.parent) == []
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask  # readable like any other file


def test_wrong_checksum_is_refused_and_leaves_nothing(
    payload: tuple[Path, bytes, str], tmp_path: Path, serve: Serve
) -> None:
    root, _, _ = payload
    server = serve(root)
    dest = tmp_path / "blob.bin"
    with pytest.raises(DataError) as info:
        download_file([f"{server.url}/blob.bin"], dest, md5="0" * 32, progress=False)
    message = str(info.value)
    assert "MD5 checksum of the download" in message and "0" * 32 in message
    assert str(dest) in message and "blob.bin" in message
    assert not dest.exists() and _leftovers(tmp_path) == []


def test_mirrors_are_tried_in_order(
    payload: tuple[Path, bytes, str], tmp_path: Path, serve: Serve
) -> None:
    root, data, md5 = payload
    server = serve(root)
    urls = [f"{server.url}/missing/blob.bin", f"{server.url}/blob.bin"]
    dest = download_file(urls, tmp_path / "blob.bin", md5=md5, progress=False)
    assert dest.read_bytes() == data


def test_every_mirror_failing_lists_each_failure(tmp_path: Path, serve: Serve) -> None:
    server = serve(tmp_path)
    closed = serve(tmp_path)
    closed.close()  # nothing listens there any more: connection refused
    urls = [f"{server.url}/nope.bin", f"{server.url}/short/10", f"{closed.url}/x.bin"]
    dest = tmp_path / "out" / "x.bin"
    with pytest.raises(DataError) as info:
        download_file(urls, dest, md5=None, progress=False, timeout=5)
    message = str(info.value)
    assert "HTTP 404" in message and "unreachable" in message
    assert f"{server.url}/short/10" in message  # a transfer cut short is a failure too
    assert all(url in message for url in urls)
    assert f"by hand (from one of the URLs above) to {dest}" in message
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_file_urls_work(payload: tuple[Path, bytes, str], tmp_path: Path) -> None:
    root, data, md5 = payload
    dest = download_file(
        [(root / "blob.bin").as_uri()], tmp_path / "b.bin", md5=md5, progress=False
    )
    assert dest.read_bytes() == data


def test_progress_only_when_asked_and_no_bar_when_piped(
    payload: tuple[Path, bytes, str],
    tmp_path: Path,
    serve: Serve,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    root, _, md5 = payload
    url = f"{serve(root).url}/blob.bin"
    caplog.set_level(logging.DEBUG, logger="ensprune.progress")
    download_file([url], tmp_path / "quiet.bin", md5=md5, progress=False)
    assert capsys.readouterr().err == "" and caplog.records == []
    # stderr is captured (not a terminal): a log line with the byte count instead of a bar
    download_file([url], tmp_path / "loud.bin", md5=md5, progress=True)
    assert "\r" not in capsys.readouterr().err
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["loud.bin"]


def test_ensure_files_downloads_only_what_is_missing(
    payload: tuple[Path, bytes, str], tmp_path: Path, serve: Serve
) -> None:
    root, data, md5 = payload
    server = serve(root)
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "blob.bin").write_bytes(b"stale")
    files = [RemoteFile("blob.bin", md5)]
    # a corrupt local copy is refused, not silently replaced
    with pytest.raises(DataError, match=r"blob\.bin: MD5 checksum is .*delete it"):
        ensure_files(folder, files, [server.url], dataset="toy", progress=False)
    (folder / "blob.bin").unlink()
    paths = ensure_files(folder, files, [server.url + "/"], dataset="toy", progress=False)
    assert paths == [folder / "blob.bin"] and paths[0].read_bytes() == data


def test_load_dataset_downloads_real_mnist_from_a_mirror(
    real_folder: Callable[[str], Path], tmp_path: Path, serve: Serve
) -> None:
    """The whole path: missing files, a dead mirror, then a local mirror of the real files."""
    served = tmp_path / "mirror"
    shutil.copytree(real_folder("mnist"), served)
    server = serve(served)
    data_dir = tmp_path / "data"
    ds = load_dataset(
        "mnist",
        data_dir=data_dir,
        mirrors=[f"{server.url}/gone/", f"{server.url}/"],
        max_train=500,
        max_test=200,
        progress=False,
    )
    assert ds.sizes == {"train": 500, "val": 56, "test": 200}
    for name, md5 in MNIST_MD5.items():
        assert md5_file(data_dir / "mnist" / name) == md5
    assert _leftovers(data_dir / "mnist") == []
    # the second time no download is needed (and none is allowed)
    again = load_dataset(
        "mnist", data_dir=data_dir, download=False, max_train=500, max_test=200, progress=False
    )
    assert np.array_equal(again.x_train, ds.x_train)
