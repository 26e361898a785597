"""Selection quality on real predictions: a Fashion-MNIST pool of small networks.

Pool: by default 12 members of 4 architectures from the model zoo (3 x lenet5, 4 x lenet300,
3 x model_a, 2 x mlp_40_20), each with its own initialisation seed and its own random
training subset (bagging) of the training split, trained with Adam and early stopping on a
separate early-stopping split carved from the training split. Member predictions on the
validation split (selection) and the test split (reporting only) are cached under
benchmarks/_cache/, so re-runs skip training.

Every selector chooses a team of at most half the pool on the validation split (soft voting,
except Caruana's weighted soft voting); the table reports validation and test accuracy next to
the full pool, the best single member, and the mean test accuracy of random teams of the same
size. The numbers go into the ``## Ensemble selection (issue 3)`` section of RESULTS.md.

Usage:
    nice python benchmarks/bench_selection_quality.py --data-dir $ENSPRUNE_DATA_DIR
    nice python benchmarks/bench_selection_quality.py --train-size 15000 --epochs 6
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_diversity_speed import SUBSECTIONS, command_line, machine_info, update_results

from ensprune.data import load_dataset
from ensprune.ensemble import SELECTORS, PredictionSet, Selection, TeamVoter
from ensprune.ensemble.selection.random import random_team
from ensprune.models import TrainConfig, build_seeded, count_macs, predict_proba, train_model

CACHE = Path(__file__).resolve().parent / "_cache"
DEFAULT_POOL = ["lenet5"] * 3 + ["lenet300"] * 4 + ["model_a"] * 3 + ["mlp_40_20"] * 2
EARLY_STOP = 5000


def build_pool(args: argparse.Namespace) -> tuple[PredictionSet, PredictionSet, dict]:
    """Train (or load from the cache) the pool; return (val, test) predictions and metadata."""
    config = {
        "pool": args.pool,
        "train_size": args.train_size,
        "epochs": args.epochs,
        "patience": args.patience,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "version": 1,
    }
    key = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    val_path, test_path = CACHE / f"fmnist_{key}_val.npz", CACHE / f"fmnist_{key}_test.npz"
    meta_path = CACHE / f"fmnist_{key}_meta.json"
    if val_path.exists() and test_path.exists() and meta_path.exists():
        print(f"pool loaded from {val_path.parent}", flush=True)
        meta = json.loads(meta_path.read_text())
        return PredictionSet.load(val_path), PredictionSet.load(test_path), meta

    ds = load_dataset(
        "fashion_mnist", data_dir=args.data_dir, seed=args.seed, download=False, progress=False
    )
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(ds.y_train))
    es_idx, fit_idx = order[:EARLY_STOP], order[EARLY_STOP:]
    x_es, y_es = ds.x_train[es_idx], ds.y_train[es_idx]
    val_proba, test_proba, names, macs, train_time = [], [], [], [], []
    counts: dict[str, int] = {}
    for i, arch in enumerate(args.pool):
        counts[arch] = counts.get(arch, 0) + 1
        name = f"{arch}-{counts[arch]}"
        subset = np.sort(
            rng.choice(fit_idx, size=min(args.train_size, len(fit_idx)), replace=False)
        )
        model = build_seeded(arch, ds.input_shape, ds.num_classes, seed=args.seed * 100 + i)
        start = time.perf_counter()
        hist = train_model(
            model,
            ds.x_train[subset],
            ds.y_train[subset],
            x_es,
            y_es,
            TrainConfig(
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                patience=args.patience,
                seed=args.seed * 100 + i,
            ),
            progress=False,
        )
        train_time.append(time.perf_counter() - start)
        val_proba.append(predict_proba(model, ds.x_val))
        test_proba.append(predict_proba(model, ds.x_test))
        names.append(name)
        macs.append(count_macs(model, ds.input_shape))
        acc = float(np.mean(val_proba[-1].argmax(1) == ds.y_val))
        print(
            f"{name}: {hist.epochs_run} epochs, {train_time[-1]:.0f}s, val acc {acc:.4f}",
            flush=True,
        )
    cost = np.asarray(macs, dtype=np.float64)
    val = PredictionSet(np.stack(val_proba), ds.y_val, names=names, cost=cost)
    test = PredictionSet(np.stack(test_proba), ds.y_test, names=names, cost=cost)
    meta = {
        "config": config,
        "n_train_split": len(fit_idx),
        "n_early_stop": EARLY_STOP,
        "n_val": len(ds.y_val),
        "n_test": len(ds.y_test),
        "train_seconds": float(sum(train_time)),
    }
    val.save(val_path)
    test.save(test_path)
    meta_path.write_text(json.dumps(meta, indent=2))
    return val, test, meta


def random_mean(
    val: PredictionSet, test: PredictionSet, size: int, n: int, seed: int
) -> tuple[float, float]:
    """Mean (val, test) soft-voting accuracy of ``n`` random teams of ``size`` members."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, val.n_members), dtype=bool)
    for r in range(n):
        masks[r, random_team(rng, val.n_members, size)] = True
    v = TeamVoter(val.proba, "soft").accuracy(masks, val.y)
    t = TeamVoter(test.proba, "soft").accuracy(masks, test.y)
    return float(v.mean()), float(t.mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("ENSPRUNE_DATA_DIR", "data"))
    parser.add_argument("--pool", nargs="+", default=DEFAULT_POOL, help="architecture per member")
    parser.add_argument("--train-size", type=int, default=15000, help="training samples per member")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--random-teams", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    val, test, meta = build_pool(args)
    m = val.n_members
    half = m // 2
    val_acc, test_acc = val.accuracies(), test.accuracies()
    best_val_member = int(np.argmax(val_acc))
    full = np.ones((1, m))
    pool_val = float(TeamVoter(val.proba, "soft").accuracy(full, val.y)[0])
    pool_test = float(TeamVoter(test.proba, "soft").accuracy(full, test.y)[0])

    runs: list[tuple[str, Selection, float]] = []
    settings = {
        "hq": {"beta": 0.1},
        "ga": {},
        "nsga2": {},
        "greedy": {},
        "caruana": {},
        "topk": {},
        "exhaustive": {},
    }
    for name, extra in settings.items():
        start = time.perf_counter()
        sel = SELECTORS.get(name)(max_size=half, seed=args.seed, **extra).select(val)
        runs.append((name, sel, time.perf_counter() - start))
        print(
            f"{name}: {sel.names} val {sel.val_accuracy:.4f} test {sel.accuracy(test):.4f}",
            flush=True,
        )

    lines = [
        f"Pool: {m} members of {len(set(args.pool))} architectures "
        f"({', '.join(f'{args.pool.count(a)} x {a}' for a in dict.fromkeys(args.pool))}) trained "
        f"on Fashion-MNIST, each on its own random {args.train_size:,}-sample subset of the "
        f"{meta['n_train_split']:,}-sample training split (bagging), Adam lr {args.lr}, at most "
        f"{args.epochs} epochs, early stopping (patience {args.patience}) on a separate "
        f"{meta['n_early_stop']:,}-sample split; total training {meta['train_seconds'] / 60:.1f} min "
        f"on CPU. Selection on the {meta['n_val']:,}-sample validation split, at most {half} members; "
        f"test = the {meta['n_test']:,}-sample Fashion-MNIST test set, touched only for this table. "
        f"Soft voting except Caruana (weighted soft voting). Diversity selectors use the default "
        f"objective (accuracy + 0.1 x consensus focal CK/BD/KW/GD - 0.01 x size/M), seed {args.seed}.",
        "",
        "| ensemble | members | size | MACs vs pool | val acc | test acc | random same-size teams, mean test | select time (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        f"| full pool | all | {m} | 100 % | {pool_val:.4f} | {pool_test:.4f} | - | - |",
        f"| best single member (by val) | {val.names[best_val_member]} | 1 | "
        f"{100 * val.cost[best_val_member] / val.cost.sum():.1f} % | {val_acc[best_val_member]:.4f} | "
        f"{test_acc[best_val_member]:.4f} | - | - |",  # type: ignore[index]
    ]
    beats = []
    for name, sel, seconds in runs:
        _, rt = random_mean(val, test, sel.size, args.random_teams, args.seed)
        t_acc = sel.accuracy(test)
        share = 100 * float(val.cost[sel.members].sum() / val.cost.sum())  # type: ignore[index]
        lines.append(
            f"| {name} | {', '.join(sel.names)} | {sel.size} | {share:.1f} % | "
            f"{sel.val_accuracy:.4f} | {t_acc:.4f} | {rt:.4f} | {seconds:.2f} |"
        )
        beats.append((name, t_acc > pool_test and t_acc > test_acc.max() and sel.size <= half))
    lines += [
        "",
        f"- Best single member on test (oracle): {test.names[int(np.argmax(test_acc))]} "
        f"{test_acc.max():.4f}; member test accuracies {test_acc.min():.4f}-{test_acc.max():.4f}.",
        "- Teams beating both the full pool and the best single member on test with at most half "
        f"the members: {', '.join(n for n, ok in beats if ok) or 'none'}"
        + (
            f"; not: {', '.join(n for n, ok in beats if not ok)}"
            if not all(ok for _, ok in beats)
            else ""
        )
        + ".",
        f"- Random same-size teams: mean over {args.random_teams} seeded random teams of the same size.",
        f"- Command: `nice {command_line()}`",
        f"- Machine: {machine_info()}; torch {torch.__version__} on CPU",
        f"- Date: {dt.date.today().isoformat()}",
    ]
    body = "\n".join(lines)
    print()
    print(body)
    if not args.no_write:
        update_results(SUBSECTIONS[2], body)
        print("\nwritten to benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
