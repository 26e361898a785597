"""Joint compression with COMPACTED operating points and measured latency as the cost.

The sibling of ``bench_joint.py`` (same pool recipe, same comparison code): every member's menu
is built from a structured method (``dropnet``, ``apoz``: whole nodes / filters removed, the
network physically compacted), one point per removal round, and optionally from unstructured
methods with their dead units removed (``--unstructured magnitude``). Each point's cost is its
measured CPU latency: a fixed random batch of ``--latency-batch`` samples, one torch thread,
``--repeats`` timed blocks, median (``ensprune.models.measure_latency``), all points timed after
training in ``--passes`` passes over the whole pool (a point's cost: its median over passes), so
they share one machine load; the 1-minute load average before and after every member's timings
is recorded and stated. MACs of the compacted networks are recorded too
(``--costs compacted_macs`` gives their table as well).

Phase 1 (cached under ``benchmarks/_cache/joint_compact/<tag>/``, or ``$ENSPRUNE_BENCH_CACHE``): members trained on their bags
(``bench_joint.train_member``); per structured method, ``rounds()`` with ``reset="none"`` drops
``--fraction`` of the remaining units per round (each round fine-tuned ``--finetune-epochs``)
down to ``--max-removed`` of the units; every round is a point at the nominal level
``1 - (1 - fraction)^round``. Phase 1b: latency of every point (cached; ``--remeasure``).
Phase 2 (``bench_joint.compare``): joint / two-stage / uniform / best single pruned member at
``--budgets`` x one dense member's latency, with the references, on validation choices scored
on test. Results: ``<out>/<cost>/results.json``, ``fronts.png``; a Markdown table is printed.

Example (full run; minutes of latency timing, hours of training on a shared 2-core machine)::

    OMP_NUM_THREADS=1 nice python benchmarks/bench_joint_compact.py --data-dir $ENSPRUNE_DATA_DIR \\
        --bag 15000 --epochs 8 --finetune-epochs 2 --out benchmarks/results/joint-compact-15k
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _results import bench_cache  # noqa: E402
from bench_joint import ARCHS, cached_member, compare, train_member  # noqa: E402

#: cost name -> (record key, menu cost_name, axis label)
COSTS = {
    "latency": ("latency_ms", "compacted_latency_ms", "total latency of the compacted networks"),
    "compacted_macs": ("compacted_macs", "compacted_macs", "total MACs of the compacted networks"),
}


def _level(fraction: float, rounds: int, cap: float) -> float:
    """The nominal share of units removed after ``rounds`` rounds (the same for every member)."""
    return round(min(1.0 - (1.0 - fraction) ** rounds, cap), 4)


def build_points(args: argparse.Namespace, cache: Path) -> tuple[dict, list[dict]]:
    """Train, prune and compact the pool (cached per member): predictions, MACs, checkpoints."""
    import torch

    from ensprune.data import load_dataset
    from ensprune.models import TrainConfig, count_macs, save_model
    from ensprune.models.training import predict_proba
    from ensprune.pruning import PruningContext, make_method
    from ensprune.study.menus import deployed_network

    torch.set_num_threads(1)
    data = load_dataset(
        "fashion_mnist", data_dir=args.data_dir, seed=0, download=False, progress=False
    )
    shape = data.input_shape
    labels = {"val": data.y_val, "test": data.y_test, "shape": shape}
    records = []
    for i in range(args.members):
        arch = ARCHS[i % len(ARCHS)]
        path = cache / f"member_{i}.npz"
        cached = cached_member(path)
        if cached is not None:
            records.append(cached)
            continue
        t0 = time.time()
        net, xb, yb = train_member(data, i, args.bag, args.epochs)
        points: list[tuple[str, float, float, Any]] = [("dense", 0.0, 1.0, net)]
        ft = TrainConfig(epochs=args.finetune_epochs, batch_size=128, lr=5e-4, seed=i, patience=0)
        context = PruningContext(xb, yb, data.x_val, data.y_val, finetune=ft, seed=i)
        for name in args.methods:  # structured: one point per removal round
            method = make_method(name, reset="none", fraction=args.fraction, kappa=0.0)
            rounds = method.rounds(copy.deepcopy(net), args.max_removed, context)
            for k, step in enumerate(rounds, start=1):
                level = _level(args.fraction, k, args.max_removed)
                points.append((name, level, step.units_remaining, copy.deepcopy(step.model)))
        for name in args.unstructured:  # masks; only their dead units are removed
            for s in args.sparsities:
                pruned = make_method(name).prune(copy.deepcopy(net), s, context).model
                points.append((name, float(s), float("nan"), pruned))
        val, test, macs, compacted_macs, units, paths = [], [], [], [], [], []
        for k, (_, _, remaining, model) in enumerate(points):
            small, _ = deployed_network(model, shape)
            val.append(predict_proba(small, data.x_val))
            test.append(predict_proba(small, data.x_test))
            macs.append(count_macs(small, shape, effective=True))
            compacted_macs.append(count_macs(small, shape))
            units.append(remaining)
            checkpoint = cache / f"member_{i}_p{k}.pt"
            save_model(checkpoint, small)
            paths.append(checkpoint.name)
        rec = {
            "arch": np.asarray(arch),
            "method": np.asarray([p[0] for p in points]),
            "sparsity": np.asarray([p[1] for p in points]),  # the nominal removal level
            "units_remaining": np.asarray(units, dtype=np.float64),
            "val": np.stack(val).astype(np.float32),
            "test": np.stack(test).astype(np.float32),
            "macs": np.asarray(macs, dtype=np.float64),
            "compacted_macs": np.asarray(compacted_macs, dtype=np.float64),
            "checkpoint": np.asarray(paths),
        }
        np.savez_compressed(path, **rec)
        records.append(rec)
        acc = (rec["val"].argmax(-1) == data.y_val).mean(axis=1)
        print(
            f"member {i} ({arch}): {len(points)} points, dense val {acc[0]:.4f}, compacted "
            f"{acc[1:].min():.4f}..{acc[1:].max():.4f}, MACs {compacted_macs[0]:.0f} -> "
            f"{min(compacted_macs):.0f}, {time.time() - t0:.0f} s",
            flush=True,
        )
    return labels, records


def measure_latencies(
    args: argparse.Namespace, cache: Path, records: list[dict], shape: tuple[int, ...]
) -> dict[str, Any]:
    """Median batch latency of every point, in one pass (cached in latency.json)."""
    import torch

    from ensprune.models import load_model, measure_latency

    path = cache / f"latency-b{args.latency_batch}-r{args.repeats}-p{args.passes}.json"
    if path.is_file() and not args.remeasure:
        timed = json.loads(path.read_text())
    else:
        torch.set_num_threads(1)
        timed = {"points": {}, "load": [], "started": _now()}
        runs: dict[str, list[tuple[float, float]]] = {}
        # Several passes over every point, each point's median over passes: a load change during
        # the timing then affects every point alike instead of the points timed at that moment.
        for _ in range(args.passes):
            for i, rec in enumerate(records):
                before = os.getloadavg()[0]
                for name in rec["checkpoint"]:
                    model, _ = load_model(cache / str(name))
                    lat = measure_latency(
                        model, shape, batch_size=args.latency_batch, repeats=args.repeats, threads=1
                    )
                    runs.setdefault(str(name), []).append((lat.median_ms, lat.iqr_ms))
                timed["load"].append({"member": i, "before": before, "after": os.getloadavg()[0]})
        for name, values in runs.items():
            medians = [m for m, _ in values]
            timed["points"][name] = {
                "median_ms": float(np.median(medians)),
                "iqr_ms": float(np.median([q for _, q in values])),
                "pass_spread_ms": float(max(medians) - min(medians)),
            }
        timed["finished"] = _now()
        path.write_text(json.dumps(timed, indent=1))
    for rec in records:
        rec["latency_ms"] = np.asarray(
            [timed["points"][str(n)]["median_ms"] for n in rec["checkpoint"]]
        )
    loads = [x for row in timed["load"] for x in (row["before"], row["after"])]
    return {
        "latency_batch": args.latency_batch,
        "latency_repeats": args.repeats,
        "latency_passes": args.passes,
        "latency_threads": 1,
        "load_average_1min": {"min": min(loads), "max": max(loads)},
        "latency_timed": [timed["started"], timed["finished"]],
        "latency_spread": {
            "median_iqr_over_median": float(
                np.median([p["iqr_ms"] / p["median_ms"] for p in timed["points"].values()])
            )
        },
    }


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _acc(value: float) -> str:
    return f"{value:.4f}" if np.isfinite(value) else "no team of 2 fits"


def markdown(result: dict) -> str:
    """The RESULTS.md table of one comparison: test accuracy at each budget, then references."""
    lines = [
        "| budget (x one member) | joint | joint, acc-only | two-stage | uniform (level) "
        "| best single pruned member |",
        "|---|---|---|---|---|---|",
    ]
    unit = result["one_member_cost"]
    for row in result["rows"]:
        joint = row["joint"]
        uniform = row["uniform"]
        single = row.get("best single pruned member")
        uniform_text = "-" if uniform is None else "{test_accuracy:.4f} ({level})".format(**uniform)
        single_text = "-" if single is None else f"{single['test_accuracy']:.4f}"
        joint_text = (
            f"{joint['test_mean']:.4f} (uses {joint['cost_mean'] / unit:.2f}x, "
            f"std {joint['test_std']:.4f})"
            if np.isfinite(joint["test_mean"])
            else "no team of 2 fits"
        )
        lines.append(
            f"| {row['budget_x_member']:g}x | {joint_text} "
            f"| {_acc(row['joint_accuracy_only']['test_mean'])} "
            f"| {_acc(row['two_stage']['test_mean'])} | {uniform_text} | {single_text} |"
        )
    refs = ", ".join(
        f"{name} {r['test_accuracy']:.4f} ({r['cost'] / unit:.2f}x)"
        for name, r in result["references"].items()
    )
    return "\n".join(lines) + f"\n\nReferences: {refs}."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("ENSPRUNE_DATA_DIR"))
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--bag", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=["dropnet", "apoz"])
    parser.add_argument("--fraction", type=float, default=0.3, help="units dropped per round")
    parser.add_argument("--max-removed", type=float, default=0.9, help="share of units, last")
    parser.add_argument("--unstructured", nargs="*", default=[], help="e.g. magnitude")
    parser.add_argument("--sparsities", nargs="+", type=float, default=[0.9, 0.95, 0.98])
    parser.add_argument("--latency-batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--passes", type=int, default=3, help="timing passes over all points")
    parser.add_argument("--remeasure", action="store_true", help="time every point again")
    parser.add_argument("--costs", nargs="+", choices=list(COSTS), default=list(COSTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.25, 0.5, 1.0, 2.0])
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--out", default=str(HERE / "results" / "joint-compact"))
    args = parser.parse_args()

    methods = "-".join(args.methods + args.unstructured)
    tag = (
        f"m{args.members}-b{args.bag}-e{args.epochs}-ft{args.finetune_epochs}-{methods}"
        f"-f{args.fraction:g}-x{args.max_removed:g}"
    )
    cache = bench_cache() / "joint_compact" / tag
    cache.mkdir(parents=True, exist_ok=True)
    labels, records = build_points(args, cache)
    timing = measure_latencies(args, cache, records, labels["shape"])
    timing["machine"] = f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})"
    load = timing["load_average_1min"]
    print(
        f"latency: batch {args.latency_batch}, 1 torch thread, median of {args.repeats} blocks, "
        f"median of {args.passes} passes over all points; "
        f"1-min load average {load['min']:.1f}-{load['max']:.1f} while timing "
        f"({timing['latency_timed'][0]} - {timing['latency_timed'][1]}); median IQR/median "
        f"{timing['latency_spread']['median_iqr_over_median']:.3f}",
        flush=True,
    )
    for cost in args.costs:
        key, cost_name, axis = COSTS[cost]
        result = compare(
            records,
            labels,
            cost_key=key,
            cost_name=cost_name,
            axis_label=axis,
            budgets=args.budgets,
            seeds=args.seeds,
            tolerance=args.tolerance,
            out=Path(args.out) / cost,
            config=vars(args),
            extra={"timing": timing},
        )
        print(f"\n### cost: {cost_name}\n\n{markdown(result)}\n", flush=True)


if __name__ == "__main__":
    main()
