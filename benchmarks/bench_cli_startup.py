"""Start-up time of the command line: ``ensprune --help`` and ``ensprune list KIND``.

Each command runs ``--repeats`` times in a fresh interpreter (``python -m ensprune ...``); the
table gives the fastest and the median wall time, and which heavy libraries the command
imported (``sys.modules`` after the command, in one more run). Target: every command under 0.5 s.
On a shared machine the median moves with the load; the fastest run is the cleaner number.

    OMP_NUM_THREADS=1 python benchmarks/bench_cli_startup.py --repeats 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "sklearn", "scipy", "pandas", "optuna", "matplotlib")
KINDS = (
    "datasets",
    "models",
    "methods",
    "schedules",
    "optimizers",
    "lr_schedules",
    "augmentations",
    "samplers",
    "metrics",
    "selectors",
    "voting",
)
TARGET_S = 0.5

# Runs the CLI in-process after the interpreter starts, then reports the heavy modules loaded.
_PROBE = """
import sys, contextlib, io
from ensprune.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(",".join(m for m in {heavy!r} if m in sys.modules))
"""


def time_command(args: list[str], repeats: int) -> tuple[float, float, str]:
    """(fastest s, median s, heavy modules imported) of ``python -m ensprune ARGS``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "ensprune", *args],
            check=False,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - start)
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY), *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
    )
    return min(times), statistics.median(times), probe.stdout.strip() or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    baseline = time_command(["--version"], args.repeats)
    print(f"python {sys.version.split()[0]}; `ensprune --version`: {baseline[0]:.3f} s fastest")
    print()
    print("| command | fastest (s) | median (s) | heavy imports | under 0.5 s |")
    print("|---|---:|---:|---|---|")
    for command in (["--help"], *(["list", kind] for kind in KINDS)):
        fastest, median, heavy = time_command(command, args.repeats)
        ok = "yes" if median < TARGET_S else "no"
        print(f"| `ensprune {' '.join(command)}` | {fastest:.3f} | {median:.3f} | {heavy} | {ok} |")


if __name__ == "__main__":
    main()
