"""How the command line shows the library's log messages (the library itself only logs)."""

from __future__ import annotations

import logging
import sys


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (it may be replaced, e.g. by pytest)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # logging must never break the command
            self.handleError(record)


def configure_logging(verbose: bool) -> None:
    """Show the library's progress messages (logger ``ensprune``) on stderr, one per line.

    With ``verbose`` False only warnings and errors show. Optuna's own per-trial INFO lines are
    silenced when Optuna is loaded (import it first): ensprune logs its own, shorter ones.
    """
    ours = logging.getLogger("ensprune")
    if not any(isinstance(h, _StderrHandler) for h in ours.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        ours.addHandler(handler)
    ours.setLevel(logging.INFO if verbose else logging.WARNING)
    if "optuna" in sys.modules:  # never import it just for this: start-up time matters
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
