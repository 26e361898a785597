"""How the command line shows the library's log messages (the library itself only logs)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from ensprune.errors import EnsPruneError


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (it may be replaced, e.g. by pytest)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # logging must never break the command
            self.handleError(record)


class _Options:
    """Logging options of the whole command line (``--verbose``, ``--log-file``), set by main()."""

    debug: bool = False
    log_file: Path | None = None


def set_options(debug: bool = False, log_file: str | Path | None = None) -> None:
    """Record ``--verbose`` and ``--log-file`` before the command runs.

    Raises:
        EnsPruneError: the log file cannot be written (a directory, or a folder that is missing).
    """
    path = Path(log_file) if log_file is not None else None
    if path is not None:
        if path.is_dir():
            raise EnsPruneError(f"--log-file {path} is a directory; give a file path")
        if not path.parent.is_dir():
            raise EnsPruneError(
                f"--log-file {path}: folder {path.parent} does not exist; create it first"
            )
    _Options.debug, _Options.log_file = debug, path


def configure_logging(verbose: bool) -> None:
    """Show the library's progress messages (logger ``ensprune``) on stderr, one per line.

    With ``verbose`` False only warnings and errors show; ``--verbose`` (see :func:`set_options`)
    shows debug messages too. With ``--log-file`` every message from INFO up (DEBUG with
    ``--verbose``) is also appended to that file with a timestamp, whatever stderr shows.
    Optuna's own per-trial INFO lines are silenced when Optuna is loaded (import it first):
    ensprune logs its own, shorter ones.
    """
    ours = logging.getLogger("ensprune")
    stderr_level = logging.DEBUG if _Options.debug else logging.INFO if verbose else logging.WARNING
    handler = next((h for h in ours.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        ours.addHandler(handler)
    handler.setLevel(stderr_level)
    level = stderr_level
    if _Options.log_file is not None:
        file_level = logging.DEBUG if _Options.debug else logging.INFO
        target = str(_Options.log_file.resolve())
        if not any(
            isinstance(h, logging.FileHandler) and h.baseFilename == target for h in ours.handlers
        ):
            to_file = logging.FileHandler(target, encoding="utf-8")
            to_file.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
            to_file.setLevel(file_level)
            ours.addHandler(to_file)
        level = min(level, file_level)
    ours.setLevel(level)
    if "optuna" in sys.modules:  # never import it just for this: start-up time matters
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
