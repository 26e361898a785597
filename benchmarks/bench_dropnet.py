"""DropNet: accuracy against units remaining (Model A / MNIST, Model B / Fashion-MNIST), and the
real speed of a DropNet-compacted LeNet-300-100.

Parts (``--parts``):

- ``model_a``, ``model_b``: for each of the six metrics (min / max / random, global / layer), run
  DropNet rounds (drop 20 % of the remaining units, reset to θ₀, train to early stopping) down to
  ``--target`` units removed, recording validation and test accuracy after every round. Two
  operating points per metric: the largest removal within 0.5 test points of the dense network
  (read off the test curve, as the paper does) and the last round within 0.5 validation points
  (chosen without test data).
- ``capacity``: the ceiling of the Model A target. Train Model A-shaped networks with 32 hidden
  units (60 % of its 80 removed, split several ways between the two layers) from scratch, next to
  the dense FC40-FC40, with DropNet's round recipe and with a stronger one (cosine lr, a fixed
  budget, distillation from the dense network). No pruning method keeps more than these networks
  can hold, so the gap to the dense network bounds what DropNet can reach.
- ``latency``: run DropNet with the library defaults on LeNet-300-100 / MNIST and time every
  round's compacted network side by side with the dense one (one process, interleaved, batch 1
  and 256, one thread); compare each speedup with its MAC reduction.

One dense checkpoint per (model, seed) is cached in benchmarks/_cache/ ($ENSPRUNE_BENCH_CACHE moves
it); finished runs are appended to its dropnet.jsonl, skipped on a re-run, and printed as one JSON
line each.

Example:
    nice -n 5 python benchmarks/bench_dropnet.py --data-dir /path/to/data --parts model_a --seeds 0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _pruning_common as common

from ensprune.models import (
    SequentialNet,
    TrainConfig,
    build_from_layers,
    count_macs,
    evaluate,
    measure_latency_ms,
)
from ensprune.models.training import LR_SCHEDULES
from ensprune.pruning import PruningContext, finetune, measure_model
from ensprune.pruning.dropnet import DropNetPruning

METRICS = [(m, s) for m in ("min", "max", "random") for s in ("global", "layer")]
# Per-model setup: dataset, dense/round training, subsample. DropNet trains every round with the
# same recipe as the dense network (the paper: train to early stopping, patience 5).
SETUPS: dict[str, dict[str, Any]] = {
    "model_a": {
        "dataset": "mnist",
        "title": "Model A (FC40-FC40) on MNIST",
        "train": TrainConfig(epochs=60, batch_size=128, lr=1e-3, patience=5),
    },
    "model_b": {
        "dataset": "fashion_mnist",
        "title": "Model B (Conv64-Conv64-pool) on Fashion-MNIST",
        "train": TrainConfig(epochs=20, batch_size=128, lr=1e-3, patience=3),
    },
}
LOG = common.CACHE / "dropnet.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        default=common.data_dir_default(),
        help="folder holding mnist/ and fashion-mnist/ (default: $ENSPRUNE_DATA_DIR)",
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["model_a", "model_b", "latency"],
        choices=["model_a", "model_b", "capacity", "latency"],
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=[f"{m}_{s}" for m, s in METRICS],
        choices=[f"{m}_{s}" for m, s in METRICS],
    )
    parser.add_argument("--target", type=float, default=0.9, help="share of units to remove")
    parser.add_argument("--fraction", type=float, default=0.2, help="share dropped per round")
    parser.add_argument(
        "--max-train-a", type=int, default=None, help="training samples for Model A (all)"
    )
    parser.add_argument(
        "--max-train-b",
        type=int,
        default=6000,
        help="training samples for Model B (its convolutions are slow on CPU)",
    )
    parser.add_argument(
        "--max-test", type=int, default=None, help="test images of the curves (all: 10,000)"
    )
    parser.add_argument(
        "--latency-target",
        type=float,
        default=0.8,
        help="share of LeNet-300-100 units removed for the latency part",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training")
    common.add_training_args(
        parser, "dense training and every round's training", "every round's training"
    )
    parser.add_argument(
        "--lr", type=float, default=None, help="learning rate of dense and round training"
    )
    parser.add_argument("--lr-schedule", default="constant", choices=list(LR_SCHEDULES))
    parser.add_argument(
        "--patience", type=int, default=None, help="early-stopping patience (0: the full budget)"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="most epochs of dense and round training"
    )
    parser.add_argument(
        "--align",
        type=int,
        default=1,
        help="DropNet align: keep a multiple of this many units per shrunk layer (1: the paper)",
    )
    parser.add_argument(
        "--label", default="", help="suffix of the RESULTS.md subsection (for non-default runs)"
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    return parser.parse_args(argv)


def _log(row: dict[str, Any]) -> None:
    with LOG.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def _logged() -> dict[str, dict[str, Any]]:
    if not LOG.exists():
        return {}
    rows = [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()]
    return {row["key"]: row for row in rows}


def curves(part: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Accuracy after every DropNet round, for every seed and metric."""
    setup = SETUPS[part]
    max_train = args.max_train_b if part == "model_b" else args.max_train_a
    done = _logged()
    runs = []
    for seed in args.seeds:
        data = common.load(setup["dataset"], args.data_dir, seed, max_train, args.max_test)
        train = dataclasses.replace(
            _training(setup["train"], args), seed=seed, augment=args.augment
        )
        dense, init, meta = common.dense_checkpoint(
            part, data, setup["dataset"], seed, train, max_train
        )
        if args.max_test:  # the cached accuracy is on the whole test split
            meta = {**meta, "test_accuracy": evaluate(dense, data.x_test, data.y_test)[1]}
        print(f"{part} seed {seed}: dense test {meta['test_accuracy']:.4f}", flush=True)
        context = PruningContext(
            data.x_train,
            data.y_train,
            data.x_val,
            data.y_val,
            finetune=dataclasses.replace(train, distill=args.distill, temperature=args.temperature),
            seed=seed,
            initial_state=init,
        )
        for label in args.metrics:
            metric, scope = label.split("_")
            parts: list[Any] = [part, seed, label, args.target, args.fraction, meta["key"]]
            if args.distill:
                parts.append({"distill": args.distill, "temperature": args.temperature})
            if args.align > 1:
                parts.append({"align": args.align})
            if args.max_test:
                parts.append({"max_test": args.max_test})
            if _training(setup["train"], args) != setup["train"]:
                parts.append({"train": common.config_key(train)})
            key = json.dumps(parts)
            if key in done:
                runs.append(done[key])
                continue
            method = DropNetPruning(
                metric=metric, scope=scope, fraction=args.fraction, align=args.align
            )
            start = time.perf_counter()
            points = [
                {
                    "units_remaining": 1.0,
                    "val_accuracy": meta["val_accuracy"],
                    "test_accuracy": meta["test_accuracy"],
                    "sparsity": 0.0,
                }
            ]
            dense_prunable = sum(p.numel() for p in _prunable(dense))
            for step in method.rounds(dense, args.target, context):
                points.append(
                    {
                        "units_remaining": step.units_remaining,
                        "val_accuracy": step.val_accuracy,
                        "test_accuracy": evaluate(step.model, data.x_test, data.y_test)[1],
                        "sparsity": 1
                        - sum(p.numel() for p in _prunable(step.model)) / dense_prunable,
                        "epochs": step.epochs,
                    }
                )
                print(f"  {label} round {step.index}: {json.dumps(points[-1])}", flush=True)
            run = {
                "key": key,
                "part": part,
                "seed": seed,
                "metric": label,
                "points": points,
                "seconds": time.perf_counter() - start,
                "max_train": max_train,
            }
            _log(run)
            print(json.dumps({k: v for k, v in run.items() if k != "key"}), flush=True)
            runs.append(run)
    return runs


def _training(base: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    """The part's training recipe with ``--lr``, ``--lr-schedule``, ``--patience`` and
    ``--epochs`` applied."""
    return dataclasses.replace(
        base,
        epochs=base.epochs if args.epochs is None else args.epochs,
        lr=base.lr if args.lr is None else args.lr,
        lr_schedule=args.lr_schedule,
        patience=base.patience if args.patience is None else args.patience,
    )


def _prunable(net: torch.nn.Module) -> list[torch.Tensor]:
    from ensprune.models import prunable_parameters

    return list(prunable_parameters(net).values())


# Hidden widths of Model A-shaped networks: the dense one and three with 32 units (60 % removed).
CAPACITY_WIDTHS = [(40, 40), (24, 8), (20, 12), (16, 16)]
# DropNet's recipe (early stopping, then lr / 10) and a stronger one: cosine lr over a fixed
# budget at a higher lr, distilled from the dense network of the same recipe.
CAPACITY_RECIPES: dict[str, tuple[TrainConfig, float | None]] = {
    "rounds": (SETUPS["model_a"]["train"], 0.1),
    "cosine+KD": (
        TrainConfig(epochs=60, batch_size=128, lr=3e-3, patience=0, lr_schedule="cosine"),
        None,
    ),
}


def _mlp(widths: tuple[int, ...], seed: int) -> SequentialNet:
    layers: list[dict[str, Any]] = [{"type": "flatten"}]
    fan_in = 28 * 28
    for width in widths:
        layers += [{"type": "linear", "in": fan_in, "out": width}, {"type": "relu"}]
        fan_in = width
    layers.append({"type": "linear", "in": fan_in, "out": 10})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_from_layers(layers, (1, 28, 28))


def capacity(args: argparse.Namespace) -> str:
    """Test accuracy of FC40-FC40 and of 32-unit networks trained from scratch, two recipes."""
    done = _logged()
    rows = []
    for seed in args.seeds:
        data = common.load("mnist", args.data_dir, seed)
        for recipe, (base, anneal) in CAPACITY_RECIPES.items():
            keys = [
                json.dumps(["capacity", seed, recipe, list(w), common.config_key(base), anneal])
                for w in CAPACITY_WIDTHS
            ]
            if all(key in done for key in keys):  # the dense teacher is only needed to retrain
                rows += [done[key] for key in keys]
                continue
            teacher = None
            for widths, key in zip(CAPACITY_WIDTHS, keys, strict=True):
                net = _mlp(widths, seed)
                distill = recipe.endswith("KD") and teacher is not None
                cfg = dataclasses.replace(base, seed=seed, distill=0.7 if distill else 0.0)
                context = PruningContext(
                    data.x_train, data.y_train, data.x_val, data.y_val, seed=seed, teacher=teacher
                )
                start = time.perf_counter()
                finetune(net, {}, context, cfg, desc=f"{widths}", anneal=anneal)
                if teacher is None:
                    teacher = net  # the dense network teaches the small ones
                row = {
                    "key": key,
                    "part": "capacity",
                    "seed": seed,
                    "recipe": recipe,
                    "widths": list(widths),
                    "distilled": distill,
                    "test_accuracy": evaluate(net, data.x_test, data.y_test)[1],
                    "seconds": time.perf_counter() - start,
                }
                print(json.dumps({k: v for k, v in row.items() if k != "key"}), flush=True)
                _log(row)
                rows.append(row)
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        f"- Command: `{common.command_line()}`",
        f"- Machine: {common.machine()}; run {common.today()}",
        f"- MNIST, full training split, seed(s) {', '.join(map(str, seeds))}; every network "
        "trained from scratch. *rounds*: DropNet's round recipe (Adam lr 1e-3 to early stopping, "
        "patience 5, then lr / 10). *cosine+KD*: Adam lr 3e-3 with cosine decay over 60 epochs, "
        "no early stopping; the 32-unit networks distil from the dense FC40-FC40 of that recipe "
        "(α = 0.7, T = 4). Cells: test accuracy % (mean ± std over seeds), in brackets the "
        "points lost against the dense network of the same recipe. The target needs a loss of "
        "at most 0.5 points with 32 of the 80 hidden units.",
        "",
        "| hidden widths | units | " + " | ".join(CAPACITY_RECIPES) + " |",
        "|---|---|" + "---|" * len(CAPACITY_RECIPES),
    ]
    for widths in CAPACITY_WIDTHS:
        cells = []
        for recipe in CAPACITY_RECIPES:
            mine = [r for r in rows if r["recipe"] == recipe and tuple(r["widths"]) == widths]
            dense = [
                r
                for r in rows
                if r["recipe"] == recipe and tuple(r["widths"]) == CAPACITY_WIDTHS[0]
            ]
            lost = statistics.mean(d["test_accuracy"] for d in dense) - statistics.mean(
                m["test_accuracy"] for m in mine
            )
            cell = common.mean_std([m["test_accuracy"] for m in mine])
            cells.append(cell if widths == CAPACITY_WIDTHS[0] else f"{cell} ({-lost * 100:+.2f})")
        lines.append(
            f"| {'-'.join(map(str, widths))} | {sum(widths)} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def curve_table(part: str, runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    setup = SETUPS[part]
    seeds = sorted({r["seed"] for r in runs})
    n_points = max(len(r["points"]) for r in runs)
    header_units = []
    for i in range(n_points):
        values = [r["points"][i]["units_remaining"] for r in runs if len(r["points"]) > i]
        header_units.append(f"{statistics.mean(values):.0%}")
    dense = [r["points"][0]["test_accuracy"] for r in runs if r["metric"] == runs[0]["metric"]]
    cfg = _training(setup["train"], args)
    budget = (
        f"trains {cfg.epochs} epochs (Adam lr {cfg.lr}, {cfg.lr_schedule} lr, batch "
        f"{cfg.batch_size}, no early stopping"
        if cfg.patience == 0
        else f"trains to early stopping (Adam lr {cfg.lr}, batch {cfg.batch_size}, patience "
        f"{cfg.patience}, at most {cfg.epochs} epochs"
        + (f", {cfg.lr_schedule} lr" if cfg.lr_schedule != "constant" else "")
    )
    lines = [
        f"- Command: `{common.command_line()}`",
        f"- Machine: {common.machine()}; run {common.today()}",
        f"- Dense {part} test accuracy {common.mean_std(dense)} % over seed(s) "
        f"{', '.join(map(str, seeds))}"
        + (
            f"; training subsample of {runs[0]['max_train']:,} images"
            if runs[0]["max_train"]
            else "; full training split (54,000 images, 6,000 for validation)"
        )
        + ".",
        f"- The dense network and every round train with one recipe. Every round drops "
        f"{args.fraction:.0%} of the remaining hidden units, resets to θ₀ and {budget}"
        + (f", images augmented with `{args.augment}`" if args.augment else "")
        + common.distill_note(args)
        + "). Cells: test accuracy % (mean ± std over "
        "seeds) after each round; the header gives the share of hidden units remaining.",
        "- *Within 0.5 pt (test curve)*: the largest share of units removed whose test accuracy "
        "is at most 0.5 points below the dense network's, read off the curve as in the paper's "
        "figures (an oracle: it looks at test data). *Chosen on val*: the last round whose "
        "validation accuracy is at most 0.5 points below the dense network's (no test data "
        "involved), its share removed and its test accuracy change. Both are means over seeds.",
        "",
        "| metric | "
        + " | ".join(header_units)
        + " | within 0.5 pt (test curve): removed | chosen on val: removed | test Δ (points) |",
        "|---|" + "---|" * (n_points + 3),
    ]
    for label in args.metrics:
        group = [r for r in runs if r["metric"] == label]
        if not group:
            continue
        cells = []
        for i in range(n_points):
            values = [r["points"][i]["test_accuracy"] for r in group if len(r["points"]) > i]
            cells.append(common.mean_std(values) if values else "")
        removed, delta, oracle = [], [], []
        for r in group:
            base = r["points"][0]
            within = [p for p in r["points"] if p["test_accuracy"] >= base["test_accuracy"] - 0.005]
            oracle.append(max(1 - p["units_remaining"] for p in within))
            ok = [p for p in r["points"] if p["val_accuracy"] >= base["val_accuracy"] - 0.005]
            chosen = ok[-1]
            removed.append(1 - chosen["units_remaining"])
            delta.append(chosen["test_accuracy"] - base["test_accuracy"])
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {common.mean_std(oracle)} % | {common.mean_std(removed)} % | "
            f"{statistics.mean(delta) * 100:+.2f} |"
        )
    return "\n".join(lines)


def latency(args: argparse.Namespace) -> str:
    """DropNet-compacted LeNet-300-100 after every round, timed side by side with the dense one."""
    from bench_weight_pruning import dense_config

    seed = args.seeds[0]
    data = common.load("mnist", args.data_dir, seed)
    dense_cfg = dense_config(seed)
    dense, init, meta = common.dense_checkpoint("lenet300", data, "mnist", seed, dense_cfg, None)
    train = TrainConfig(**{**SETUPS["model_a"]["train"].__dict__, "seed": seed})
    context = PruningContext(
        data.x_train,
        data.y_train,
        data.x_val,
        data.y_val,
        finetune=train,
        seed=seed,
        initial_state=init,
    )
    # The library defaults (min, global, p = 0.2, reset to θ₀), with --align.
    method = DropNetPruning(align=args.align)
    shape = tuple(data.input_shape)
    macs_dense = count_macs(dense, shape)
    kappa_ok = True
    rows = []
    start = time.perf_counter()
    for step in method.rounds(dense, args.latency_target, context):
        kappa_ok = kappa_ok and step.val_accuracy >= method.kappa * meta["val_accuracy"]
        small = step.model
        # Interleave the two networks so background load hits both alike; median of medians.
        timings: dict[tuple[str, int], list[float]] = {}
        for _ in range(7):
            for name, net in (("dense", dense), ("compacted", small)):
                for batch in (1, 256):
                    timings.setdefault((name, batch), []).append(
                        measure_latency_ms(
                            net, shape, batch_size=batch, warmup=10, repeats=30, threads=1
                        )
                    )
        lat = {f"{k[0]}_b{k[1]}": statistics.median(v) for k, v in timings.items()}
        macs = count_macs(small, shape)
        report = measure_model(small, reference=dense, latency=False)
        row = {
            "key": "latency",
            "round": step.index,
            "units_remaining": step.units_remaining,
            "widths": [spec["out"] for spec in small.layers if spec["type"] == "linear"],
            "test_accuracy": evaluate(small, data.x_test, data.y_test)[1],
            "val_accuracy": step.val_accuracy,
            "kappa_ok": kappa_ok,
            "macs": macs,
            "mac_reduction": macs_dense / macs,
            "file_bytes": report["file_bytes"],
            "latency": lat,
            "speedup_b1": lat["dense_b1"] / lat["compacted_b1"],
            "speedup_b256": lat["dense_b256"] / lat["compacted_b256"],
        }
        _log(row)
        print(json.dumps(row), flush=True)
        rows.append(row)
    seconds = time.perf_counter() - start
    dense_report = measure_model(dense, latency=False)
    dense_b256 = statistics.median(r["latency"]["dense_b256"] for r in rows)
    dense_b1 = statistics.median(r["latency"]["dense_b1"] for r in rows)
    chosen = [r for r in rows if r["kappa_ok"]]
    lines = [
        f"- Command: `{common.command_line()}`",
        f"- Machine: {common.machine()}; run {common.today()}; latency with 1 torch thread, "
        "dense and compacted interleaved 7 times (10 warm-up + 30 timed passes each), median.",
        "- DropNet with the library defaults (min, global, p = 0.2, reset to θ₀, training as in "
        f"Model A, align = {args.align}) on the cached dense LeNet-300-100 of seed {seed}, every round down to "
        f"{args.latency_target:.0%} units removed ({len(rows)} rounds, {seconds / 60:.0f} min "
        "including timing). Each round's compacted network is timed next to the dense one.",
        f'- `make_method("dropnet", align={args.align}).prune(...)` (κ = 0.98 on validation '
        "accuracy) returns round "
        + (f"{chosen[-1]['round']}" if chosen else "0 (the dense network)")
        + ". Speedup ratio = measured speedup at batch 256 / MAC reduction (target ≥ 0.8).",
        "",
        "| round | hidden units left | layers | test acc % | MACs | MAC reduction | file KiB | "
        "b1 ms | b256 ms | speedup b256 | speedup ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| dense | 100% | 784-300-100-10 | {meta['test_accuracy'] * 100:.2f} | {macs_dense:,} | "
        f"1.00× | {dense_report['file_bytes'] / 1024:.0f} | {dense_b1:.3f} | {dense_b256:.3f} "
        "| 1.00× | - |",
    ]
    for r in rows:
        lines.append(
            f"| {r['round']} | {r['units_remaining']:.0%} | 784-{'-'.join(map(str, r['widths']))} "
            f"| {r['test_accuracy'] * 100:.2f} | {r['macs']:,} | {r['mac_reduction']:.2f}× | "
            f"{r['file_bytes'] / 1024:.0f} | {r['latency']['compacted_b1']:.3f} | "
            f"{r['latency']['compacted_b256']:.3f} | {r['speedup_b256']:.2f}× | "
            f"{r['speedup_b256'] / r['mac_reduction']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    for part in args.parts:
        if part == "capacity":
            text = capacity(args)
            title = "Model A capacity: 32-unit networks trained from scratch"
        elif part == "latency":
            text = latency(args)
            title = "DropNet-compacted LeNet-300-100: measured CPU speed"
            title += f" (align {args.align})" if args.align > 1 else ""
        else:
            text = curve_table(part, curves(part, args), args)
            title = f"DropNet on {SETUPS[part]['title']}"
            title += f" ({args.label})" if args.label else ""
        print(text, flush=True)
        if not args.no_write:
            common.write_subsection(title, text)


if __name__ == "__main__":
    main()
