"""Checks of command-line values that need no library: numeric ranges (as argparse types) and paths.

Both run before a command does any work, so a typo costs a second, not a trained pool. Argparse
types raise :class:`argparse.ArgumentTypeError` (argparse prints one line naming the flag); path
checks raise :class:`~ensprune.errors.SpecError` naming the flag, the path and the fix.
"""

from __future__ import annotations

import argparse
import math
import zipfile
from collections.abc import Callable
from pathlib import Path

from ensprune.errors import SpecError
from ensprune.study.build import MAX_SEED


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        value = _integer(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}; got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"  # argparse names the type in some messages
    return parse


def seed(text: str) -> int:
    """An argparse type: a seed in [0, 2**32 - 1]."""
    value = _integer(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {MAX_SEED}]; got {value}")
    return value


def finite_float(text: str) -> float:
    """An argparse type: a finite number (no NaN, no infinity)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number; got {text!r}")
    return value


def input_file(path: str | Path, flag: str) -> Path:
    """``path`` as an existing file to read; a missing path or a directory is refused."""
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"{flag} {path} is a directory; give a file")
    if not path.exists():
        raise SpecError(f"{flag} {path} does not exist; check the path")
    return path


def npz_file(path: str | Path, flag: str) -> Path:
    """``path`` as an existing ``.npz`` archive (what ``numpy.savez`` writes)."""
    path = input_file(path, flag)
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as exc:
        raise SpecError(f"cannot read {flag} {path}: {exc.strerror or exc}") from None
    if not is_zip:
        hint = " (an .npy file holds one array)" if path.suffix.lower() == ".npy" else ""
        raise SpecError(
            f"cannot read {flag} {path}: it is not an .npz archive{hint}; write one with "
            "numpy.savez(path, proba=..., y=...)"
        )
    return path


def output_file(path: str | Path, flag: str) -> Path:
    """``path`` as a file to write: not a directory, and under a directory (or none yet)."""
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"{flag} {path} is a directory; give a file path in it")
    _parents_are_directories(path, flag)
    return path


def output_dir(path: str | Path, flag: str) -> Path:
    """``path`` as a directory to write into (it may not exist yet); a file is refused."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SpecError(f"{flag} {path} is a file, not a directory; give a directory")
    _parents_are_directories(path, flag)
    return path


def input_dir(path: str | Path, flag: str) -> Path:
    """``path`` as a directory to read from if it exists (``--data-dir`` may be created)."""
    return output_dir(path, flag)


def _parents_are_directories(path: Path, flag: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SpecError(
                    f"{flag} {path}: {parent} is a file, not a directory; choose another path"
                )
            return
