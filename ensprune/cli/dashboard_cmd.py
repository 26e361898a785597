"""``ensprune dashboard [RUN_DIR] [--storage URL]``: optuna-dashboard on a run's studies."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ensprune.errors import SpecError

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must lie in 0..65535; got {port}")
    return port


def add_parser(subparsers: Any) -> None:
    """Add the ``dashboard`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "dashboard",
        help="serve optuna-dashboard on a run's Optuna storage",
        description=(
            "Serve optuna-dashboard on the studies of a run directory (its run.json names the "
            "storage) or of any storage: sqlite:///PATH.db, postgresql+psycopg2://USER@HOST/DB, "
            "or a journal file path. Stop it with Ctrl-C."
        ),
    )
    parser.add_argument(
        "run_dir", nargs="?", type=Path, help="run directory written by `ensprune run`"
    )
    parser.add_argument("--storage", help="storage URL or journal file path instead of RUN_DIR")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8080, help="port (default: 8080)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve the dashboard until interrupted."""
    from ensprune.report.dashboard import (
        open_dashboard_storage,
        redact,
        resolve_storage,
        serve_dashboard,
    )

    if (args.run_dir is None) == (args.storage is None):
        raise SpecError("give either a run directory or --storage URL (exactly one)")
    if args.storage is not None and not args.storage.strip():
        raise SpecError(
            "--storage is empty; give sqlite:///PATH.db, postgresql+psycopg2://USER@HOST/DB "
            "or a journal file path"
        )
    url, run_dir = resolve_storage(args.storage if args.storage is not None else args.run_dir)
    storage = open_dashboard_storage(url, run_dir)  # fail before announcing a server

    def announce(where: str) -> None:  # only once the server has answered a request
        # the warning waits too: a host that cannot be bound gets its one error line alone
        if args.host not in _LOOPBACK:
            print(
                f"warning: optuna-dashboard has no login; anyone who reaches {where} can read "
                "and edit these studies",
                file=sys.stderr,
            )
        print(f"optuna-dashboard on {redact(url)}: {where} (Ctrl-C to stop)", flush=True)

    serve_dashboard(storage, host=args.host, port=args.port, on_ready=announce)
    return 0
