"""Command-line interface: thin wrappers that parse, call the library and print.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``; the parser it adds
sets ``handler`` (a function ``args -> int``). Any :class:`EnsPruneError` becomes one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from ensprune import __version__
from ensprune.cli._logging import configure_logging, set_options
from ensprune.errors import EnsPruneError

SUBCOMMANDS = ("run", "prune", "select", "report", "dashboard", "list", "spec")


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse already exits 2; keep it to one line plus the usage hint
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = _ArgumentParser(
        prog="ensprune",
        description="Compress neural-network ensembles: prune members, select diverse sub-ensembles.",
    )
    parser.add_argument("--version", action="version", version=f"ensprune {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)
    common = _logging_options()
    for name in SUBCOMMANDS:
        importlib.import_module(f"ensprune.cli.{name}_cmd").add_parser(
            _WithCommonOptions(subparsers, common)
        )
    return parser


def _logging_options() -> argparse.ArgumentParser:
    """``--verbose`` and ``--log-file``, accepted by every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose", action="store_true", help="show debug messages too (overrides --quiet)"
    )
    common.add_argument(
        "--log-file",
        metavar="PATH",
        help="also append every message (INFO and up; DEBUG with --verbose) to this file, "
        "with timestamps, whatever the terminal shows",
    )
    return common


class _WithCommonOptions:
    """The subparsers action, giving every subcommand the shared logging options."""

    def __init__(self, subparsers: Any, common: argparse.ArgumentParser) -> None:
        self._subparsers, self._common = subparsers, common

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs["parents"] = [*kwargs.get("parents", []), self._common]
        parser: argparse.ArgumentParser = self._subparsers.add_parser(name, **kwargs)
        return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ensprune`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        set_options(debug=args.verbose, log_file=args.log_file)
        # commands with progress lines configure their own level (--quiet); the others still
        # honour --verbose and --log-file
        configure_logging(verbose=args.verbose)
        return int(args.handler(args))
    except EnsPruneError as exc:
        print(f"ensprune {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # a run says what it kept and the command that resumes
        message = str(exc) or "interrupted; finished work is saved, re-run to resume"
        print(f"ensprune {args.command}: {message}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
