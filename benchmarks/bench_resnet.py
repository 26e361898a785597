"""ResNet-20 on Fashion-MNIST: weight pruning vs compacted filter pruning, measured on the CPU.

One dense ResNet-20 (cached under ``benchmarks/_cache/``), then, from it:

- LAMP and global magnitude pruning at 80 / 90 / 95 % weight sparsity (one shot, then fine-tuned
  with the masks enforced): a masked network, as large and as slow as the dense one;
- filter pruning with DropNet's ``min`` metric (drop the channels of lowest mean activation) at
  30 / 50 / 70 % of the channels of every layer removed, compacted through the dependency graph
  (residual additions tie channels together) and fine-tuned.

Each network's test accuracy, dense and effective MACs and CPU latency at batch 1 and 256 (median
and IQR, :func:`ensprune.models.measure`) are measured in the same run as the dense network's,
which is timed first and again last, so drift of a shared machine shows.

Targets: at 50 % of the channels removed, the batch-256 speedup is at least 0.8 x the MAC
reduction, and test accuracy is within 1 point of the dense network.

Example (the numbers in RESULTS.md; 2 shared cores, so one thread and a narrow network):
    OMP_NUM_THREADS=1 nice python benchmarks/bench_resnet.py --data-dir "$ENSPRUNE_DATA_DIR" \\
        --width 8 --epochs 6 --finetune-epochs 2 --write
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ensprune.data import load_dataset
from ensprune.models import TrainConfig, build_model, evaluate, measure, train_model
from ensprune.pruning import PruningContext, make_method
from ensprune.pruning.finetune import finetune as finetune_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import (
    bench_cache,
    command_line,
    machine_info,
    today,
    update_section,
    update_subsection,
)

HERE = Path(__file__).resolve().parent
CACHE = bench_cache()
SECTION = "## Any model: ResNet-20 on Fashion-MNIST (issue 11)"
WEIGHT_SPARSITIES = (0.80, 0.90, 0.95)
CHANNEL_SHARES = (0.30, 0.50, 0.70)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("ENSPRUNE_DATA_DIR"))
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--width", type=int, default=16, help="channels of the first stage (16 = paper)")
    p.add_argument("--epochs", type=int, default=15, help="dense training epochs (cosine lr)")
    p.add_argument("--finetune-epochs", type=int, default=3, help="fine-tuning epochs per network")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate of dense training")
    p.add_argument("--ft-lr", type=float, default=1e-3, help="Adam learning rate of fine-tuning")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-train", type=int, default=None, help="subsample the training split")
    p.add_argument("--max-test", type=int, default=None, help="subsample the test split")
    p.add_argument("--out", type=Path, default=None, help="rows as JSON (default: in the cache)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (training and timing)")
    p.add_argument("--repeats", type=int, default=15, help="timed blocks per latency")
    p.add_argument(
        "--parts",
        default="weight,filter",
        help="comma-separated: weight (LAMP, magnitude), filter (DropNet min, compacted), "
        "scratch (ResNet-20 at half the width trained from scratch with the dense recipe: the "
        "shapes of a 50 %% channel cut)",
    )
    p.add_argument(
        "--shares",
        type=float,
        nargs="+",
        default=list(CHANNEL_SHARES),
        help="filter part: shares of channels removed",
    )
    p.add_argument(
        "--fraction",
        type=float,
        default=None,
        help="filter part: share of the remaining channels DropNet drops per round, each round "
        "fine-tuned (default: the whole share in one round)",
    )
    p.add_argument(
        "--distill",
        type=float,
        default=0.0,
        help="filter part: distillation weight alpha of every fine-tuning (teacher: the dense net)",
    )
    p.add_argument(
        "--final-epochs",
        type=int,
        default=0,
        help="filter part: epochs of one more fine-tuning (cosine lr) after DropNet's last round",
    )
    p.add_argument("--write", action="store_true", help="write the section of RESULTS.md")
    p.add_argument(
        "--subsection",
        default=None,
        help="with --write: write the table as this ### subsection of the section instead",
    )
    return p.parse_args()


def dense_recipe(args: argparse.Namespace) -> TrainConfig:
    """The dense network's training recipe (also the from-scratch reference's)."""
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_schedule="cosine",
        patience=0,
        seed=args.seed,
    )


def seeded_resnet(args: argparse.Namespace, data: Any, width: int) -> torch.nn.Module:
    """An untrained ResNet-20 of ``width``, initialised from ``args.seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        return build_model("resnet20", data.input_shape, data.num_classes, width=width)


def dense_network(args: argparse.Namespace, data: Any) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained dense ResNet-20 and its meta, from the cache when it was trained before."""
    config = dense_recipe(args)
    key = json.dumps(
        ["resnet20", args.width, args.dataset, args.seed, args.max_train, repr(config)],
        sort_keys=True,
    )
    path = CACHE / f"resnet20-w{args.width}-{hashlib.sha1(key.encode()).hexdigest()[:10]}.pt"
    net = seeded_resnet(args, data, args.width)
    if path.is_file():
        payload = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(payload["state_dict"])
        return net, dict(payload["meta"])
    start = time.perf_counter()
    train_model(
        net, data.x_train, data.y_train, data.x_val, data.y_val, config, desc="dense", progress=True
    )
    meta = {"key": key, "train_seconds": round(time.perf_counter() - start, 1)}
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "meta": meta}, path)
    return net, meta


def scratch_row(args: argparse.Namespace, data: Any, dense: torch.nn.Module) -> dict[str, Any]:
    """ResNet-20 at half the width, trained from scratch with the dense network's recipe.

    A 50 % per-layer channel cut of width W has exactly the shapes of width W/2, so this is
    what those shapes reach with the dense network's own training budget: a capacity reference
    for the pruned network, not a pruning result.
    """
    config = dense_recipe(args)
    net = seeded_resnet(args, data, args.width // 2)
    start = time.perf_counter()
    train_model(net, data.x_train, data.y_train, data.x_val, data.y_val, config, desc="scratch")
    seconds = round(time.perf_counter() - start, 1)
    return row(
        f"width {args.width // 2} from scratch, {args.epochs} epochs",
        net,
        data,
        dense,
        args,
        {"method": "scratch", "train_seconds": seconds},
    )


def row(
    label: str,
    net: torch.nn.Module,
    data: Any,
    dense: torch.nn.Module,
    args: argparse.Namespace,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    m = measure(net, data.input_shape, reference=dense, threads=args.threads, repeats=args.repeats)
    _, acc = evaluate(net, data.x_test, data.y_test)
    out = {"network": label, "test_accuracy": acc, **m.to_dict(), **(extra or {})}
    print(
        f"{label:<28} acc {acc:.4f}  MACs {m.macs_dense:>11,} (eff {m.macs_effective:>11,})  "
        f"b1 {m.latency_ms(1):7.3f} ms  b256 {m.latency_ms(256):8.2f} ms",
        flush=True,
    )
    return out


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    data = load_dataset(
        args.dataset,
        data_dir=args.data_dir,
        seed=args.seed,
        max_train=args.max_train,
        max_test=args.max_test,
        download=False,
        progress=False,
    )
    print(f"train {len(data.y_train)}, val {len(data.y_val)}, test {len(data.y_test)}", flush=True)
    dense, meta = dense_network(args, data)
    rows = [row("dense", dense, data, dense, args, {"train_seconds": meta["train_seconds"]})]
    finetune = TrainConfig(
        epochs=args.finetune_epochs,
        batch_size=args.batch_size,
        lr=args.ft_lr,
        lr_schedule="cosine",
        patience=0,
        seed=args.seed,
        distill=args.distill,
    )
    context = PruningContext(
        data.x_train, data.y_train, data.x_val, data.y_val, finetune=finetune, seed=args.seed
    )
    if "weight" in parts:
        for name, params in (("lamp", {}), ("magnitude", {"scope": "global"})):
            for sparsity in WEIGHT_SPARSITIES:
                start = time.perf_counter()
                result = make_method(name, schedule="oneshot", **params).prune(
                    dense, sparsity, context
                )
                seconds = round(time.perf_counter() - start, 1)
                rows.append(
                    row(
                        f"{name} {sparsity:.0%} weights",
                        result.model,
                        data,
                        dense,
                        args,
                        {"method": name, "target": sparsity, "prune_seconds": seconds},
                    )
                )
    if "filter" in parts:
        for share in args.shares:
            method = make_method(
                "dropnet",
                metric="min",
                scope="layer",
                # default: one round drops the whole share at once, then trains
                fraction=args.fraction or max(args.shares),
                reset="none",
                kappa=0.0,
                anneal=None,
            )
            start = time.perf_counter()
            result = method.prune(dense, share, context)
            if args.final_epochs:
                final = dataclasses.replace(finetune, epochs=args.final_epochs)
                finetune_model(
                    result.model, {}, context.with_teacher(dense), config=final, desc="final"
                )
            seconds = round(time.perf_counter() - start, 1)
            rows.append(
                row(
                    f"dropnet min {share:.0%} channels"
                    + (f", {result.info.get('rounds')} rounds" if args.fraction else "")
                    + (f" + {args.final_epochs} epochs" if args.final_epochs else "")
                    + (f", distilled α={args.distill}" if args.distill else ""),
                    result.model,
                    data,
                    dense,
                    args,
                    {
                        "method": "dropnet",
                        "target": share,
                        "prune_seconds": seconds,
                        "unit_sparsity": result.info.get("unit_sparsity"),
                        "rounds": result.info.get("rounds"),
                    },
                )
            )
    if "scratch" in parts:
        rows.append(scratch_row(args, data, dense))
    rows.append(row("dense (again, last)", dense, data, dense, args))
    rounds = f"-f{args.fraction}" if args.fraction else ""
    rounds += f"-d{args.distill}" if args.distill else ""
    rounds += f"-e{args.final_epochs}" if args.final_epochs else ""
    out = args.out or CACHE / f"bench_resnet-w{args.width}-{'-'.join(sorted(parts))}{rounds}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1, default=str))
    print(f"rows: {out}")
    if args.write and args.subsection:
        update_subsection(SECTION, f"### {args.subsection}", report(rows, args, meta))
    elif args.write:
        update_section(SECTION, report(rows, args, meta))


def report(rows: list[dict[str, Any]], args: argparse.Namespace, meta: dict[str, Any]) -> str:
    dense = rows[0]
    last = rows[-1]
    lines = [
        f"Command: `OMP_NUM_THREADS={args.threads} nice {command_line()}`  ",
        f"Machine: {machine_info()}  ",
        f"Date: {today()}. Dense training took {meta['train_seconds']} s.",
        "",
        "| network | test acc | MACs (executed) | MACs (non-zero) | latency b1 ms (IQR) "
        "| latency b256 ms (IQR) | speedup b256 | MAC reduction |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speed = dense["latency_ms_b256"] / r["latency_ms_b256"]
        reduction = dense["macs_dense"] / r["macs_dense"]
        lines.append(
            f"| {r['network']} | {r['test_accuracy'] * 100:.2f} | {r['macs_dense']:,} "
            f"| {r['macs_effective']:,} | {r['latency_ms_b1']:.3f} ({r['latency_iqr_ms_b1']:.3f}) "
            f"| {r['latency_ms_b256']:.1f} ({r['latency_iqr_ms_b256']:.1f}) | {speed:.2f}x "
            f"| {reduction:.2f}x |"
        )
    lines.append("")
    half = [r for r in rows if r.get("method") == "dropnet" and r.get("target") == 0.5]
    if half:
        h = half[0]
        speed = dense["latency_ms_b256"] / h["latency_ms_b256"]
        reduction = dense["macs_dense"] / h["macs_dense"]
        gap = (dense["test_accuracy"] - h["test_accuracy"]) * 100
        lines += [
            "Targets at 50 % of channels removed (DropNet min, compacted):",
            f"- batch-256 speedup {speed:.2f}x vs MAC reduction {reduction:.2f}x: ratio "
            f"{speed / reduction:.2f} (target >= 0.8): {'met' if speed >= 0.8 * reduction else 'not met'}.",
            f"- test accuracy {h['test_accuracy'] * 100:.2f} % vs dense {dense['test_accuracy'] * 100:.2f} %: "
            f"{gap:+.2f} points lost (target <= 1): {'met' if gap <= 1.0 else 'not met'}.",
            f"- dense latency drift over the run: b256 {dense['latency_ms_b256']:.1f} ms first, "
            f"{last['latency_ms_b256']:.1f} ms last.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
