"""Learned-ratio pruning (``adaptive``) on the 784-512-512-10 MLP / MNIST, from several r0.

In one run: train the dense network (timed), then prune it with ``adaptive`` from each initial
ratio r0, each with the same epoch budget (timed), and report the realised hard sparsity, the
test accuracy and the pruning time against the dense training time. Targets: at least 95 % hard
sparsity at no less than 98.1 % test accuracy from every r0, each in at most twice the dense
training time.

Example:
    OMP_NUM_THREADS=1 nice python benchmarks/bench_adaptive.py --data-dir "$ENSPRUNE_DATA_DIR"
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _pruning_common as common
from _results import update_subsection

from ensprune.models import TrainConfig, build_seeded, count_parameters, evaluate
from ensprune.pruning import PruningContext, finetune, make_method

SECTION = "## Learned ratio and evolutionary pruning (issue 14)"
SUBSECTION = "### adaptive: learned ratio on MLP 784-512-512-10 / MNIST"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=common.data_dir_default())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--r0", type=float, nargs="+", default=[0.1, 0.5, 0.9])
    parser.add_argument("--target", type=float, default=0.97, help="the regulariser's target")
    parser.add_argument("--reg", type=float, default=100.0, help="λ of λ(target - r)²")
    parser.add_argument("--r-lr", type=float, default=2e-3)
    parser.add_argument("--tau0", type=float, default=0.05)
    parser.add_argument("--hard-share", type=float, default=0.25)
    parser.add_argument("--dense-epochs", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=12, help="adaptive's epoch budget")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-train", type=int, default=None, help="subsample MNIST's train split")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    data = common.load("mnist", args.data_dir, args.seed, args.max_train)
    dense = build_seeded("mlp_512", data.input_shape, data.num_classes, args.seed)
    config = TrainConfig(epochs=args.dense_epochs, batch_size=128, lr=args.lr, patience=4)
    base = PruningContext(data.x_train, data.y_train, data.x_val, data.y_val, seed=args.seed)
    start, cpu = time.perf_counter(), time.process_time()
    history = finetune(dense, {}, base, config, desc="dense", anneal=0.1)
    dense_seconds = time.perf_counter() - start
    dense_cpu = time.process_time() - cpu
    dense_acc = evaluate(dense, data.x_test, data.y_test)[1]
    logging.info("dense: %.2f %% in %.0f s", 100 * dense_acc, dense_seconds)
    context = dataclasses.replace(base, finetune=dataclasses.replace(config, epochs=args.epochs))
    rows = []
    for r0 in args.r0:
        method = make_method(
            "adaptive",
            r0=r0,
            reg=args.reg,
            r_lr=args.r_lr,
            tau0=args.tau0,
            hard_share=args.hard_share,
        )
        start, cpu = time.perf_counter(), time.process_time()
        result = method.prune(dense, args.target, context)
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu
        acc = evaluate(result.model, data.x_test, data.y_test)[1]
        sparsity = count_parameters(result.model).sparsity
        rows.append((r0, result.info, sparsity, acc, seconds, cpu_seconds))
        logging.info("r0 %.1f: sparsity %.4f, accuracy %.4f, %.0f s", r0, sparsity, acc, seconds)
        summary = {"r0": r0, "learned_ratio": result.info["learned_ratio"], "sparsity": sparsity}
        summary |= {"test_accuracy": acc, "dense_test_accuracy": dense_acc, "seconds": seconds}
        print(json.dumps(summary), flush=True)  # one JSON line per r0 (reproduce.py reads it)
    if not args.no_write:
        write(args, data, dense_acc, (dense_seconds, dense_cpu), history.epochs_run, rows)


def write(args, data, dense_acc, dense_time, dense_epochs, rows) -> None:  # type: ignore[no-untyped-def]
    dense_seconds, dense_cpu = dense_time
    lines = [
        f"Command: `OMP_NUM_THREADS=1 nice {common.command_line()}`  ",
        f"Machine: {common.machine()}; {common.today()}.  ",
        f"MNIST: {len(data.x_train)} training / {len(data.x_val)} validation / "
        f"{len(data.x_test)} test images (seed {args.seed}). Dense `mlp_512`: Adam lr {args.lr}, "
        f"batch 128, early stopping then a stage at lr/10: {dense_epochs} epochs, "
        f"**{100 * dense_acc:.2f} %** test accuracy in **{dense_seconds:.0f} s** wall, "
        f"{dense_cpu:.0f} s CPU (the 2 cores are shared, so CPU time is the fairer clock).  ",
        f"`adaptive` from the dense network: budget {args.epochs} epochs "
        f"(hard mask for the last {args.hard_share:.0%}), target {args.target} "
        f"(regulariser λ = {args.reg}), r_lr {args.r_lr}, tau0 {args.tau0}; all measured in this "
        "one run.",
        "",
        "| r0 | learned r | realised hard sparsity | test accuracy | wall (s) | wall / dense | CPU (s) | CPU / dense | r after each soft epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ok = True
    for r0, info, sparsity, acc, seconds, cpu_seconds in rows:
        ratio = seconds / dense_seconds
        cpu_ratio = cpu_seconds / dense_cpu
        history = ", ".join(f"{r:.3f}" for r in info["ratio_history"])
        lines.append(
            f"| {r0} | {info['learned_ratio']:.4f} | {100 * sparsity:.2f} % | "
            f"{100 * acc:.2f} % | {seconds:.0f} | {ratio:.2f} | {cpu_seconds:.0f} | "
            f"{cpu_ratio:.2f} | {history} |"
        )
        ok = ok and sparsity >= 0.95 and acc >= 0.981 and cpu_ratio <= 2.0
    verdict = "**met**" if ok else "**not met**"
    lines += [
        "",
        f"Target (>= 95 % hard sparsity at >= 98.1 % test accuracy from every r0, each in at most "
        f"twice the dense training's CPU time): {verdict}.",
    ]
    update_subsection(SECTION, SUBSECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
