"""Wall-clock time of one ``ensprune prune`` command, cold (dense network trained) and warm (cached).

Runs the command twice in a fresh dense-network cache (``$ENSPRUNE_CACHE_DIR`` in a temporary
folder): the first call trains and caches the dense network, the second loads it. Reports both
wall times and the dense and pruned test accuracy, and writes them to RESULTS.md under
``## Reproducible headlines (issue 17)``. The default command is DropNet on LeNet-300-100 /
MNIST, whose target is under 10 minutes on 2 CPU cores.

Example:
    python benchmarks/bench_prune_cli.py                       # the full DropNet command
    python benchmarks/bench_prune_cli.py --extra --max-train 6000 --epochs 8 --no-write   # reduced
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import command_line, machine_info, today, update_subsection

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Reproducible headlines (issue 17)"
DROPNET = (
    "ensprune prune --dataset mnist --model lenet300 --method dropnet --param align=16 --seed 0 "
    "--json"
)


def timed(command: list[str], env: dict[str, str]) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return seconds, json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--command", default=DROPNET, help="the ensprune prune command to time")
    parser.add_argument(
        "--extra", nargs=argparse.REMAINDER, default=[], help="flags appended (reduced runs)"
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args(argv)
    command = [*shlex.split(args.command), *args.extra]
    with tempfile.TemporaryDirectory(prefix="ensprune-cache-") as cache:
        env = {**os.environ, "ENSPRUNE_CACHE_DIR": cache}
        cold, first = timed(command, env)
        print(f"cold (dense network trained): {cold:.0f} s", flush=True)
        warm, second = timed(command, env)
        print(f"warm (dense network cached): {warm:.0f} s", flush=True)
    assert second["recipe"]["dense"]["source"] == "cache", "the second call did not use the cache"
    pruned = second["pruned"]
    body = "\n".join(
        [
            f"- Timed command: `{shlex.join(command)}`",
            f"- Command: `{command_line()}`",
            f"- Machine: {machine_info()}; run {today()}",
            "",
            "| call | dense network | wall time | dense test acc | pruned test acc | "
            "units remaining | rounds |",
            "|---|---|---:|---:|---:|---:|---:|",
            *(
                f"| {label} | {r['recipe']['dense']['source']} | {s / 60:.1f} min | "
                f"{r['dense']['accuracy']:.4f} | {r['pruned']['accuracy']:.4f} | "
                f"{r['pruned']['info'].get('units_remaining', float('nan')):.2%} | "
                f"{r['pruned']['info'].get('rounds', '-')} |"
                for label, s, r in (("first", cold, first), ("second", warm, second))
            ),
            "",
            f"Target: under 10 minutes on 2 CPU cores; threads {second['recipe']['threads']}; "
            f"pruned network: {pruned['params']:,} non-zero weights, {pruned['macs']:,} MACs.",
        ]
    )
    print(body)
    if not args.no_write:
        update_subsection(SECTION, "### DropNet through `ensprune prune`", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
