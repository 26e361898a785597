"""Checksum-verified files: MD5 checks and downloads from a list of mirrors, atomically.

A download streams into a uniquely named ``<file>.<pid>.<random>.part`` beside its destination,
hashing as it goes; only a complete file with the expected MD5 is renamed into place
(``os.replace`` is atomic), so a crash, a truncated transfer or a bad mirror never leaves a
half-written dataset file behind, and parallel workers downloading the same file cannot clobber
each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ensprune import __version__
from ensprune.data.paths import DATA_DIR_ENV
from ensprune.errors import DataError
from ensprune.progress import Progress

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_FIX_ELSEWHERE = f"or point --data-dir / {DATA_DIR_ENV} at a folder with intact copies"


@dataclass(frozen=True)
class RemoteFile:
    """A dataset file known by its canonical name and MD5 checksum.

    Attributes:
        name: file name, the same on every mirror and in the local data folder.
        md5: canonical MD5 hex digest (lower case).
    """

    name: str
    md5: str


def md5_file(path: str | os.PathLike[str]) -> str:
    """MD5 hex digest of a file, read in chunks.

    Raises:
        DataError: the file cannot be read.
    """
    digest = hashlib.md5(usedforsecurity=False)  # integrity check against corruption, not a MAC
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(
            f"{path}: cannot read it ({exc.strerror or exc}); {_FIX_ELSEWHERE}"
        ) from exc
    return digest.hexdigest()


def verify_md5(path: str | os.PathLike[str], expected: str) -> None:
    """Refuse ``path`` unless its MD5 is ``expected``.

    Raises:
        DataError: naming the file, both checksums and how to fix it.
    """
    actual = md5_file(path)
    if actual != expected.lower():
        raise DataError(
            f"{path}: MD5 checksum is {actual} but the canonical file has {expected} (the file is "
            f"corrupt, truncated or a different version); delete it and run again to re-download "
            f"it, {_FIX_ELSEWHERE}"
        )


def mirror_urls(mirrors: Sequence[str], name: str) -> list[str]:
    """Full URLs of file ``name`` on each mirror (base URLs, with or without a trailing slash)."""
    return [(m if m.endswith("/") else m + "/") + name for m in mirrors]


def download_file(
    urls: Sequence[str],
    dest: str | os.PathLike[str],
    *,
    md5: str | None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download the first URL that works to ``dest``, verifying its MD5 before it appears there.

    Mirrors are tried in order; a network error, a truncated transfer or a checksum mismatch moves
    on to the next one (the partial file is deleted each time). ``file://`` URLs work too.

    Args:
        urls: full URLs of the same file, in order of preference.
        dest: where the file goes; its folder is created if needed.
        md5: expected MD5 hex digest, or ``None`` to skip the check (only for files without a
            canonical checksum).
        progress: report download progress (a bar on a terminal, log lines when piped).
        timeout: seconds to wait for a server before giving up on that mirror.

    Returns:
        ``dest`` as a ``Path``.

    Raises:
        DataError: every mirror failed; the message lists each failure and the manual fix.
    """
    dest = Path(dest)
    if not urls:
        raise DataError(f"no download URL known for {dest}; put the file there by hand")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the data folder {dest.parent} ({exc.strerror or exc}); "
            f"point --data-dir / {DATA_DIR_ENV} at a writable folder"
        ) from exc
    failures: list[str] = []
    for attempt, url in enumerate(urls, start=1):
        try:
            _fetch_verified(url, dest, md5=md5, progress=progress, timeout=timeout)
        except (OSError, http.client.HTTPException, ValueError, _ChecksumMismatch) as exc:
            reason = str(exc) if isinstance(exc, _ChecksumMismatch) else _describe(exc)
            failures.append(f"{url}: {reason}")
            if attempt < len(urls):  # the last failure is reported by the DataError below
                logger.warning("%s failed (%s); trying the next mirror", url, reason)
            continue
        return dest
    raise DataError(
        f"could not download {dest.name}: " + "; ".join(failures) + f". Download it by hand "
        f"(from one of the URLs above) to {dest}, {_FIX_ELSEWHERE}"
    )


class _ChecksumMismatch(Exception):
    """A mirror delivered a complete file whose MD5 is wrong."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable ({exc.reason})"
    return f"{type(exc).__name__}: {exc}"


def _fetch_verified(
    url: str, dest: Path, *, md5: str | None, progress: bool, timeout: float
) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": f"ensprune/{__version__}"})
    # unique per process and attempt; opened with "xb" (not mkstemp) so the finished file gets the
    # umask's usual permissions and stays readable in a shared data folder
    part = dest.with_name(f"{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    try:
        digest = hashlib.md5(usedforsecurity=False)
        received = 0
        with (
            open(part, "xb") as out,
            urllib.request.urlopen(request, timeout=timeout) as response,
        ):
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with Progress(total, unit="B", desc=dest.name, enabled=progress) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise OSError(f"transfer cut short: received {received} of {total} bytes")
        if md5 is not None and digest.hexdigest() != md5.lower():
            raise _ChecksumMismatch(
                f"MD5 checksum of the download is {digest.hexdigest()}, expected {md5} "
                "(a corrupt or different file; partial download deleted)"
            )
        os.replace(part, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()


def ensure_files(
    folder: str | os.PathLike[str],
    files: Sequence[RemoteFile],
    mirrors: Sequence[str],
    *,
    dataset: str,
    download: bool = True,
    progress: bool = True,
) -> list[Path]:
    """Make sure ``folder`` holds every file of ``files`` with its canonical MD5.

    Files already present are verified first (so a corrupt one is reported before any long
    download); missing ones are downloaded from ``mirrors`` when ``download`` is true.

    Args:
        folder: the dataset's folder inside the data directory.
        files: the files it needs.
        mirrors: base URLs, tried in order for each missing file.
        dataset: dataset name, for messages.
        download: whether missing files may be downloaded.
        progress: show progress bars while downloading.

    Returns:
        The paths of ``files`` in ``folder``, in the same order.

    Raises:
        DataError: a file is corrupt, missing (with ``download=False``) or cannot be downloaded.
    """
    folder = Path(folder)
    paths = [folder / f.name for f in files]
    missing = [(f, p) for f, p in zip(files, paths, strict=True) if not p.exists()]
    for f, p in zip(files, paths, strict=True):
        if p.exists():
            verify_md5(p, f.md5)
    if missing and not download:
        listed = ", ".join(str(p) for _, p in missing)
        sources = " or ".join(mirrors) if mirrors else "the dataset's publisher"
        raise DataError(
            f"{dataset}: missing {listed}; allow downloading (drop --no-download / pass "
            f"download=True), fetch the files by hand from {sources} into {folder}, or point "
            f"--data-dir / {DATA_DIR_ENV} at a folder that has them"
        )
    for f, p in missing:
        download_file(mirror_urls(mirrors, f.name), p, md5=f.md5, progress=progress)
    return paths
