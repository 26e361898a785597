"""One model, one method: the library function behind ``ensprune prune``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from ensprune.data import DATASETS, load_dataset
from ensprune.models import (
    MODELS,
    build_seeded,
    count_macs,
    count_parameters,
    evaluate,
    measure_latency_ms,
    save_model,
    train_model,
)
from ensprune.pruning import METHODS, PruningContext, check_sparsity, make_method
from ensprune.study.build import finetune_config, train_config
from ensprune.study.pipeline import EARLY_EPOCH
from ensprune.study.spec import PoolSpec, SearchSpec


def _measure(
    model: nn.Module, acc: float, input_shape: tuple[int, ...], effective: bool
) -> dict[str, Any]:
    return {
        "accuracy": acc,
        "params": count_parameters(model).prunable_nonzero,
        "macs": count_macs(model, input_shape, effective=effective),
        "latency_ms": measure_latency_ms(model, input_shape, batch_size=256),
    }


def prune_one(
    dataset: str = "digits",
    model: str = "lenet300",
    method: str = "magnitude",
    sparsity: float = 0.9,
    epochs: int = 40,
    finetune_epochs: int | None = None,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    max_train: int | None = None,
    data_dir: str | Path | None = None,
    download: bool = True,
    device: str = "cpu",
    optimizer: str = "adam",
    augment: str | None = None,
    lr_schedule: str = "constant",
    clean_epochs: int = 0,
    distill: float = 0.0,
    save: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` on ``dataset``, prune it with ``method`` and measure both.

    Returns:
        ``{"dataset": ..., "model": ..., "dense": {...}, "pruned": {...}}`` (names canonical),
        the last two each with ``accuracy`` (test, 0..1), ``params``
        (non-zero prunable weights), ``macs`` (dense MACs for the dense model, effective MACs of
        non-zero weights for the pruned one), ``latency_ms`` (CPU, batch 256, median); ``pruned``
        adds ``sparsity`` (share of the dense model's prunable weights removed), ``method``,
        ``params`` and the method's ``info``.

    Names (dataset, model, method, optimizer, augmentation, lr schedule) may be written in any
    case; the result holds the registered spelling. Training and fine-tuning are configured by
    the same rules as a study's (:mod:`ensprune.study.build`): the dense network is trained with
    ``optimizer``; fine-tuning uses Adam without weight decay, except for methods that reset and
    retrain, which get the dense training recipe.

    ``augment`` (e.g. ``"shift"``) augments training images in both training and fine-tuning.
    ``lr_schedule``, ``clean_epochs`` and ``distill`` (from the dense network) shape fine-tuning
    only; see :class:`~ensprune.models.TrainConfig`.
    """
    target = check_sparsity(sparsity)
    dataset, model, method = (
        DATASETS.canonical(dataset),
        MODELS.canonical(model),
        METHODS.canonical(method),
    )
    METHODS.check_knobs(method, params or {}, "--param")
    pruning = make_method(method, **(params or {}))
    # the flags as the spec sections a study would have: one place builds the configs
    pool = PoolSpec(
        architectures=(model,),
        seeds=(seed,),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        augment=augment,
    )
    search = SearchSpec(
        methods=(method,),
        finetune_lr=lr,
        distill=distill,
        lr_schedule=lr_schedule,
        clean_epochs=clean_epochs,
    )
    # fail before training, not after it: both configs are built (and checked) up front
    train_cfg = train_config(pool, device=device, seed=seed)
    finetune_cfg = finetune_config(
        pool, search, device=device, seed=seed, retrain=pruning.retrains_from_scratch
    )
    data = load_dataset(
        dataset,
        data_dir=data_dir,
        seed=seed,
        max_train=max_train,
        download=download,
        progress=progress,
    )
    net = build_seeded(model, data.input_shape, data.num_classes, seed)
    # θ₀ and an early checkpoint let rewinding methods (DropNet's reset, rewind="init"/"early") run.
    initial_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    history = train_model(
        net,
        data.x_train,
        data.y_train,
        data.x_val,
        data.y_val,
        train_cfg,
        progress=progress,
        desc="train",
        snapshot_epoch=EARLY_EPOCH,
    )
    if finetune_epochs is not None:
        ft_epochs = finetune_epochs
    else:  # a method that resets and retrains needs the full training budget
        ft_epochs = epochs if pruning.retrains_from_scratch else max(epochs // 2, 1)
    context = PruningContext(
        data.x_train,
        data.y_train,
        data.x_val,
        data.y_val,
        finetune=dataclasses.replace(finetune_cfg, epochs=ft_epochs),
        seed=seed,
        progress=progress,
        initial_state=initial_state,
        early_state=history.snapshot,
    )
    result = pruning.prune(net, target, context)
    _, dense_acc = evaluate(net, data.x_test, data.y_test, device=device)
    _, pruned_acc = evaluate(result.model, data.x_test, data.y_test, device=device)
    dense_row = _measure(net, dense_acc, data.input_shape, effective=False)
    pruned_row = _measure(result.model, pruned_acc, data.input_shape, effective=True)
    pruned_row["sparsity"] = 1.0 - pruned_row["params"] / dense_row["params"]
    pruned_row["method"] = method
    pruned_row["method_params"] = pruning.params()
    pruned_row["info"] = result.info
    if save is not None:
        save_model(
            save,
            result.model,
            {"dataset": dataset, "model": model, "method": method, "sparsity": target},
        )
    return {"dataset": dataset, "model": model, "dense": dense_row, "pruned": pruned_row}
