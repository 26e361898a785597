"""Second-order and matrix pruning methods: one-shot accuracy, OBS cost, accuracy vs latency.

Parts (``--parts``):

- ``oneshot``: MLP 784-40-20-10 (``mlp_40_20``) on MNIST, one dense checkpoint per seed, pruned
  one-shot to 95 % sparsity with no fine-tuning by magnitude, OBD (each curvature), K-FAC, EKFAC
  and layer-wise OBS; test accuracy, seconds to score and prune.
- ``obs-cost``: time and memory bound of layer-wise OBS on a 784 -> 300 layer (LeNet-300-100's
  first) at 90 / 95 / 99 % sparsity.
- ``matrix``: LeNet-300-100 on MNIST (the dense recipe of ``bench_weight_pruning.py``):
  ``lowrank`` and ``pca`` at several budgets / variance shares and ``randmm`` at several ``c``,
  without fine-tuning; test accuracy, parameters, MACs and CPU latency (batch 256 and 1, one
  thread, median of repeats), the dense network timed in the same run; seconds to prune.

Results are appended to ``benchmarks/_cache/second_order.jsonl`` (a re-run skips points already
measured) and the tables in ``benchmarks/RESULTS.md`` are rewritten from every measured point.

Example:
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_second_order.py --parts oneshot --seeds 0 1 2
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
from _results import update_subsection

from ensprune.models import TrainConfig, evaluate
from ensprune.pruning import PruningContext, make_method, measure_model

SECTION = "## Second-order and matrix pruning (issue 13)"
LOG = common.CACHE / "second_order.jsonl"
DENSE = TrainConfig(epochs=40, batch_size=128, lr=1e-3, patience=5)
ONESHOT: dict[str, tuple[str, dict[str, Any]]] = {
    "magnitude": ("magnitude", {}),
    "obd (empirical Fisher)": ("obd", {"fisher": "empirical"}),
    "obd (true Fisher)": ("obd", {"fisher": "true"}),
    "obd (Hutchinson Hessian)": ("obd", {"fisher": "hutchinson"}),
    "kfac (OBD saliency)": ("kfac", {"saliency": "obd"}),
    "kfac (OBS saliency + update)": ("kfac", {"saliency": "obs"}),
    "ekfac (OBD saliency)": ("ekfac", {"saliency": "obd"}),
    "ekfac (OBS saliency + update)": ("ekfac", {"saliency": "obs"}),
    "obs (layer-wise, OBC)": ("obs", {}),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=common.data_dir_default())
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["oneshot"],
        choices=["oneshot", "obs-cost", "matrix", "matrix-resnet"],
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sparsity", type=float, default=0.95)
    parser.add_argument("--methods", nargs="+", default=list(ONESHOT), choices=list(ONESHOT))
    parser.add_argument("--samples", type=int, default=1024, help="calibration samples")
    parser.add_argument(
        "--max-train", type=int, default=None, help="subsample MNIST's train split (quick checks)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--resnet-finetune-epochs",
        type=int,
        default=1,
        help="matrix-resnet: epochs of fine-tuning (cosine lr) after each low-rank factorisation",
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    return parser.parse_args(argv)


def _log(row: dict[str, Any]) -> None:
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def _done() -> dict[str, dict[str, Any]]:
    if not LOG.exists():
        return {}
    rows = [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()]
    return {row["key"]: row for row in rows}


def oneshot(args: argparse.Namespace) -> str:
    done = _done()
    rows = []
    for seed in args.seeds:
        data = common.load("mnist", args.data_dir, seed, args.max_train)
        dense, _, meta = common.dense_checkpoint(
            "mlp_40_20", data, "mnist", seed, dataclasses.replace(DENSE, seed=seed), args.max_train
        )
        print(f"seed {seed}: dense test accuracy {meta['test_accuracy']:.4f}", flush=True)
        context = PruningContext(
            data.x_train,
            data.y_train,
            data.x_val,
            data.y_val,
            seed=seed,
            finetune=TrainConfig(epochs=0),
        )
        for label in args.methods:
            name, knobs = ONESHOT[label]
            extra = {"samples": args.samples} if name != "magnitude" else {}
            key = json.dumps(
                ["oneshot", seed, label, args.sparsity, extra, meta["key"]], sort_keys=True
            )
            if key in done:
                rows.append(done[key])
                continue
            method = make_method(name, **knobs, **extra, schedule="oneshot")
            start = time.perf_counter()
            result = method.prune(dense, args.sparsity, context)
            seconds = time.perf_counter() - start
            report = measure_model(result.model, reference=dense, latency=False)
            row = {
                "key": key,
                "part": "oneshot",
                "seed": seed,
                "method": label,
                "sparsity": report["sparsity"],
                "test_accuracy": evaluate(result.model, data.x_test, data.y_test)[1],
                "dense_test_accuracy": meta["test_accuracy"],
                "seconds": seconds,
            }
            print(json.dumps({k: v for k, v in row.items() if k != "key"}), flush=True)
            _log(row)
            rows.append(row)
    return oneshot_table(rows, args)


def oneshot_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    dense = {row["seed"]: row["dense_test_accuracy"] for row in rows}
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["method"]].append(row)
    lines = [
        f"- Command: `{common.command_line()}`",
        f"- Machine: {common.machine()}; run {common.today()}",
        f"- Dense MLP 784-40-20-10 (one checkpoint per seed, seeds "
        f"{', '.join(str(s) for s in sorted(dense))}; Adam lr 1e-3 then 1e-4 to early stopping): "
        f"test accuracy {common.mean_std([dense[s] for s in sorted(dense)])} %.",
        f"- One-shot to {args.sparsity:.0%} sparsity (global threshold with the library's "
        f"per-layer cap), no fine-tuning; curvature from {args.samples} training samples "
        "(seeded); accuracy on the 10,000 MNIST test images, mean ± std over seeds.",
        "",
        "| method | measured sparsity | test accuracy % | seconds to score and prune |",
        "|---|---|---|---|",
    ]
    for label in ONESHOT:
        group = groups.get(label)
        if not group:
            continue
        sparsity = sum(r["sparsity"] for r in group) / len(group)
        seconds = sum(r["seconds"] for r in group) / len(group)
        lines.append(
            f"| {label} | {sparsity:.2%} | {common.mean_std([r['test_accuracy'] for r in group])}"
            f" | {seconds:.1f} |"
        )
    return "\n".join(lines)


def obs_cost(args: argparse.Namespace) -> str:
    from ensprune.pruning.obs import obc_prune_rows

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 785, generator=gen)
    x[:, -1] = 1.0
    hessian = 2 * x.T @ x / x.shape[0]
    weight = torch.randn(300, 785, generator=gen) * 0.05
    lines = [
        f"- Command: `{common.command_line()}`",
        f"- Machine: {common.machine()}; run {common.today()}",
        "- One 784 -> 300 Linear layer (LeNet-300-100's first; bias as the 785th, never pruned "
        "column), H from 4,096 random inputs; every row loses the same count. Memory: the "
        "rows run in batches whose inverses take at most the stated bound (plus one 785 x 785 "
        "inverse and the weights).",
        "",
        "| sparsity | seconds | row batch | bound on inverse memory (MiB) |",
        "|---|---|---|---|",
    ]
    from ensprune.pruning import obs as obs_module

    batch = max(1, obs_module.ROW_BATCH_BYTES // (4 * 785 * 785))
    for sparsity in (0.9, 0.95, 0.99):
        counts = torch.full((300,), round(sparsity * 784))
        start = time.perf_counter()
        obc_prune_rows(weight, hessian, counts, 0.01, frozen=1)
        seconds = time.perf_counter() - start
        print(f"obs-cost {sparsity}: {seconds:.1f} s", flush=True)
        lines.append(
            f"| {sparsity:.0%} | {seconds:.1f} | {batch} | {4 * batch * 785 * 785 / 2**20:.0f} |"
        )
    return "\n".join(lines)


MATRIX: list[tuple[str, str, float, dict[str, Any]]] = [
    ("dense", "", 0.0, {}),
    *[("lowrank", f"lowrank, budget {s:.0%} removed", s, {}) for s in (0.5, 0.7, 0.8, 0.9, 0.95)],
    *[("lowrank", f"lowrank, energy {e}", 0.0, {"energy": e}) for e in (0.9, 0.95, 0.99)],
    *[("pca", f"pca, variance {v}", 0.0, {"variance": v}) for v in (0.9, 0.95, 0.99)],
    *[("pca", f"pca, budget {s:.0%} removed", s, {}) for s in (0.1, 0.15)],
    *[("randmm", f"randmm, c = {c}", 0.0, {"samples": c}) for c in (392, 196, 98, 49)],
]


def matrix(args: argparse.Namespace) -> str:
    from ensprune.models import count_macs, count_parameters

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_weight_pruning import dense_config

    seed = args.seeds[0]
    data = common.load("mnist", args.data_dir, seed, args.max_train)
    dense, _, meta = common.dense_checkpoint(
        "lenet300", data, "mnist", seed, dense_config(seed), args.max_train
    )
    print(f"lenet300 seed {seed}: dense test accuracy {meta['test_accuracy']:.4f}", flush=True)
    context = PruningContext(
        data.x_train,
        data.y_train,
        data.x_val,
        data.y_val,
        seed=seed,
        finetune=TrainConfig(epochs=0),
    )
    shape = data.input_shape
    lines = [
        f"- Command: `{common.command_line()}`",
        f"- Machine: {common.machine()}; run {common.today()}",
        f"- LeNet-300-100 (seed {seed}, dense test accuracy {meta['test_accuracy']:.2%}), no "
        "fine-tuning after factorising or wrapping. Latency: the least of 5 medians of 10 forward "
        "passes (each after 5 warm-up passes), one thread, under `torch.inference_mode()`, every "
        "model timed in this run (the dense one first and last: its two timings show the noise "
        "of the shared machine; single medians of the same model varied 1.9-9.2 ms). MACs: multiply-accumulates of the layers as executed (for randmm: the c "
        "sampled products per output, plus nothing for the sampling itself).",
        "",
        "| model | test accuracy % | prunable weights | MACs | ms / batch of 256 | ms / sample "
        "(batch 1) | seconds to prune |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label, sparsity, knobs in [*MATRIX, ("dense", "dense (again)", 0.0, {})]:
        start = time.perf_counter()
        if name == "dense":
            model, info = dense, {}
        else:
            result = make_method(name, **knobs).prune(dense, sparsity, context)
            model, info = result.model, result.info
        seconds = time.perf_counter() - start
        accuracy = evaluate(model, data.x_test, data.y_test)[1]
        macs = count_macs(model, shape)
        if name == "randmm":
            macs = sum(
                c * m.out_features
                for n, m in model.named_modules()
                if (c := info["samples"].get(n))
            ) + sum(
                m.in_features * m.out_features
                for n, m in model.named_modules()
                if isinstance(m, torch.nn.Linear) and n not in info["samples"]
            )
        batch, single = _latencies(model, shape)
        label = label or "dense"
        row = {
            "part": "matrix",
            "model": label,
            "accuracy": accuracy,
            "macs": macs,
            "ms256": batch,
            "ms1": single,
            "seconds": seconds,
            "info": info,
        }
        print(json.dumps(row, default=str), flush=True)
        lines.append(
            f"| {label} | {accuracy:.2%} | {count_parameters(model).prunable:,} | {macs:,} | "
            f"{batch:.2f} | {single:.3f} | {seconds:.2f} |"
        )
    return "\n".join(lines)


RESNET_MATRIX: list[tuple[str, str, float, dict[str, Any]]] = [
    *[("lowrank", f"lowrank, budget {s:.0%} removed", s, {}) for s in (0.3, 0.5, 0.7)],
    *[("lowrank", f"lowrank, energy {e}", 0.0, {"energy": e}) for e in (0.9, 0.95, 0.99)],
    # the head (in_features = 4 x width) is ResNet-20's only Linear layer
    *[("randmm", f"randmm, c = {c}", 0.0, {"samples": c}) for c in (16, 8)],
]


def _latencies(model: torch.nn.Module, shape: tuple[int, ...]) -> tuple[float, float]:
    """Least of 5 medians at batch 256 and at batch 1: other jobs only ever add time."""
    from ensprune.models.measure import measure_latency_ms

    batch = min(
        measure_latency_ms(model, shape, batch_size=256, repeats=10, threads=1) for _ in range(5)
    )
    single = min(
        measure_latency_ms(model, shape, batch_size=1, repeats=10, threads=1) for _ in range(5)
    )
    return batch, single


def matrix_resnet(args: argparse.Namespace) -> str:
    """Low rank and randomized multiplication on the cached dense ResNet-20 of bench_resnet.py."""
    from bench_resnet import dense_network

    from ensprune.data import load_dataset
    from ensprune.models import count_macs, count_parameters
    from ensprune.pruning.finetune import finetune

    seed = args.seeds[0]
    data = load_dataset(
        "fashion_mnist", data_dir=args.data_dir, seed=seed, download=False, progress=False
    )
    recipe = argparse.Namespace(
        width=8, epochs=8, lr=2e-3, batch_size=128, seed=seed, max_train=None,
        dataset="fashion_mnist",
    )  # fmt: skip
    dense, meta = dense_network(recipe, data)
    shape = data.input_shape
    tune = TrainConfig(
        epochs=args.resnet_finetune_epochs, lr=1e-3, lr_schedule="cosine", patience=0
    )
    context = PruningContext(
        data.x_train, data.y_train, data.x_val, data.y_val, seed=seed, finetune=tune
    )
    lines = [
        f"- Command: `{common.command_line()}`",
        f"- Machine: {common.machine()}; run {common.today()}",
        "- ResNet-20 width 8 on Fashion-MNIST: the cached dense network of `bench_resnet.py` "
        f"(8 epochs, seed {seed}; trained in {meta['train_seconds']} s). Each factorised "
        f"network is measured as factorised, then after {args.resnet_finetune_epochs} epoch(s) "
        "of fine-tuning (Adam lr 1e-3, cosine) on the full training split. Latency as in the "
        "LeNet-300-100 table (least of 5 medians of 10 passes, one thread); the dense network "
        "timed first and last.",
        "",
        "| model | test accuracy % | after fine-tuning % | prunable weights | MACs | ms / batch "
        "of 256 | ms / sample (batch 1) | seconds to prune (+ fine-tune) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    entries = [("dense", "dense", 0.0, {}), *RESNET_MATRIX, ("dense", "dense (again)", 0.0, {})]
    for name, label, sparsity, knobs in entries:
        start = time.perf_counter()
        if name == "dense":
            model = dense
        else:
            model = make_method(name, **knobs).prune(dense, sparsity, context).model
        seconds = time.perf_counter() - start
        accuracy = evaluate(model, data.x_test, data.y_test)[1]
        tuned, tune_seconds = "", ""
        if name == "lowrank" and args.resnet_finetune_epochs:
            start = time.perf_counter()
            finetune(model, {}, context, desc=label)
            tune_seconds = f" (+ {time.perf_counter() - start:.0f})"
            tuned = f"{evaluate(model, data.x_test, data.y_test)[1]:.2%}"
        macs = count_macs(model, shape)
        batch, single = _latencies(model, shape)
        row = {"part": "matrix-resnet", "model": label, "accuracy": accuracy, "tuned": tuned,
               "macs": macs, "ms256": batch, "ms1": single, "seconds": seconds}  # fmt: skip
        print(json.dumps(row, default=str), flush=True)
        lines.append(
            f"| {label} | {accuracy:.2%} | {tuned or '-'} | {count_parameters(model).prunable:,} "
            f"| {macs:,} | {batch:.2f} | {single:.3f} | {seconds:.2f}{tune_seconds} |"
        )
    return "\n".join(lines)


PARTS = {
    "oneshot": ("MLP 784-40-20-10 on MNIST: one-shot 95 % without fine-tuning", oneshot),
    "obs-cost": ("Layer-wise OBS cost on a 784 -> 300 layer", obs_cost),
    "matrix": ("LeNet-300-100: low rank, PCA and randomized multiplication vs latency", matrix),
    "matrix-resnet": (
        "ResNet-20: low rank and randomized multiplication vs latency",
        matrix_resnet,
    ),
}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    for part in args.parts:
        title, fn = PARTS[part]
        text = fn(args)
        print(text)
        if not args.no_write:
            update_subsection(SECTION, f"### {title}", text)


if __name__ == "__main__":
    main()
