"""``ensprune report RUN_DIR``: build the HTML report of a run and print its summary."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Add the ``report`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "report",
        help="build a run's HTML report (tables, figures, test accuracies) and print its summary",
        description=(
            "Build RUN_DIR/report/ (report.html with embedded figures, CSV tables, summary.json) "
            "and print the summary: dense vs pruned members, the selected team, and its test "
            "accuracy against the full pool and the best single member. An incomplete run (killed "
            "half-way, or written by another version) gets a report of what exists, with what is "
            "missing and how to resume it (exit 0 with a warning)."
        ),
    )
    parser.add_argument("run_dir", type=Path, help="run directory written by `ensprune run`")
    parser.add_argument("--out", type=Path, help="report directory (default: RUN_DIR/report)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the summary as JSON")
    output.add_argument("--quiet", action="store_true", help="print nothing; just write the report")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Build the report; print the summary (text, or JSON with ``--json``)."""
    from ensprune.cli._checks import output_dir
    from ensprune.report import build_report, format_summary
    from ensprune.report.html import SUMMARY_JSON

    if args.out is not None:  # before the run is read: a file here would fail half-way
        output_dir(args.out, "--out")
    html_path = build_report(args.run_dir, args.out)
    if args.quiet:
        return 0
    # The report wrote its summary already; reading it back keeps both outputs identical.
    facts = json.loads((html_path.parent / SUMMARY_JSON).read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps(facts, indent=2))
    elif facts.get("partial"):  # an incomplete run: what exists, what is missing, how to resume
        from ensprune.report.partial import format_partial_summary

        print(format_partial_summary(facts))
    else:
        print(format_summary(facts))
    return 0
