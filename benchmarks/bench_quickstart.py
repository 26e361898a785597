"""Time the README's quickstart and `ensprune prune` with its defaults, as a user runs them.

Runs the real CLI in a subprocess (fresh run directory each time), then writes the
``## Spine: quickstart and ensprune prune (issue 2)`` section of benchmarks/RESULTS.md.

    python benchmarks/bench_quickstart.py            # quickstart + prune defaults on digits
    python benchmarks/bench_quickstart.py --no-write
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import command_line, machine_info, today, update_section  # noqa: E402

REPO = HERE.parent
SECTION = "## Spine: quickstart and `ensprune prune` (issue 2)"


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed with exit code {done.returncode}:\n{done.stderr}")
    return time.perf_counter() - start, done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args(argv)
    cli = [sys.executable, "-m", "ensprune"]
    with tempfile.TemporaryDirectory() as tmp:
        seconds, out = timed(
            [*cli, "run", "studies/quickstart.toml", "--run-dir", f"{tmp}/qs", "--json"]
        )
    summary = json.loads(out)
    prune_seconds, prune_out = timed([*cli, "prune", "--json"])
    prune = json.loads(prune_out)

    rows = [
        "| member | method | sparsity | val dense -> pruned | test dense -> pruned |",
        "|---|---|---:|---|---|",
    ]
    for m in summary["members"]:
        rows.append(
            f"| {m['member']} | {m['method']} | {m['sparsity']:.1%} | "
            f"{m['dense_val_accuracy']:.4f} -> {m['pruned_val_accuracy']:.4f} | "
            f"{m['dense_test_accuracy']:.4f} -> {m['pruned_test_accuracy']:.4f} |"
        )
    comp = ["| ensemble | members | test accuracy | share of pool MACs |", "|---|---:|---:|---:|"]
    for c in summary["comparison"]:
        comp.append(
            f"| {c['ensemble']} | {c['n_members']} | {c['test_accuracy']:.4f} | {c['cost_share']:.1%} |"
        )
    d, p = prune["dense"], prune["pruned"]
    body = "\n".join(
        [
            f"`ensprune run studies/quickstart.toml` (digits, 6 members, 2 methods, 10 trials each, "
            f"2 worker processes): **{seconds:.0f} s** wall clock end to end (target: under 180 s).",
            "",
            *rows,
            "",
            *comp,
            "",
            f"`ensprune prune --json` with its defaults (digits, lenet300, magnitude, sparsity 0.9): "
            f"{prune_seconds:.0f} s; test accuracy {d['accuracy']:.4f} dense -> {p['accuracy']:.4f} "
            f"pruned at sparsity {p['sparsity']:.3f}; non-zero weights {d['params']:,} -> {p['params']:,}; "
            f"MACs {d['macs']:,} -> {p['macs']:,} (effective); latency at batch 256 "
            f"{d['latency_ms']:.3f} -> {p['latency_ms']:.3f} ms (masks alone give no speed-up).",
            "",
            f"- Command: `{command_line()}`",
            f"- Machine: {machine_info()}",
            f"- Date: {today()}",
        ]
    )
    print(body)
    if not args.no_write:
        update_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
