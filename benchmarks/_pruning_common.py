"""Shared helpers of the pruning benchmarks: data, cached dense checkpoints, RESULTS.md section.

One dense checkpoint per (model, dataset, seed, training config) is trained once and cached under
``benchmarks/_cache/`` (git-ignored; ``$ENSPRUNE_BENCH_CACHE`` moves it), with its initial weights
(θ₀) next to it, so every method of a comparison starts from the same network.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ensprune.data import Dataset, load_dataset
from ensprune.models import (
    SequentialNet,
    TrainConfig,
    build_seeded,
    evaluate,
    load_model,
    save_model,
)
from ensprune.pruning import PruningContext, finetune

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import bench_cache, command_line, today, update_subsection
from _results import machine_info as machine

__all__ = ["command_line", "machine", "today"]

HERE = Path(__file__).resolve().parent
CACHE = bench_cache()
RESULTS = HERE / "RESULTS.md"
SECTION = "## Pruning methods (issue 4)"
SUBSECTION_ORDER = ("### Summary against the issue's targets",)


def data_dir_default() -> str | None:
    """``$ENSPRUNE_DATA_DIR`` (the benchmarks' ``--data-dir`` default)."""
    return os.environ.get("ENSPRUNE_DATA_DIR")


def add_training_args(parser: argparse.ArgumentParser, augmented: str, distilled: str) -> None:
    """``--augment``, ``--distill`` and ``--temperature``, shared by the pruning benchmarks.

    Args:
        augmented, distilled: what augmentation and distillation apply to, for the help texts.
    """
    parser.add_argument(
        "--augment", default=None, help=f"training-time augmentation (e.g. shift) of {augmented}"
    )
    parser.add_argument(
        "--distill",
        type=float,
        default=0.0,
        help=f"knowledge-distillation weight α of {distilled} (teacher: the dense network)",
    )
    parser.add_argument("--temperature", type=float, default=4.0, help="distillation temperature")


def distill_note(args: argparse.Namespace) -> str:
    """The RESULTS.md clause describing ``--distill`` (empty when distillation is off)."""
    if not args.distill:
        return ""
    return f", distilled from the dense network with α = {args.distill}, T = {args.temperature}"


def load(
    name: str,
    data_dir: str | None,
    seed: int,
    max_train: int | None = None,
    max_test: int | None = None,
) -> Dataset:
    """The dataset split for ``seed`` (no download: benchmarks read local files)."""
    return load_dataset(
        name,
        data_dir=data_dir,
        seed=seed,
        max_train=max_train,
        max_test=max_test,
        download=False,
        progress=False,
    )


# TrainConfig fields added after checkpoints were first cached, with their defaults: left out of
# cache keys while unset, so networks cached before them are found again (and not retrained).
LATER_FIELDS = {"lr_schedule": "constant", "clean_epochs": 0}


def config_key(config: TrainConfig) -> dict:
    """``config`` as a dict for cache keys, without later fields that are still at their defaults."""
    fields = asdict(config)
    for name, default in LATER_FIELDS.items():
        if fields.get(name) == default:
            fields.pop(name)
    return fields


def dense_checkpoint(
    model: str,
    data: Dataset,
    dataset: str,
    seed: int,
    config: TrainConfig,
    max_train: int | None,
    anneal: float | None = 0.1,
) -> tuple[SequentialNet, dict[str, torch.Tensor], dict]:
    """(trained network, its initial state θ₀, meta) for ``model`` on ``data``; cached on disk.

    Training is the library's :func:`~ensprune.pruning.finetune` without masks: early stopping
    at ``config.lr``, then (``anneal``) a stage at ``lr * anneal``, the same recipe DropNet
    rounds and the last fine-tuning round of weight pruning use.
    """
    key = json.dumps([model, dataset, seed, max_train, config_key(config), anneal], sort_keys=True)
    tag = hashlib.sha1(key.encode()).hexdigest()[:10]
    path = CACHE / f"dense-{model}-{dataset}-s{seed}-{tag}.pt"
    init_path = CACHE / f"init-{model}-{dataset}-s{seed}-{tag}.pt"
    if path.is_file() and init_path.is_file():
        net, meta = load_model(path)
        init, _ = load_model(init_path)
        return net, init.state_dict(), meta
    net = build_seeded(model, data.input_shape, data.num_classes, seed)
    save_model(init_path, net, {"key": key})
    start = time.perf_counter()
    context = PruningContext(data.x_train, data.y_train, data.x_val, data.y_val, seed=seed)
    history = finetune(net, {}, context, config, desc="dense", anneal=anneal)
    meta = {
        "key": key,
        "train_seconds": time.perf_counter() - start,
        "epochs": history.epochs_run,
        "val_accuracy": evaluate(net, data.x_val, data.y_val)[1],
        "test_accuracy": evaluate(net, data.x_test, data.y_test)[1],
    }
    save_model(path, net, meta)
    init, _ = load_model(init_path)
    return net, init.state_dict(), meta


def write_subsection(title: str, body: str) -> None:
    """Replace (or add) ``### title`` inside this issue's section of RESULTS.md, keeping the rest."""
    update_subsection(SECTION, f"### {title}", body, order=SUBSECTION_ORDER)


def mean_std(values: list[float]) -> str:
    """``mean ± std`` in percent (std over seeds; just the value for one seed)."""
    t = torch.tensor(values, dtype=torch.float64) * 100
    if len(values) == 1:
        return f"{float(t[0]):.2f}"
    return f"{float(t.mean()):.2f} ± {float(t.std()):.2f}"
