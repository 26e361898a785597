"""Speed of focal diversity: ensprune's batched metrics against a per-pair loop.

Computes focal CK, BD, KW and GD (all negatives, plain mean over focal members) for every team
of 2+ members of a pool (1013 teams for 10 members) and compares three implementations:

* ``ensprune``: :class:`ensprune.ensemble.FocalScorer` (pair counts per focal member, one
  matrix product per batch of teams), timed including its set-up;
* ``loop``: the same definitions written straightforwardly: for each team, each focal member and
  each pair, numpy operations on that pair's predictions;
* ``sklearn CK`` (optional, ``--sklearn-ck``): the published code's approach for CK,
  ``sklearn.metrics.cohen_kappa_score`` once per pair.

It checks that the implementations agree, prints a markdown table and writes it into the
``## Ensemble selection (issue 3)`` section of benchmarks/RESULTS.md.

Usage:
    nice python benchmarks/bench_diversity_speed.py                # 10 members, 10,000 samples
    nice python benchmarks/bench_diversity_speed.py --sklearn-ck   # also the published CK way
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import sys
import time
from pathlib import Path

import numpy as np

from ensprune.ensemble import FocalScorer, make_pool

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS, command_line, machine_info, update_subsection

__all__ = ["SUBSECTIONS", "command_line", "machine_info", "update_results"]
SECTION = "## Ensemble selection (issue 3)"
SUBSECTIONS = (
    "### Focal-diversity speed",
    "### Selection scale",
    "### Selection quality on Fashion-MNIST",
)
METRICS = ("ck", "bd", "kw", "gd")


def update_results(subsection: str, body: str) -> None:
    """Replace (or add) ``subsection`` inside this issue's section of RESULTS.md."""
    update_subsection(SECTION, subsection, body, order=SUBSECTIONS)


# --- the per-pair loop baseline ------------------------------------------------------------------


def loop_metric(metric: str, labels: np.ndarray, y: np.ndarray) -> float:
    """One metric of one team on a set of samples, one pair at a time (docs/metrics.md)."""
    n_members, n = labels.shape
    right = labels == y[None, :]
    if metric in ("ck", "bd"):
        values = []
        for i, k in itertools.combinations(range(n_members), 2):
            if metric == "bd":
                values.append(float(np.sum(right[i] != right[k])) / n)
                continue
            p_o = float(np.mean(labels[i] == labels[k]))
            p_e = sum(
                float(np.mean(labels[i] == c)) * float(np.mean(labels[k] == c))
                for c in np.union1d(labels[i], labels[k])
            )
            values.append(1.0 if p_e == 1.0 else (p_o - p_e) / (1.0 - p_e))
        return float(np.mean(values))
    n_right = right.sum(axis=0)
    if metric == "kw":
        return float(np.sum(n_right * (n_members - n_right)) / (n * n_members**2))
    p = np.bincount(n_members - n_right, minlength=n_members + 1) / n
    i = np.arange(n_members + 1)
    p1 = float(np.sum(i / n_members * p))
    p2 = float(np.sum(i * (i - 1) / (n_members * (n_members - 1)) * p))
    return 0.0 if p1 == 0 else 1.0 - p2 / p1


def loop_focal(
    labels: np.ndarray, y: np.ndarray, teams: list[tuple[int, ...]]
) -> dict[str, np.ndarray]:
    out = {m: np.zeros(len(teams)) for m in METRICS}
    wrong = labels != y[None, :]
    for t, team in enumerate(teams):
        sub = labels[list(team)]
        for metric in METRICS:
            out[metric][t] = np.mean(
                [loop_metric(metric, sub[:, wrong[f]], y[wrong[f]]) for f in team]
            )
    return out


def sklearn_focal_ck(labels: np.ndarray, y: np.ndarray, teams: list[tuple[int, ...]]) -> np.ndarray:
    from sklearn.metrics import cohen_kappa_score

    out = np.zeros(len(teams))
    wrong = labels != y[None, :]
    for t, team in enumerate(teams):
        per_focal = []
        for f in team:
            neg = wrong[f]
            per_focal.append(
                np.mean(
                    [
                        cohen_kappa_score(labels[i, neg], labels[k, neg])
                        for i, k in itertools.combinations(team, 2)
                    ]
                )
            )
        out[t] = np.mean(per_focal)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of ensprune (median)")
    parser.add_argument("--sklearn-ck", action="store_true", help="also time sklearn CK per pair")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args(argv)

    pool = make_pool(
        args.members, args.samples, args.classes, accuracy=(0.75, 0.92), seed=args.seed
    )
    labels, y = pool.labels, pool.y
    teams = [
        t
        for s in range(2, args.members + 1)
        for t in itertools.combinations(range(args.members), s)
    ]
    masks = np.zeros((len(teams), args.members), dtype=bool)
    for r, t in enumerate(teams):
        masks[r, list(t)] = True

    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        fast = FocalScorer(labels, y, METRICS).values(masks)
        times.append(time.perf_counter() - start)
    t_fast = float(np.median(times))
    print(f"ensprune: {t_fast:.4f} s (median of {args.repeats})", flush=True)

    start = time.perf_counter()
    slow = loop_focal(labels, y, teams)
    t_loop = time.perf_counter() - start
    print(f"loop: {t_loop:.2f} s", flush=True)
    max_diff = max(float(np.max(np.abs(fast[m] - slow[m]))) for m in METRICS)

    rows = [
        ("ensprune (batched)", t_fast, 1.0, "-"),
        ("per-pair loop, same definitions", t_loop, t_loop / t_fast, f"{max_diff:.1e}"),
    ]
    if args.sklearn_ck:
        start = time.perf_counter()
        ck = sklearn_focal_ck(labels, y, teams)
        t_sk = time.perf_counter() - start
        rows.append(
            (
                "sklearn cohen_kappa_score per pair (CK only)",
                t_sk,
                t_sk / t_fast,
                f"{float(np.max(np.abs(ck - fast['ck']))):.1e}",
            )
        )

    table = [
        "| implementation | time (s) | slower than ensprune | max abs difference |",
        "|---|---:|---:|---:|",
    ] + [f"| {name} | {t:.4f} | {ratio:.0f}x | {diff} |" for name, t, ratio, diff in rows]
    body = "\n".join(
        [
            f"Focal CK, BD, KW and GD (all negatives, plain mean over focal members) of all "
            f"{len(teams)} teams of 2+ members of a synthetic {args.members}-member pool on "
            f"{args.samples:,} validation samples, {args.classes} classes (member accuracy "
            f"{pool.accuracies().min():.2f}-{pool.accuracies().max():.2f}). ensprune time includes "
            f"building the per-focal pair counts; median of {args.repeats} runs.",
            "",
            *table,
            "",
            f"- Speed-up over the per-pair loop: **{t_loop / t_fast:.0f}x**; ensprune total "
            f"**{t_fast:.3f} s** for the four metrics.",
            f"- Command: `nice {command_line()}`",
            f"- Machine: {machine_info()}",
            f"- Date: {dt.date.today().isoformat()}",
        ]
    )
    print()
    print(body)
    if not args.no_write:
        update_results(SUBSECTIONS[0], body)
        print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
