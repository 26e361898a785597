"""Evolved per-layer allocation against uniform magnitude, global magnitude and LAMP.

Same dense checkpoint per seed (cached), same sparsity, same one-shot pruning and the same
fine-tuning (``--finetune-epochs`` with early stopping, ending at lr/10) for every method; only
the per-layer allocation differs. Reports test error (mean ± std over seeds), the evolved
allocation, and the wall time of the evolutionary search. Results are appended to
``benchmarks/_cache/evolutionary.jsonl`` as they come (a re-run skips measured points).

``--model resnet20`` starts every seed from the one dense ResNet-20 that ``bench_resnet.py``
caches (``--resnet-width``, 8 cosine epochs on the whole training split of split seed 0): a
ResNet-20 trained per seed would take hours on 2 cores. The seeds then vary the pruning, the
search and the fine-tuning; every seed uses split seed 0, so validation never holds images the
dense network trained on, and ``--max-train`` subsamples the fine-tuning data of that split.

Example:
    OMP_NUM_THREADS=1 nice python benchmarks/bench_evolutionary.py --data-dir "$ENSPRUNE_DATA_DIR"
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _pruning_common as common
from _results import update_subsection

from ensprune.models import TrainConfig, count_parameters, evaluate
from ensprune.pruning import PruningContext, make_method

SECTION = "## Learned ratio and evolutionary pruning (issue 14)"
DENSE = TrainConfig(epochs=40, batch_size=128, lr=1e-3, patience=5)  # bench_weight_pruning's
BASELINES: dict[str, tuple[str, dict[str, Any]]] = {
    "uniform magnitude": ("magnitude", {"scope": "layer", "schedule": "oneshot"}),
    "global magnitude": ("magnitude", {"scope": "global", "schedule": "oneshot"}),
    "lamp": ("lamp", {"schedule": "oneshot"}),
}
LOG = common.CACHE / "evolutionary.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=common.data_dir_default())
    parser.add_argument("--model", default="lenet300")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.95, 0.98])
    parser.add_argument("--finetune-epochs", type=int, default=8)
    parser.add_argument("--max-train", type=int, default=None)
    parser.add_argument("--population", type=int, default=12)
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--eval-steps", type=int, default=50)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument(
        "--resnet-width",
        type=int,
        default=8,
        help="resnet20: width of bench_resnet.py's cached dense network (trained if missing)",
    )
    parser.add_argument(
        "--resnet-epochs", type=int, default=8, help="resnet20: dense training epochs (cosine)"
    )
    parser.add_argument(
        "--resnet-max-train",
        type=int,
        default=None,
        help="resnet20: subsample the dense network's training split (quick checks)",
    )
    parser.add_argument("--no-write", action="store_true")
    return parser.parse_args(argv)


def _key(args: argparse.Namespace, seed: int, sparsity: float, label: str) -> str:
    parts = [args.model, args.dataset, seed, sparsity, label, args.finetune_epochs, args.max_train]
    if args.model == "resnet20":
        parts.append(f"w{args.resnet_width}")
        if (args.resnet_epochs, args.resnet_max_train) != (8, None):  # keys of the 8-epoch rows
            parts.append(f"dense e{args.resnet_epochs} n{args.resnet_max_train}")
    if label == "evolutionary":
        parts += [args.population, args.generations, args.patience, args.eval_steps]
        parts.append("starts: poly, uniform, global, lamp")  # LAMP's allocation seeds the GA too
    return json.dumps(parts)


def _done() -> dict[str, dict[str, Any]]:
    if not LOG.is_file():
        return {}
    rows = [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()]
    return {row["key"]: row for row in rows}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    done = _done()
    methods = {
        **BASELINES,
        "evolutionary": (
            "evolutionary",
            {
                "population": args.population,
                "generations": args.generations,
                "patience": args.patience,
                "eval_steps": args.eval_steps,
                "n_jobs": args.n_jobs,
            },
        ),
    }
    dense_acc: dict[int, float] = {}
    for seed in args.seeds:
        if args.model == "resnet20":
            data = common.load(args.dataset, args.data_dir, 0, args.max_train)
            net, meta = resnet_dense(args, data)
        else:
            data = common.load(args.dataset, args.data_dir, seed, args.max_train)
            net, _, meta = common.dense_checkpoint(
                args.model, data, args.dataset, seed, DENSE, args.max_train
            )
        dense_acc[seed] = meta["test_accuracy"]
        finetune_cfg = TrainConfig(
            epochs=args.finetune_epochs, batch_size=128, lr=1e-3, patience=3, seed=seed
        )
        context = PruningContext(
            data.x_train, data.y_train, data.x_val, data.y_val, finetune=finetune_cfg, seed=seed
        )
        for sparsity in args.sparsities:
            for label, (name, knobs) in methods.items():
                key = _key(args, seed, sparsity, label)
                if key in done:
                    continue
                start = time.perf_counter()
                result = make_method(name, **knobs).prune(net, sparsity, context)
                seconds = time.perf_counter() - start
                row = {
                    "key": key,
                    "seed": seed,
                    "sparsity": sparsity,
                    "method": label,
                    "measured_sparsity": count_parameters(result.model).sparsity,
                    "test_accuracy": evaluate(result.model, data.x_test, data.y_test)[1],
                    "seconds": seconds,
                    "search_seconds": result.info.get("search_seconds"),
                    "layer_sparsity": result.info.get("layer_sparsity"),
                    "evaluations": result.info.get("evaluations"),
                    "dense_test_accuracy": meta["test_accuracy"],
                }
                print(json.dumps({k: v for k, v in row.items() if k != "key"}), flush=True)
                LOG.parent.mkdir(parents=True, exist_ok=True)
                with LOG.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                done[key] = row
    if not args.no_write:
        write(args, done, dense_acc)


def resnet_dense(args: argparse.Namespace, data: Any) -> tuple[torch.nn.Module, dict[str, Any]]:
    """bench_resnet.py's dense ResNet-20 (its defaults but ``--epochs 8``, as in RESULTS.md;
    ``--resnet-epochs`` and ``--resnet-max-train`` shrink it for quick checks) and a meta holding
    its test accuracy."""
    import bench_resnet

    recipe = argparse.Namespace(
        width=args.resnet_width,
        dataset=args.dataset,
        epochs=args.resnet_epochs,
        batch_size=128,
        lr=2e-3,
        seed=0,
        max_train=args.resnet_max_train,
    )
    net, meta = bench_resnet.dense_network(recipe, data)
    return net, {**meta, "test_accuracy": evaluate(net, data.x_test, data.y_test)[1]}


def _spread(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def allocation_text(layer_sparsity: list[float]) -> str:
    """Every layer's sparsity for a short network; range and head for a deep one."""
    if not layer_sparsity:
        return "-"
    if len(layer_sparsity) <= 6:
        return ", ".join(f"{v:.3f}" for v in layer_sparsity)
    body = layer_sparsity[:-1]
    return (
        f"{len(layer_sparsity)} layers: {min(body):.3f}-{max(body):.3f}, "
        f"median {statistics.median(body):.3f}, head {layer_sparsity[-1]:.3f}"
    )


def write(
    args: argparse.Namespace, done: dict[str, dict[str, Any]], dense: dict[int, float]
) -> None:
    labels = [*BASELINES, "evolutionary"]
    lines = [
        f"Command: `OMP_NUM_THREADS=1 nice {common.command_line()}`  ",
        f"Machine: {common.machine()}; {common.today()}.  ",
        f"{args.model} / {args.dataset}, seeds {args.seeds}, dense test error "
        f"{100 - 100 * statistics.mean(dense.values()):.2f} % (mean). Every method: one-shot "
        f"pruning of the same dense network, then {args.finetune_epochs} fine-tuning epochs "
        "(Adam lr 1e-3, early stopping, the last third at lr/10). evolutionary: population "
        f"{args.population}, at most {args.generations} generations, patience {args.patience}, "
        f"fitness after {args.eval_steps} masked steps on 2000 validation images."
        + (
            f" One dense ResNet-20 of width {args.resnet_width} (bench_resnet.py's, "
            f"{args.resnet_epochs} cosine epochs on "
            + (f"{args.resnet_max_train} images of" if args.resnet_max_train else "the whole")
            + " training split) for every seed; the seeds vary pruning, search and fine-tuning."
            if args.model == "resnet20"
            else ""
        ),
        "",
        "| sparsity | "
        + " | ".join(f"{m} test error (%)" for m in labels)
        + " | search time (s) | evolved layer sparsities (seed "
        f"{args.seeds[0]}) | verdict |",
        "|---|" + "---|" * (len(labels) + 3),
    ]
    for sparsity in args.sparsities:
        errors: dict[str, tuple[float, float]] = {}
        for label in labels:
            rows = [done.get(_key(args, s, sparsity, label)) for s in args.seeds]
            if any(r is None for r in rows):
                continue
            errors[label] = _spread([100 - 100 * r["test_accuracy"] for r in rows])  # type: ignore[index]
        evo_rows = [done.get(_key(args, s, sparsity, "evolutionary")) for s in args.seeds]
        search = [r["search_seconds"] for r in evo_rows if r]
        alloc = evo_rows[0]["layer_sparsity"] if evo_rows and evo_rows[0] else {}
        cells = [f"{errors[m][0]:.2f} ± {errors[m][1]:.2f}" if m in errors else "-" for m in labels]
        verdict = "-"
        if len(errors) == len(labels):
            best = min(BASELINES, key=lambda m: errors[m][0])
            evo, ref = errors["evolutionary"], errors[best]
            spread = max(evo[1], ref[1])
            if evo[0] < ref[0] - spread:
                verdict = f"better than {best}"
            elif evo[0] <= ref[0] + spread:
                verdict = f"within the seeds' spread of {best}"
            else:
                verdict = f"worse than {best}"
        alloc_text = allocation_text(list(alloc.values()))
        search_text = f"{statistics.mean(search):.0f}" if search else "-"
        lines.append(
            f"| {sparsity:.0%} | "
            + " | ".join(cells)
            + f" | {search_text} | {alloc_text} | {verdict} |"
        )
    update_subsection(SECTION, f"### evolutionary: {args.model} / {args.dataset}", "\n".join(lines))


if __name__ == "__main__":
    main()
