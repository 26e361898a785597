"""Joint selection at scale and against enumeration, on synthetic menus.

1. Scale: a menu of 64 members x 8 operating points on 10,000 validation samples; wall time of
   the GA joint search (default settings) at a budget of one dense member's cost, 1 and 2 jobs.
2. Quality: on menus small enough to enumerate, the GA's and NSGA-II's fitness against the
   exhaustive optimum over several seeds and budgets.

Example (``--write`` updates RESULTS.md)::

    OMP_NUM_THREADS=1 python benchmarks/bench_joint_scale.py --write

Target: the GA's answer on the 64 x 8 menu in under 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import command_line, machine_info, today, update_subsection

SECTION = "## Joint compression: members x operating points under a budget (issue 12)"
SUBSECTION = "### Joint search at scale and against enumeration"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--jobs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()

    from ensprune.ensemble import JointSelector, make_menu

    out: dict = {"scale": [], "quality": []}
    if not args.skip_scale:
        t0 = time.time()
        menu = make_menu(args.members, args.points, args.samples, seed=0)
        print(f"menu {menu.n_points} points built in {time.time() - t0:.1f} s", flush=True)
        budget = float(menu.dense_cost().mean())
        for jobs in args.jobs:
            t0, cpu0 = time.time(), time.process_time()
            sel = JointSelector(budget=budget, seed=0, n_jobs=jobs).select_menu(menu)
            row = {
                "members": args.members,
                "points": menu.n_points,
                "samples": args.samples,
                "n_jobs": jobs,
                "seconds": round(time.time() - t0, 1),
                # this process's CPU time: steady on a loaded machine (workers' time not counted)
                "cpu_seconds": round(time.process_time() - cpu0, 1),
                "choices_scored": sel.selection.n_evaluated,
                "generations": sel.selection.scores["generations"],
                "team_size": len(sel.points),
                "total_cost_over_budget": sel.total_cost / budget,
                "val_accuracy": sel.val_accuracy,
            }
            out["scale"].append(row)
            print(json.dumps(row), flush=True)
    for m, k in ((6, 3), (8, 3), (6, 4)):
        menu = make_menu(m, k, 2000, seed=m * 10 + k)
        unit = float(menu.dense_cost().mean())
        for mult in (0.5, 1.0, 2.0):
            exact = JointSelector(search="exhaustive", budget=mult * unit).select_menu(menu)
            best = exact.selection.scores["fitness"]
            for search in ("ga", "nsga2"):
                gaps, secs = [], []
                for seed in args.seeds:
                    t0 = time.time()
                    got = JointSelector(search=search, budget=mult * unit, seed=seed).select_menu(
                        menu
                    )
                    secs.append(time.time() - t0)
                    gaps.append(best - got.selection.scores["fitness"])
                row = {
                    "menu": f"{m}x{k}",
                    "choices": int(np.prod([k + 1] * m)),
                    "budget_x_member": mult,
                    "search": search,
                    "optimum_found": int(sum(g <= 1e-12 for g in gaps)),
                    "seeds": len(gaps),
                    "max_gap": float(max(gaps)),
                    "seconds_mean": round(float(np.mean(secs)), 2),
                }
                out["quality"].append(row)
                print(json.dumps(row), flush=True)
    print(json.dumps(out))
    if args.write:
        update_subsection(SECTION, SUBSECTION, report(out))


def report(out: dict) -> str:
    lines = [
        f"Command: `{command_line()}`  ",
        f"Machine: {machine_info()}; {today()}.",
        "",
        "Synthetic menus (`ensprune.ensemble.make_menu`: members with a dense point and pruned "
        "points of falling cost and accuracy), budget = one dense member's mean cost, default "
        "`JointSelector` (GA with hill climbing, entropy focal diversity, soft voting).",
        "",
    ]
    if out["scale"]:
        lines += [
            "| members x points | samples | n_jobs | seconds | choices scored | generations "
            "| team size | cost / budget | val accuracy |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in out["scale"]:
            lines.append(
                f"| {r['members']} x {r['points'] // r['members']} | {r['samples']} | "
                f"{r['n_jobs']} | {r['seconds']} | {r['choices_scored']} | {r['generations']} "
                f"| {r['team_size']} | {r['total_cost_over_budget']:.3f} | "
                f"{r['val_accuracy']:.4f} |"
            )
        best = min(r["seconds"] for r in out["scale"])
        verdict = "**met**" if best < 120 else "**not met**"
        lines += ["", f"Target (under 2 minutes on 2 cores): {verdict} (fastest {best} s).", ""]
    lines += [
        "| menu | choices | budget (x member) | search | optimum found (seeds) | max fitness gap "
        "| seconds (mean) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in out["quality"]:
        lines.append(
            f"| {r['menu']} | {r['choices']:,} | {r['budget_x_member']} | {r['search']} | "
            f"{r['optimum_found']} / {r['seeds']} | {r['max_gap']:.2g} | {r['seconds_mean']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
