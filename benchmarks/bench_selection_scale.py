"""Scale of the GA selector: exhaustive optimum on 16 members, wall time on 64 members.

1. For each of a few synthetic 16-member pools, :class:`ExhaustiveSelector` scores all 65,519
   teams of 2+ members (of the 65,535 non-empty subsets) and finds the optimum of the default
   objective; :class:`GeneticSelector` with its default settings then runs with 10 seeds on the
   same objective. Reported: how many seeds reach the exhaustive optimum, and how many distinct
   teams the GA scored (its budget: at most 10 % of 65,535).
2. On a synthetic 64-member pool the GA runs with a few seeds; reported: wall time, teams scored,
   generations, and the fitness against greedy forward selection on the same objective.

Synthetic pools (``ensprune.ensemble.make_pool``) have member accuracies spread over a range,
correlated errors within 4 (16 members) or 8 (64 members) "architecture" groups, and the
plurality voting rule (less forgiving than soft voting, so larger teams matter).

Usage:
    nice python benchmarks/bench_selection_scale.py
    nice python benchmarks/bench_selection_scale.py --pools 0 --ga-seeds 3 --no-write   # quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

import numpy as np
from bench_diversity_speed import SUBSECTIONS, command_line, machine_info, update_results

from ensprune.ensemble import ExhaustiveSelector, GeneticSelector, GreedySelector, make_pool

ALL_SUBSETS_16 = 2**16 - 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pools", type=int, nargs="+", default=[0, 1, 2], help="16-member pool seeds"
    )
    parser.add_argument("--ga-seeds", type=int, default=10, help="GA seeds per 16-member pool")
    parser.add_argument("--samples", type=int, default=2000, help="validation samples (16 members)")
    parser.add_argument("--large-samples", type=int, default=5000, help="validation samples (64)")
    parser.add_argument("--large-seeds", type=int, default=3, help="GA seeds on the 64-member pool")
    parser.add_argument("--voting", default="plurality")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args(argv)

    small_rows = []
    for pool_seed in args.pools:
        pool = make_pool(16, args.samples, 10, accuracy=(0.65, 0.8), n_groups=4, seed=pool_seed)
        start = time.perf_counter()
        best = ExhaustiveSelector(voting=args.voting).select(pool)
        t_ex = time.perf_counter() - start
        hits, evals, times = 0, [], []
        for seed in range(args.ga_seeds):
            start = time.perf_counter()
            ga = GeneticSelector(voting=args.voting, seed=seed).select(pool)
            times.append(time.perf_counter() - start)
            hits += abs(ga.scores["fitness"] - best.scores["fitness"]) <= 1e-12
            evals.append(ga.n_evaluated or 0)
        row = (
            pool_seed,
            best.members,
            best.scores["fitness"],
            best.n_evaluated,
            t_ex,
            hits,
            max(evals),
            float(np.mean(evals)),
            float(np.mean(times)),
        )
        small_rows.append(row)
        print(
            f"pool {pool_seed}: optimum {best.members} in {t_ex:.1f}s; GA {hits}/{args.ga_seeds}, "
            f"max {max(evals)} teams",
            flush=True,
        )

    large = make_pool(64, args.large_samples, 10, accuracy=(0.6, 0.85), n_groups=8, seed=0)
    start = time.perf_counter()
    greedy = GreedySelector(voting=args.voting).select(large)
    t_greedy = time.perf_counter() - start
    large_rows = []
    for seed in range(args.large_seeds):
        start = time.perf_counter()
        ga = GeneticSelector(voting=args.voting, seed=seed).select(large)
        elapsed = time.perf_counter() - start
        large_rows.append(
            (
                seed,
                elapsed,
                ga.n_evaluated,
                ga.scores["generations"],
                ga.size,
                ga.scores["fitness"],
                ga.val_accuracy,
            )
        )
        print(f"64 members, seed {seed}: {elapsed:.1f}s, {ga.n_evaluated} teams", flush=True)

    lines = [
        f"GA defaults (population 100, two-point crossover, bit-flip mutation, tournament 3, "
        f"elitism 2, stop after 20 generations without improvement, then hill climbing); "
        f"objective: accuracy + 0.1 x consensus focal diversity (CK, BD, KW, GD) - 0.01 x size/M; "
        f"{args.voting} voting; synthetic pools, {args.samples:,} validation samples, 10 classes.",
        "",
        f"**16 members** (exhaustive: all {small_rows[0][3]:,} teams of 2+ members):",
        "",
        "| pool seed | exhaustive optimum | optimum fitness | exhaustive time (s) "
        "| GA seeds at optimum | GA teams scored, max (mean) | max share of 65,535 | GA time, mean (s) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for seed, members, fit, _n, t_ex, hits, mx, mean, t_ga in small_rows:
        lines.append(
            f"| {seed} | {members} | {fit:.5f} | {t_ex:.1f} | {hits}/{args.ga_seeds} | "
            f"{mx} ({mean:.0f}) | {100 * mx / ALL_SUBSETS_16:.1f} % | {t_ga:.2f} |"
        )
    lines += [
        "",
        f"**64 members** ({args.large_samples:,} validation samples; greedy forward selection on "
        f"the same objective: fitness {greedy.scores['fitness']:.5f}, {greedy.size} members, "
        f"{t_greedy:.1f} s):",
        "",
        "| GA seed | time (s) | teams scored | generations | team size | fitness | val accuracy |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for seed, t, n, gens, size, fit, acc in large_rows:
        lines.append(f"| {seed} | {t:.1f} | {n} | {gens:.0f} | {size} | {fit:.5f} | {acc:.4f} |")
    lines += [
        "",
        f"- Command: `nice {command_line()}`",
        f"- Machine: {machine_info()}",
        f"- Date: {dt.date.today().isoformat()}",
    ]
    body = "\n".join(lines)
    print()
    print(body)
    if not args.no_write:
        update_results(SUBSECTIONS[1], body)
        print("\nwritten to benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
