"""Which focal-diversity metrics should selection use by default, and does HQ's normalisation help?

Pools: for each dataset (Fashion-MNIST, MNIST) and pool seed, 10 small networks of 3
architectures (4 x lenet300, 3 x model_a, 3 x mlp_40_20), each trained on its own
random subset of the training split (bagging) with Adam and early stopping on a separate split.
Member predictions on the validation split (selection) and the test split (this table only) are
cached under benchmarks/_cache/, so re-runs skip training.

Part 1, metric sets: every metric set below, with the ``hq`` (beta 0.1), ``exhaustive`` and
``greedy`` selectors (teams of at most 5, soft voting, the default objective), picks one team per
pool on validation; the table gives the mean test accuracy of the picked teams over all pools and
the selectors, next to an accuracy-only objective (no diversity term). The choice rule, fixed
before the numbers were seen: the set with the highest mean test accuracy; a set whose paired
difference to it (same pools and selectors) is within one standard error and that has fewer
metrics wins (fewer metrics = less double counting and less to explain), and sets holding both
BD and KW are never chosen (they rank teams of one size identically, see docs/metrics.md).

Part 2, HQ normalisation: per pool and metric (CK, BD, KW, GD and the consensus of the chosen
default set), HQ without normalisation, normalised over the surviving candidates of a size
(``normalize="candidates"``) and over all teams of a size as the published HQ code does
(``normalize="all"``): how often the pruned teams and the final pick differ, and the test
accuracy of each pick.

Usage:
    OMP_NUM_THREADS=1 nice python benchmarks/bench_metric_sets.py --data-dir $ENSPRUNE_DATA_DIR
    OMP_NUM_THREADS=1 nice python benchmarks/bench_metric_sets.py --pool-seeds 0 --no-write
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ensprune.data import load_dataset
from ensprune.ensemble import SELECTORS, PredictionSet, Selection, TeamVoter
from ensprune.models import TrainConfig, build_seeded, predict_proba, train_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import bench_cache, command_line, machine_info, update_section

CACHE = bench_cache()
SECTION = "## Metric sets and HQ normalisation (issue 10)"
DEFAULT_POOL = ["lenet300"] * 4 + ["model_a"] * 3 + ["mlp_40_20"] * 3
EARLY_STOP = 5000
METRIC_SETS = (
    "ck,bd,kw,gd",
    "ck,bd,gd",
    "ck,kw,gd",
    "ck,gd",
    "bd,gd",
    "ck,bd",
    "ck",
    "bd",
    "kw",
    "gd",
    "qs",
    "df",
    "entropy",
)
SELECTOR_SETTINGS: dict[str, dict[str, object]] = {
    "hq": {"beta": 0.1},
    "exhaustive": {},
    "greedy": {},
}
ACCURACY_ONLY = "(accuracy only)"


def build_pool(
    dataset: str, seed: int, args: argparse.Namespace
) -> tuple[PredictionSet, PredictionSet]:
    """Train (or load from the cache) one pool; return its (validation, test) predictions."""
    config = {
        "dataset": dataset,
        "pool": args.pool,
        "train_size": args.train_size,
        "epochs": args.epochs,
        "patience": args.patience,
        "seed": seed,
        "version": 1,
    }
    key = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    paths = [CACHE / f"metricsets_{dataset}_{key}_{split}.npz" for split in ("val", "test")]
    if all(p.exists() for p in paths):
        return PredictionSet.load(paths[0]), PredictionSet.load(paths[1])
    ds = load_dataset(dataset, data_dir=args.data_dir, seed=seed, download=False, progress=False)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ds.y_train))
    es_idx, fit_idx = order[:EARLY_STOP], order[EARLY_STOP:]
    val_proba, test_proba, names = [], [], []
    start = time.perf_counter()
    for i, arch in enumerate(args.pool):
        subset = np.sort(rng.choice(fit_idx, size=args.train_size, replace=False))
        model = build_seeded(arch, ds.input_shape, ds.num_classes, seed=seed * 100 + i)
        train_model(
            model,
            ds.x_train[subset],
            ds.y_train[subset],
            ds.x_train[es_idx],
            ds.y_train[es_idx],
            TrainConfig(epochs=args.epochs, patience=args.patience, seed=seed * 100 + i),
            progress=False,
        )
        val_proba.append(predict_proba(model, ds.x_val))
        test_proba.append(predict_proba(model, ds.x_test))
        names.append(f"{arch}-{i}")
        print(f"  {names[-1]}: {time.perf_counter() - start:.0f} s", flush=True)
    print(f"{dataset} pool {seed}: trained in {time.perf_counter() - start:.0f} s", flush=True)
    val = PredictionSet(np.stack(val_proba), ds.y_val, names=names)
    test = PredictionSet(np.stack(test_proba), ds.y_test, names=names)
    CACHE.mkdir(parents=True, exist_ok=True)
    val.save(paths[0])
    test.save(paths[1])
    return val, test


def pick(
    selector: str, metrics: str, val: PredictionSet, args: argparse.Namespace, **extra: object
) -> Selection:
    """One selector's team on the validation predictions."""
    settings = {**SELECTOR_SETTINGS[selector], "max_size": args.max_size, **extra}
    if metrics == ACCURACY_ONLY:
        settings["w_diversity"] = 0.0
    else:
        settings["metrics"] = metrics
    return SELECTORS.get(selector)(**settings).select(val)


def metric_set_table(
    pools: dict[str, tuple[PredictionSet, PredictionSet]], args: argparse.Namespace
) -> tuple[list[str], str]:
    """Part 1: test accuracy per metric set; returns the table lines and the chosen set.

    Sets are compared on the same (pool, selector) cases, so the spread that matters is that of
    the paired differences, not the spread of accuracies across datasets.
    """
    accs: dict[str, dict[str, list[float]]] = {}
    for metrics in (*METRIC_SETS, ACCURACY_ONLY):
        accs[metrics] = {s: [] for s in SELECTOR_SETTINGS}
        for val, test in pools.values():
            for selector in SELECTOR_SETTINGS:
                accs[metrics][selector].append(pick(selector, metrics, val, args).accuracy(test))
        print(f"{metrics}: mean test {np.mean(flat(accs[metrics])):.4f}", flush=True)
    eligible = [m for m in METRIC_SETS if not {"bd", "kw"} <= set(m.split(","))]
    best = max(eligible, key=lambda m: float(np.mean(flat(accs[m]))))

    def paired(metrics: str, against: str) -> tuple[float, float]:
        diff = flat(accs[metrics]) - flat(accs[against])
        return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(diff.size))

    close = [m for m in eligible if paired(m, best)[0] >= -paired(m, best)[1]]
    chosen = min(close, key=lambda m: (len(m.split(",")), -float(np.mean(flat(accs[m])))))
    means = {m: float(np.mean(flat(a))) for m, a in accs.items()}
    print(json.dumps({"mean_test": means, "best": best, "chosen": chosen}), flush=True)
    old = "ck,bd,kw,gd"
    lines = [
        "| metric set | "
        + " | ".join(f"{s} mean test" for s in SELECTOR_SETTINGS)
        + f" | mean test (all) | vs {old}, points (s.e.) | vs best eligible, points (s.e.) |",
        "|---|" + "---:|" * (len(SELECTOR_SETTINGS) + 3),
    ]
    for metrics, per in accs.items():
        mark = " **(chosen)**" if metrics == chosen else ""
        cells = " | ".join(f"{np.mean(a):.4f}" for a in per.values())
        d_old, se_old = paired(metrics, old)
        d_best, se_best = paired(metrics, best)
        lines.append(
            f"| {metrics}{mark} | {cells} | {np.mean(flat(per)):.4f} | "
            f"{100 * d_old:+.2f} ({100 * se_old:.2f}) | {100 * d_best:+.2f} ({100 * se_best:.2f}) |"
        )
    return lines, chosen


def flat(per_selector: dict[str, list[float]]) -> np.ndarray:
    """All (pool, selector) accuracies of one metric set, in a fixed order."""
    return np.array(list(itertools.chain.from_iterable(per_selector.values())))


def normalisation_table(
    pools: dict[str, tuple[PredictionSet, PredictionSet]],
    metrics: list[str],
    args: argparse.Namespace,
) -> list[str]:
    """Part 2: HQ with each normalisation mode, per pool and metric."""
    modes = ("none", "candidates", "all")
    pruned_differs = pick_differs = 0
    wins = {"candidates": 0, "all": 0}
    losses = {"candidates": 0, "all": 0}
    test = {mode: [] for mode in modes}
    cases = 0
    for val, tst in pools.values():
        for metric in metrics:
            sels = {mode: pick("hq", metric, val, args, normalize=mode) for mode in modes}
            tables = {mode: sels[mode].table for mode in modes}
            status = {
                mode: set(tables[mode].loc[tables[mode].status == "pruned", "members"].map(tuple))
                for mode in modes
            }
            cases += 1
            pruned_differs += status["candidates"] != status["all"]
            pick_differs += sels["candidates"].members != sels["all"].members
            accs = {mode: sels[mode].accuracy(tst) for mode in modes}
            for mode in modes:
                test[mode].append(accs[mode])
            for mode in ("candidates", "all"):
                wins[mode] += accs[mode] > accs["none"]
                losses[mode] += accs[mode] < accs["none"]
    return [
        "| HQ normalisation | mean test acc | picks more accurate than no normalisation | less accurate |",
        "|---|---:|---:|---:|",
        f"| none (default) | {np.mean(test['none']):.4f} | - | - |",
        f"| candidates (survivors of a size) | {np.mean(test['candidates']):.4f} | {wins['candidates']} of {cases} | {losses['candidates']} of {cases} |",
        f"| all (published HQ) | {np.mean(test['all']):.4f} | {wins['all']} of {cases} | {losses['all']} of {cases} |",
        "",
        f"- Pruned teams differ between `candidates` and `all` in {pruned_differs} of {cases} pool x metric cases; "
        f"the final pick differs in {pick_differs} of {cases}.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("ENSPRUNE_DATA_DIR", "data"))
    parser.add_argument("--datasets", nargs="+", default=["fashion_mnist", "mnist"])
    parser.add_argument("--pool-seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--pool", nargs="+", default=DEFAULT_POOL, help="architecture per member")
    parser.add_argument("--train-size", type=int, default=5000, help="training samples per member")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--max-size", type=int, default=5)
    parser.add_argument("--build-only", action="store_true", help="train and cache the pools only")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    pools = {f"{d}-{s}": build_pool(d, s, args) for d in args.datasets for s in args.pool_seeds}
    if args.build_only:
        return 0
    lines, chosen = metric_set_table(pools, args)
    norm = normalisation_table(pools, ["ck", "bd", "kw", "gd", chosen], args)
    members = ", ".join(f"{args.pool.count(a)} x {a}" for a in dict.fromkeys(args.pool))
    ranges = [
        f"{name}: members {tst.accuracies().min():.4f}-{tst.accuracies().max():.4f}, "
        f"pool {TeamVoter(tst.proba, 'soft').accuracy(np.ones((1, tst.n_members)), tst.y)[0]:.4f}"
        for name, (_, tst) in pools.items()
    ]
    body = "\n".join(
        [
            f"Pools: {len(pools)} ({', '.join(args.datasets)} x pool seeds "
            f"{', '.join(map(str, args.pool_seeds))}), each {len(args.pool)} members ({members}), "
            f"each member on its own random {args.train_size:,}-sample subset of the training split, "
            f"Adam, at most {args.epochs} epochs, early stopping (patience {args.patience}) on a "
            f"separate {EARLY_STOP:,}-sample split. Selection on the 6,000-sample validation split, "
            f"teams of at most {args.max_size}, soft voting, the default objective (accuracy + 0.1 x "
            "consensus focal diversity - 0.01 x size/M), all negatives; test = the 10,000-sample "
            "test set, used only here. Shrunk to fit ~10 minutes on one shared core.",
            "",
            "### Metric sets",
            "",
            *lines,
            "",
            f"- Chosen default: **{chosen}** (rule in the script's docstring).",
            f"- Test accuracy (soft voting) of the pools: {'; '.join(ranges)}.",
            "",
            "### HQ normalisation (beta 0.1, metrics CK, BD, KW, GD and the chosen set)",
            "",
            *norm,
            "",
            f"- Command: `OMP_NUM_THREADS=1 nice {command_line()}`",
            f"- Machine: {machine_info()}; torch {torch.__version__}",
            f"- Time: {(time.perf_counter() - start) / 60:.1f} min (cached pools are not retrained)",
        ]
    )
    print()
    print(body)
    if not args.no_write:
        update_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
