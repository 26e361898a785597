"""Start-up time of the command line: ``ensprune --help`` and ``ensprune list KIND``.

Each command runs ``--repeats`` times in a fresh interpreter (``python -m ensprune ...``); the
table gives the fastest and the median wall time, and which heavy libraries the command
imported (``sys.modules`` after the command, in one more run). Target: every command under 0.5 s.
On a shared machine the median moves with the load; the fastest run is the cleaner number.

    OMP_NUM_THREADS=1 python benchmarks/bench_cli_startup.py --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    "pruners",
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


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(
    args: list[str], repeats: int, root: Path = REPO
) -> tuple[float, float, float, str]:
    """(fastest wall s, median wall s, median CPU s, heavy modules) of ``python -m ensprune ARGS``.

    CPU time (user + system of the child) barely moves with other load on a shared machine,
    so it is the number to compare; wall time is what a user waits on an idle one.
    """
    env = {**os.environ, "PYTHONPATH": str(root)}
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), _children_cpu()
        subprocess.run(
            [sys.executable, "-m", "ensprune", *args],
            check=False,
            env=env,
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - start)
        cpu.append(_children_cpu() - start_cpu)
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY), *args],
        check=False,
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
    )
    return min(times), statistics.median(times), statistics.median(cpu), probe.stdout.strip() or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--compare", type=Path, help="another checkout of ensprune (e.g. before a change)"
    )
    parser.add_argument("--kinds", nargs="*", default=list(KINDS), help="list kinds to time")
    parser.add_argument(
        "--json", action="store_true", help="end with one JSON line of every command's times"
    )
    args = parser.parse_args()
    roots = [("this checkout", REPO)] + ([("compare", args.compare)] if args.compare else [])
    python = time_command(["--version"], args.repeats)  # interpreter + `import ensprune`
    print(f"python {sys.version.split()[0]}; load average {os.getloadavg()[0]:.1f}")
    print()
    print(
        "| checkout | command | wall fastest (s) | wall median (s) | CPU median (s) | heavy imports | CPU < 0.5 s |"
    )
    print("|---|---|---:|---:|---:|---|---|")
    print(
        f"| this checkout | `ensprune --version` | {python[0]:.3f} | {python[1]:.3f} | {python[2]:.3f} | {python[3]} | - |"
    )
    timed = [{"command": "ensprune --version", "wall_fastest": python[0], "cpu_median": python[2]}]
    for label, root in roots:
        for command in (["--help"], *(["list", kind] for kind in args.kinds)):
            fastest, median, cpu, heavy = time_command(command, args.repeats, root)
            if label == "this checkout":
                name = f"ensprune {' '.join(command)}"
                timed.append({"command": name, "wall_fastest": fastest, "cpu_median": cpu})
            ok = "yes" if cpu < TARGET_S else "no"
            print(
                f"| {label} | `ensprune {' '.join(command)}` | {fastest:.3f} | {median:.3f} | "
                f"{cpu:.3f} | {heavy} | {ok} |"
            )
    if args.json:
        slowest = max(row["cpu_median"] for row in timed)
        print(json.dumps({"commands": timed, "slowest_cpu_median": slowest}))


if __name__ == "__main__":
    main()
