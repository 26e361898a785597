"""Why the joint pick stops spending its budget: the objective's terms at each budget.

Reads the menus of a finished ``ensprune run`` in joint mode (``RUN_DIR/menus/val.npz`` and
``test.npz``; any run directory from this version has them) and, for each budget (x one dense
member's cost) and each weight setting, runs the joint GA on VALIDATION and records the pick's
budget use, validation and test accuracy, and its fitness terms under the DEFAULT weights:
``w_accuracy * accuracy``, ``w_diversity * diversity`` and ``- w_size * size / M``. Comparing the
default pick with the accuracy-only pick term by term says which term holds the default back.

Example::

    OMP_NUM_THREADS=1 python benchmarks/bench_joint_weights.py runs/joint_fashion --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

#: weight settings compared (w_accuracy, w_diversity, w_size); "default" is the selectors' default
WEIGHTS = {
    "default": (1.0, 0.1, 0.01),
    "no size term": (1.0, 0.1, 0.0),
    "no diversity term": (1.0, 0.0, 0.01),
    "accuracy only": (1.0, 0.0, 0.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.25, 0.5, 1.0, 2.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--max-size", type=int, default=8)
    parser.add_argument("--population", type=int, default=100)
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--metric", default="gd")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON results (default: stdout only)"
    )
    args = parser.parse_args()

    from ensprune.ensemble.menu import Menu
    from ensprune.ensemble.selection.joint import JointSelector
    from ensprune.report.frames import ensemble_accuracy

    val = Menu.load(args.run_dir / "menus" / "val.npz")
    test = Menu.load(args.run_dir / "menus" / "test.npz")
    one_member = float(val.dense_cost().mean())
    m = val.n_members
    w_acc, w_div, w_size = WEIGHTS["default"]
    rows: list[dict[str, Any]] = []
    for factor in args.budgets:
        budget = factor * one_member
        for label, (a, d, s) in WEIGHTS.items():
            for seed in args.seeds:
                start = time.perf_counter()
                choice = JointSelector(
                    search="ga",
                    budget=budget,
                    seed=seed,
                    w_accuracy=a,
                    w_diversity=d,
                    w_size=s,
                    metrics=(args.metric,),
                    max_size=min(args.max_size, m),
                    population=args.population,
                    generations=args.generations,
                ).select_menu(val)
                seconds = time.perf_counter() - start
                size = len(choice.points)
                accuracy = choice.val_accuracy
                diversity = float(choice.selection.scores["diversity"])
                rows.append(
                    {
                        "budget_x_member": factor,
                        "weights": label,
                        "seed": seed,
                        "size": size,
                        "used_x_member": choice.total_cost / one_member,
                        "val_accuracy": accuracy,
                        "test_accuracy": ensemble_accuracy(
                            test.points, choice.points, choice.selection.voting
                        ),
                        "diversity": diversity,
                        # the pick's terms under the DEFAULT weights
                        "accuracy_term": w_acc * accuracy,
                        "diversity_term": w_div * diversity,
                        "size_term": -w_size * size / m,
                        "default_fitness": w_acc * accuracy + w_div * diversity - w_size * size / m,
                        "points": choice.points,
                        "seconds": seconds,
                    }
                )
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "points"}), flush=True)
    summary = _table(rows)
    print(summary)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"one_member_cost": one_member, "rows": rows}, indent=1))


def _table(rows: list[dict[str, Any]]) -> str:
    """Seed means per (budget, weights) as a Markdown table."""
    keys = sorted({(r["budget_x_member"], r["weights"]) for r in rows}, key=lambda k: k[0])
    lines = [
        "| budget (x member) | weights | used (x member) | size | val acc | test acc | "
        "diversity | acc term | div term | size term | default fitness |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = list(WEIGHTS)
    for budget, label in sorted(keys, key=lambda k: (k[0], order.index(k[1]))):
        group = [r for r in rows if (r["budget_x_member"], r["weights"]) == (budget, label)]

        def mean(key: str, group: list[dict[str, Any]] = group) -> float:
            return float(np.mean([r[key] for r in group]))

        lines.append(
            f"| {budget:g}x | {label} | {mean('used_x_member'):.3f} | {mean('size'):.1f} | "
            f"{mean('val_accuracy'):.4f} | {mean('test_accuracy'):.4f} | {mean('diversity'):.4f} | "
            f"{mean('accuracy_term'):.4f} | {mean('diversity_term'):.4f} | "
            f"{mean('size_term'):.4f} | {mean('default_fitness'):.4f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
