"""Shared helpers of the pruning benchmarks: data, cached dense checkpoints, RESULTS.md section.

One dense checkpoint per (model, dataset, seed, training config) is trained once and cached under
``benchmarks/_cache/`` (git-ignored), with its initial weights (θ₀) next to it, so every method of
a comparison starts from the same network.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import shlex
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

HERE = Path(__file__).resolve().parent
CACHE = HERE / "_cache"
RESULTS = HERE / "RESULTS.md"
SECTION = "## Pruning methods (issue 4)"


def data_dir_default() -> str | None:
    """``$ENSPRUNE_DATA_DIR`` (the benchmarks' ``--data-dir`` default)."""
    return os.environ.get("ENSPRUNE_DATA_DIR")


def load(name: str, data_dir: str | None, seed: int, max_train: int | None = None) -> Dataset:
    """The dataset split for ``seed`` (no download: benchmarks read local files)."""
    return load_dataset(
        name, data_dir=data_dir, seed=seed, max_train=max_train, download=False, progress=False
    )


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
    key = json.dumps([model, dataset, seed, max_train, asdict(config), anneal], sort_keys=True)
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


def machine() -> str:
    """nproc, CPU model, torch threads and versions, for the results table."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), torch {torch.__version__} with "
        f"{torch.get_num_threads()} thread(s), Python {platform.python_version()}"
    )


def command_line() -> str:
    """The exact command that produced the results."""
    return "python " + " ".join(
        shlex.quote(a) for a in [os.path.relpath(sys.argv[0]), *sys.argv[1:]]
    )


def today() -> str:
    return _dt.datetime.now().strftime("%Y-%m-%d %H:%M")


def write_subsection(title: str, body: str) -> None:
    """Replace (or append) ``### title`` inside this issue's section of RESULTS.md.

    The file is re-read right before writing and only this section is touched, because another
    benchmark owns another section of the same file.
    """
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"### {title}\n\n{body.strip()}\n"
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{block}"
    else:
        nxt = re.search(r"^## ", text[start + len(SECTION) :], flags=re.MULTILINE)
        end = start + len(SECTION) + nxt.start() if nxt else len(text)
        section = text[start:end]
        pattern = re.compile(rf"^### {re.escape(title)}\n.*?(?=^### |\Z)", re.MULTILINE | re.DOTALL)
        if pattern.search(section):
            section = pattern.sub(lambda _: block + "\n", section, count=1)
        else:
            section = section.rstrip("\n") + f"\n\n{block}\n"
        text = text[:start] + section.rstrip("\n") + "\n" + ("\n" + text[end:] if nxt else "")
    RESULTS.write_text(text)


def mean_std(values: list[float]) -> str:
    """``mean ± std`` in percent (std over seeds; just the value for one seed)."""
    t = torch.tensor(values, dtype=torch.float64) * 100
    if len(values) == 1:
        return f"{float(t[0]):.2f}"
    return f"{float(t.mean()):.2f} ± {float(t.std()):.2f}"
