"""Weight pruning on LeNet-300-100 / MNIST: magnitude (global, layer), LAMP and random.

One dense checkpoint per seed (cached in benchmarks/_cache/) and one fine-tuning budget are shared
by every method and sparsity. Each operating point is pruned with the library's defaults for the
schedule (``--schedule``/``--rounds``) and fine-tuned with masks enforced; test error is measured on
the untouched MNIST test set. Results are appended to benchmarks/_cache/weight_pruning.jsonl as
they come (a re-run skips points already measured) and the table in benchmarks/RESULTS.md is
rewritten from every measured point of this configuration.

Example:
    nice -n 5 python benchmarks/bench_weight_pruning.py --data-dir /path/to/data --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _pruning_common as common

from ensprune.models import TrainConfig, count_parameters, evaluate
from ensprune.models.training import LR_SCHEDULES
from ensprune.pruning import GRADUAL, SCHEDULES, PruningContext, make_method, measure_model

# The dense recipe: Adam to early stopping on validation loss, then a stage at lr / 10
# (``anneal``); ~98.4 % test accuracy in about 20 epochs.
DENSE = TrainConfig(epochs=40, batch_size=128, lr=1e-3, patience=5)
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "magnitude-global": ("magnitude", {"scope": "global"}),
    "magnitude-layer": ("magnitude", {"scope": "layer"}),
    "lamp": ("lamp", {}),
    "random": ("random", {"scope": "global"}),
    # second order (issue 13): diagonal empirical Fisher, and K-FAC's OBS saliency; in the
    # gradual schedule both are re-computed from calibration data at every re-scoring step
    "obd-empirical": ("obd", {"scope": "global", "fisher": "empirical"}),
    "kfac-obs": ("kfac", {"scope": "global"}),
}
LOG = common.CACHE / "weight_pruning.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        default=common.data_dir_default(),
        help="folder holding mnist/ (default: $ENSPRUNE_DATA_DIR)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.9, 0.95, 0.98, 0.99])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--schedule", default="cubic", choices=[*SCHEDULES, GRADUAL])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--ramp", type=float, default=0.4, help="gradual: share of the steps the sparsity rises"
    )
    parser.add_argument(
        "--prune-every", type=int, default=50, help="gradual: optimiser steps between mask updates"
    )
    parser.add_argument("--lr-schedule", default="constant", choices=list(LR_SCHEDULES))
    parser.add_argument(
        "--clean-epochs",
        type=int,
        default=0,
        help="the last N fine-tuning epochs skip --augment (a sparse network underfits it)",
    )
    parser.add_argument(
        "--finetune-epochs",
        type=int,
        default=100,
        help="total fine-tuning epochs per operating point (split over rounds)",
    )
    parser.add_argument("--finetune-lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    common.add_training_args(parser, "dense training and fine-tuning", "fine-tuning")
    parser.add_argument(
        "--dense-patience", type=int, default=5, help="early-stopping patience of dense training"
    )
    parser.add_argument("--max-train", type=int, default=None, help="subsample training data")
    parser.add_argument(
        "--label", default="", help="suffix of the RESULTS.md subsection (for non-default runs)"
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    return parser.parse_args(argv)


def dense_config(seed: int, augment: str | None = None, patience: int = 5) -> TrainConfig:
    """The dense LeNet-300-100 recipe; augmentation needs more epochs to converge."""
    epochs = DENSE.epochs if augment is None else 3 * DENSE.epochs
    return dataclasses.replace(DENSE, seed=seed, augment=augment, epochs=epochs, patience=patience)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    torch.set_num_threads(args.threads)
    finetune_cfg = {
        "schedule": args.schedule,
        "rounds": args.rounds,
        "epochs": args.finetune_epochs,
        "lr": args.finetune_lr,
        "patience": args.patience,
        "max_train": args.max_train,
        **({"augment": args.augment} if args.augment else {}),
        **({"distill": args.distill, "temperature": args.temperature} if args.distill else {}),
        # only when set, so that the logged points of earlier configurations keep their keys
        **({"ramp": args.ramp, "prune_every": args.prune_every} if _gradual(args) else {}),
        **({"lr_schedule": args.lr_schedule} if args.lr_schedule != "constant" else {}),
        **({"clean_epochs": args.clean_epochs} if args.clean_epochs else {}),
    }
    done = _load_log()
    rows = []
    for seed in args.seeds:
        data = common.load("mnist", args.data_dir, seed, args.max_train)
        dense_cfg = dense_config(seed, args.augment, args.dense_patience)
        dense, _, meta = common.dense_checkpoint(
            "lenet300", data, "mnist", seed, dense_cfg, args.max_train
        )
        print(f"seed {seed}: dense test accuracy {meta['test_accuracy']:.4f}", flush=True)
        context = PruningContext(
            data.x_train,
            data.y_train,
            data.x_val,
            data.y_val,
            seed=seed,
            finetune=TrainConfig(
                epochs=args.finetune_epochs,
                batch_size=128,
                lr=args.finetune_lr,
                patience=args.patience,
                seed=seed,
                augment=args.augment,
                distill=args.distill,
                temperature=args.temperature,
                lr_schedule=args.lr_schedule,
                clean_epochs=args.clean_epochs,
            ),
        )
        for label in args.methods:
            name, knobs = METHODS[label]
            for target in args.sparsities:
                key = json.dumps([seed, label, target, finetune_cfg, meta["key"]], sort_keys=True)
                if key in done:
                    rows.append(done[key])
                    continue
                gradual = {"ramp": args.ramp, "prune_every": args.prune_every}
                method = make_method(
                    name,
                    **knobs,
                    schedule=args.schedule,
                    rounds=args.rounds,
                    **(gradual if _gradual(args) else {}),
                )
                start = time.perf_counter()
                result = method.prune(dense, target, context)
                seconds = time.perf_counter() - start
                report = measure_model(result.model, reference=dense, latency=False)
                row = {
                    "key": key,
                    "seed": seed,
                    "method": label,
                    "target": target,
                    "sparsity": report["sparsity"],
                    "test_accuracy": evaluate(result.model, data.x_test, data.y_test)[1],
                    "val_accuracy": evaluate(result.model, data.x_val, data.y_val)[1],
                    "dense_test_accuracy": meta["test_accuracy"],
                    "nonzero": count_parameters(result.model).prunable_nonzero,
                    "macs_effective": report["macs_effective"],
                    "seconds": seconds,
                    "finetune_epochs": result.info["finetune_epochs"],
                    "threads": args.threads,
                    "config": finetune_cfg,
                }
                print(
                    json.dumps({k: v for k, v in row.items() if k not in ("key", "config")}),
                    flush=True,
                )
                with LOG.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                rows.append(row)
    return rows


def _gradual(args: argparse.Namespace) -> bool:
    return bool(args.schedule == GRADUAL)


def _budget_note(args: argparse.Namespace) -> str:
    """How the fine-tuning budget is spent, for the table's description."""
    clean = (
        f", the last {args.clean_epochs} epochs without augmentation"
        if args.clean_epochs and args.augment
        else ""
    )
    lr = f"Adam lr {args.finetune_lr}" + (
        ", cosine decay to 0" if args.lr_schedule == "cosine" else ""
    )
    if _gradual(args):
        return (
            f"gradual schedule (Zhu & Gupta in training): one run of {args.finetune_epochs} "
            f"epochs ({lr}, no early stopping, the last weights kept{clean}); every "
            f"{args.prune_every} steps the weights are re-scored and the sparsity raised along "
            f"the cubic curve, reaching the target after {args.ramp:.0%} of the steps"
        )
    return (
        f"{args.schedule} schedule, {args.rounds} rounds, {args.finetune_epochs} "
        f"fine-tuning epochs in total per point ({lr}, patience "
        f"{args.patience}, masks enforced, the last round annealed to lr / 10{clean})"
    )


def _load_log() -> dict[str, dict[str, Any]]:
    if not LOG.exists():
        return {}
    rows = [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()]
    return {row["key"]: row for row in rows}


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    dense = {row["seed"]: row["dense_test_accuracy"] for row in rows}
    groups: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["method"], row["target"])].append(row)
    lines = [
        f"- Command: `{common.command_line()}`",
        f"- Machine: {common.machine()}; run {common.today()}",
        f"- Dense LeNet-300-100 (one checkpoint per seed, {len(dense)} seed(s): "
        f"{', '.join(str(s) for s in sorted(dense))}): test error "
        f"{_err([dense[s] for s in sorted(dense)])} % "
        "(Adam lr 1e-3 then 1e-4, each stage to early stopping on validation loss, patience "
        f"{args.dense_patience})"
        + (
            f"; dense training and fine-tuning augmented with `{args.augment}`."
            if args.augment
            else "."
        ),
        f"- Pruning: {_budget_note(args)}" + common.distill_note(args) + "; error on the "
        "10,000 MNIST test images, mean ± std "
        "over seeds. Target: ≥ 98 % sparsity at ≤ 1.6 % test error (Han et al.: 92 % at 1.59 %).",
        "",
        "| method | target sparsity | measured sparsity | non-zero weights | test error % | "
        "minutes per point |",
        "|---|---|---|---|---|---|",
    ]
    for (method, target), group in sorted(groups.items()):
        sparsity = sum(r["sparsity"] for r in group) / len(group)
        nonzero = sum(r["nonzero"] for r in group) / len(group)
        minutes = sum(r["seconds"] for r in group) / len(group) / 60
        lines.append(
            f"| {method} | {target:.0%} | {sparsity:.2%} | {nonzero:,.0f} | "
            f"{_err([r['test_accuracy'] for r in group])} | {minutes:.1f} |"
        )
    return "\n".join(lines)


def _err(accuracies: list[float]) -> str:
    return common.mean_std([1.0 - a for a in accuracies])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = run(args)
    text = table(rows, args)
    print(text)
    if not args.no_write:
        title = "LeNet-300-100 on MNIST: weight pruning"
        common.write_subsection(f"{title} ({args.label})" if args.label else title, text)


if __name__ == "__main__":
    main()
