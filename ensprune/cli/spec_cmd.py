"""``ensprune spec``: a complete annotated example spec, or the spec reference (docs/spec.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "spec",
        help="print a complete annotated study spec (--example) or the spec reference",
        description="Print a complete study spec with every key at its default and a comment "
        "saying what it is (--example; it loads as it is), or the reference of every section and "
        "key in Markdown (--reference; the text of docs/spec.md).",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--example", action="store_true", help="an annotated spec (TOML)")
    which.add_argument("--reference", action="store_true", help="the spec reference (Markdown)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ensprune.study.spec_reference import render_example, render_reference

    sys.stdout.write(render_example() if args.example else render_reference())
    return 0
