"""Shared by every benchmark: machine description, command line, and RESULTS.md sections.

RESULTS.md holds one ``## `` section per benchmark family (an issue); a family may split its
section into ``### `` subsections. Writers re-read the file right before writing and touch only
their own (sub)section, so benchmarks of different families can share the file.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = "# Benchmark results"
REPO = Path(__file__).resolve().parents[1]


def bench_cache() -> Path:
    """Where benchmarks cache dense networks, pools and run logs (git-ignored).

    ``$ENSPRUNE_BENCH_CACHE`` when set (``reproduce.py --quick`` points it at a scratch folder,
    so a quick check trains afresh instead of reading an earlier run), else ``benchmarks/_cache``.
    """
    return Path(
        os.environ.get("ENSPRUNE_BENCH_CACHE") or Path(__file__).resolve().parent / "_cache"
    )


def machine_info() -> str:
    """CPUs available, CPU model, versions, torch threads and the load average when written.

    The load average is part of the record because the 2 cores of the development machines
    are shared: it says how much else was running.
    """
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    n_cpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = [f"Python {platform.python_version()}"]
    if "numpy" in sys.modules:
        versions.append(f"numpy {sys.modules['numpy'].__version__}")
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        versions.append(f"torch {torch.__version__} with {torch.get_num_threads()} thread(s)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{n_cpu} CPUs (nproc), {model}; {', '.join(versions)}; 1-min load average {load:.1f} when written"


def command_line() -> str:
    """The command that is running, relative to the repository root, as a user would type it.

    An argument equal to ``$ENSPRUNE_DATA_DIR``'s value is written as the variable, so the
    recorded command carries no machine's data path.
    """
    data_dir = os.environ.get("ENSPRUNE_DATA_DIR")
    words = [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]]
    line = shlex.join(["python", *words])
    if data_dir:
        for value in {data_dir, data_dir.rstrip("/")}:
            line = line.replace(f" {shlex.quote(value)}", ' "$ENSPRUNE_DATA_DIR"')
    return line


def today() -> str:
    return _dt.datetime.now().strftime("%Y-%m-%d %H:%M")


def _split(text: str, heading: str, level: str) -> tuple[int, int] | None:
    """(start, end) of the block under ``heading`` up to the next heading of ``level`` or above."""
    match = re.search(rf"^{re.escape(heading)}[ \t]*$", text, flags=re.MULTILINE)
    if match is None:
        return None
    stops = "^## " if level == "##" else "^##? "
    nxt = re.search(stops, text[match.end() :], flags=re.MULTILINE)
    return match.start(), match.end() + (nxt.start() if nxt else len(text) - match.end())


def update_section(section: str, body: str, path: Path = RESULTS) -> None:
    """Replace the ``## `` ``section`` of RESULTS.md with ``body``, or append it."""
    text = path.read_text(encoding="utf-8") if path.is_file() else f"{TITLE}\n"
    block = f"{section}\n\n{body.strip()}\n"
    span = _split(text, section, "##")
    if span is None:
        new = text.rstrip("\n") + f"\n\n{block}"
    else:
        start, end = span
        rest = text[end:]
        new = text[:start] + block + ("\n" + rest if rest else "")
    path.write_text(new, encoding="utf-8")


def update_subsection(
    section: str,
    subsection: str,
    body: str,
    order: Sequence[str] = (),
    path: Path = RESULTS,
) -> None:
    """Replace (or add) ``### subsection`` inside ``## section``, keeping the others.

    Args:
        order: preferred order of the section's subsections (unlisted ones follow).
    """
    text = path.read_text(encoding="utf-8") if path.is_file() else f"{TITLE}\n"
    span = _split(text, section, "##")
    current = "" if span is None else text[span[0] : span[1]]
    parts = re.split(r"^(?=### )", current, flags=re.MULTILINE)
    head = parts[0][len(section) :].strip() if parts and parts[0].startswith(section) else ""
    subs = {p.split("\n", 1)[0].strip(): p.strip() for p in parts[1:]}
    subs[subsection] = f"{subsection}\n\n{body.strip()}"
    names = [s for s in order if s in subs] + [s for s in subs if s not in order]
    update_section(
        section, "\n\n".join([*([head] if head else []), *(subs[s] for s in names)]), path
    )
