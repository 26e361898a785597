"""Where dataset files live: one resolution rule used by the library and the CLI alike."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "ENSPRUNE_DATA_DIR"
"""Environment variable naming the data directory when no explicit one is given."""

DEFAULT_DATA_DIR = "data"
"""Fallback data directory, relative to the current working directory."""


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``data_dir`` if given, else ``$ENSPRUNE_DATA_DIR``, else ``./data``.

    Empty strings count as not given. ``~`` is expanded and the result is absolute (so error
    messages show where files were looked for); the directory is not created here.

    Args:
        data_dir: explicit directory (e.g. the CLI's ``--data-dir``), or ``None``.

    Returns:
        The absolute path of the data directory.

    Example:
        >>> resolve_data_dir("/srv/datasets")
        PosixPath('/srv/datasets')
    """
    if data_dir is not None and os.fspath(data_dir) != "":
        chosen = Path(data_dir)
    elif os.environ.get(DATA_DIR_ENV):
        chosen = Path(os.environ[DATA_DIR_ENV])
    else:
        chosen = Path(DEFAULT_DATA_DIR)
    return chosen.expanduser().absolute()
