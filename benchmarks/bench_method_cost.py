"""Cost of each pruning method: seconds to score and prune, without fine-tuning, on one thread.

Every registered method that removes weights or structure is timed on two dense networks,
trained once and cached under ``benchmarks/_cache/``:

- LeNet-300-100 on MNIST (the dense recipe and cache of ``bench_weight_pruning.py``);
- ResNet-20 at width 8 on Fashion-MNIST (the dense recipe and cache of ``bench_resnet.py``).

Each method prunes a copy of the dense network to ``--sparsity`` with its default knobs and a
fine-tuning budget of zero epochs: the time is what the method needs to score (calibration
passes, curvature, eigendecompositions, SVDs, OBS solves) and to build the pruned network. The
realised sparsity and the test accuracy without fine-tuning are reported next to it.
``dropnet`` and ``apoz`` run with ``reset="none"`` (their default resets to θ₀ and retrains
every round, which is training, not scoring). Left out by default, with the reason in the
table's notes: ``adaptive`` and ``evolutionary`` (their search *is* training: learned ratios, a
GA whose fitness is a fine-tune; see their own benchmarks) and ``randmm`` (removes nothing).
A method that refuses a network (``pca`` on ResNet-20, whose only Linear layer is the head) is
listed with its one-line reason.

Example (the numbers in RESULTS.md):
    OMP_NUM_THREADS=1 nice python benchmarks/bench_method_cost.py --data-dir "$ENSPRUNE_DATA_DIR"
A quick check that it works (small training sets, short dense training, nothing written):
    OMP_NUM_THREADS=1 nice python benchmarks/bench_method_cost.py --max-train 2000 \\
        --dense-epochs 2 --methods magnitude eigendamage --no-write
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _pruning_common as common
from _results import update_subsection

from ensprune.errors import EnsPruneError
from ensprune.models import TrainConfig, evaluate
from ensprune.pruning import METHODS, PruningContext, make_method

SECTION = "## Second-order and matrix pruning (issue 13)"
SUBSECTION = "### Cost of each method: seconds to score and prune"
# Methods whose search is training, or that remove nothing: not timed unless asked for.
LEFT_OUT = {
    "adaptive": "trains a learned ratio: its cost is its training budget",
    "evolutionary": "a GA whose fitness is a masked fine-tune: its cost is its training budget",
    "randmm": "removes nothing: a randomized product at inference",
}
# Knobs that turn a method's training into plain scoring.
KNOBS: dict[str, dict[str, Any]] = {"dropnet": {"reset": "none"}, "apoz": {"reset": "none"}}
MODELS = ("lenet300", "resnet20")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=common.data_dir_default())
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    default_methods = [m for m in METHODS.names() if m not in LEFT_OUT]
    p.add_argument("--methods", nargs="+", default=default_methods, choices=METHODS.names())
    p.add_argument("--sparsity", type=float, default=0.9, help="target sparsity of every method")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1, help="timings per method (median reported)")
    p.add_argument("--max-train", type=int, default=None, help="subsample the training splits")
    p.add_argument(
        "--dense-epochs",
        type=int,
        default=None,
        help="dense training epochs (default: each dense recipe's own: 40 with early stopping "
        "for LeNet-300-100, 6 for ResNet-20)",
    )
    p.add_argument("--width", type=int, default=8, help="ResNet-20 width (channels of stage 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    return p.parse_args(argv)


def lenet(args: argparse.Namespace) -> tuple[torch.nn.Module, Any, str]:
    from bench_weight_pruning import dense_config

    data = common.load("mnist", args.data_dir, args.seed, args.max_train)
    config = dense_config(args.seed)
    if args.dense_epochs is not None:
        config = dataclasses.replace(config, epochs=args.dense_epochs)
    net, _, meta = common.dense_checkpoint(
        "lenet300", data, "mnist", args.seed, config, args.max_train
    )
    return net, data, f"LeNet-300-100 / MNIST (dense test accuracy {meta['test_accuracy']:.2%})"


def resnet(args: argparse.Namespace) -> tuple[torch.nn.Module, Any, str]:
    import bench_resnet

    data = common.load("fashion_mnist", args.data_dir, args.seed, args.max_train)
    recipe = argparse.Namespace(
        dataset="fashion_mnist",
        width=args.width,
        epochs=6 if args.dense_epochs is None else args.dense_epochs,
        lr=2e-3,
        batch_size=128,
        max_train=args.max_train,
        seed=args.seed,
    )
    net, _ = bench_resnet.dense_network(recipe, data)
    _, acc = evaluate(net, data.x_test, data.y_test)
    return (
        net,
        data,
        f"ResNet-20 width {args.width} / Fashion-MNIST (dense test accuracy {acc:.2%})",
    )


def time_method(
    name: str, net: torch.nn.Module, data: Any, args: argparse.Namespace
) -> dict[str, Any]:
    context = PruningContext(
        data.x_train,
        data.y_train,
        data.x_val,
        data.y_val,
        seed=args.seed,
        finetune=TrainConfig(epochs=0),
    )
    knobs = KNOBS.get(name, {})
    seconds = []
    result = None
    for _ in range(args.repeats):
        start = time.perf_counter()
        try:
            result = make_method(name, **knobs).prune(net, args.sparsity, context)
        except EnsPruneError as exc:
            return {"method": name, "knobs": knobs, "refused": str(exc)}
        seconds.append(time.perf_counter() - start)
    assert result is not None
    result.model.eval()
    _, acc = evaluate(result.model, data.x_test, data.y_test)
    row = {
        "method": name,
        "knobs": knobs,
        "seconds": statistics.median(seconds),
        "sparsity": float(result.info["sparsity"]),
        "test_accuracy": acc,
    }
    print(
        f"  {name:<12} {row['seconds']:8.2f} s  sparsity {row['sparsity']:.3f}  acc {acc:.4f}",
        flush=True,
    )
    return row


def table(title: str, rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{title}:",
        "",
        "| method | seconds to score and prune | realised sparsity | test accuracy, no fine-tuning |",
        "|---|---|---|---|",
    ]
    for r in rows:
        label = r["method"] + "".join(f", {k}={v}" for k, v in r["knobs"].items())
        if "refused" in r:
            lines.append(f"| {label} | refused: {r['refused']} | | |")
        else:
            lines.append(
                f"| {label} | {r['seconds']:.2f} | {r['sparsity']:.2%} | {r['test_accuracy']:.2%} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    builders = {"lenet300": lenet, "resnet20": resnet}
    sections = []
    for model in args.models:
        net, data, title = builders[model](args)
        net.eval()
        print(title, flush=True)
        rows = [time_method(name, net, data, args) for name in args.methods]
        sections.append(table(title, rows))
    left_out = [
        f"`{m}` ({LEFT_OUT.get(m, 'not in --methods')})"
        for m in METHODS.names()
        if m not in args.methods
    ]
    reduced = ""
    if args.max_train or args.dense_epochs is not None:
        epochs = "the recipe's" if args.dense_epochs is None else str(args.dense_epochs)
        reduced = (
            f" Reduced setting: training splits of {args.max_train or 'all'} samples, {epochs} "
            "dense training epochs: a check that the script works, not the measurement."
        )
    body = "\n".join(
        [
            f"- Command: `{common.command_line()}`",
            f"- Machine: {common.machine()}; run {common.today()}",
            f"- Every method prunes the same cached dense network to {args.sparsity:.0%} with its "
            "default knobs and no fine-tuning, timed with `time.perf_counter` around `prune()` "
            f"(median of {args.repeats}); calibration data (second-order methods, pca, "
            "eigendamage: 1024 or 2048 seeded training samples) included, test accuracy on the "
            f"full test set.{reduced}",
            f"- Not timed: {', '.join(left_out) or 'none'}.",
            "",
            "\n\n".join(sections),
        ]
    )
    print(body)
    if not args.no_write:
        update_subsection(SECTION, SUBSECTION, body)


if __name__ == "__main__":
    main()
