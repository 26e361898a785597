"""Shared by every benchmark: machine description, command line, and RESULTS.md sections."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = "# Benchmark results"


def machine_info() -> str:
    """CPU count and model, Python, torch and numpy versions."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}"]
    for module in ("torch", "numpy"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    return f"{os.cpu_count()} CPUs (nproc), {model}; {', '.join(versions)}"


def command_line() -> str:
    """The command that is running, as a user would type it."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def today() -> str:
    return _dt.date.today().isoformat()


def update_section(section: str, body: str, path: Path = RESULTS) -> None:
    """Replace ``section`` (a ``## `` heading line) in RESULTS.md with ``body``, or append it.

    Other sections are left byte for byte as they are, so several benchmarks share the file.
    """
    text = path.read_text(encoding="utf-8") if path.is_file() else f"{TITLE}\n"
    lines = text.splitlines()
    try:
        start = lines.index(section)
    except ValueError:
        new = text.rstrip("\n") + f"\n\n{section}\n\n{body.rstrip()}\n"
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new_lines = [*lines[:start], section, "", *body.rstrip().splitlines(), "", *lines[end:]]
        new = "\n".join(new_lines).rstrip("\n") + "\n"
    path.write_text(new, encoding="utf-8")
