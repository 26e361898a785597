"""One model, one method: the library function behind ``ensprune prune``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from ensprune.data import load_dataset
from ensprune.models import (
    TrainConfig,
    build_seeded,
    count_macs,
    count_parameters,
    evaluate,
    measure_latency_ms,
    save_model,
    train_model,
)
from ensprune.pruning import PruningContext, check_sparsity, make_method
from ensprune.study.pipeline import EARLY_EPOCH


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
    augment: str | None = None,
    lr_schedule: str = "constant",
    clean_epochs: int = 0,
    distill: float = 0.0,
    save: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` on ``dataset``, prune it with ``method`` and measure both.

    Returns:
        ``{"dense": {...}, "pruned": {...}}``, each with ``accuracy`` (test, 0..1), ``params``
        (non-zero prunable weights), ``macs`` (dense MACs for the dense model, effective MACs of
        non-zero weights for the pruned one), ``latency_ms`` (CPU, batch 256, median); ``pruned``
        adds ``sparsity`` (share of the dense model's prunable weights removed), ``method``,
        ``params`` and the method's ``info``.

    ``augment`` (e.g. ``"shift"``) augments training images in both training and fine-tuning.
    ``lr_schedule``, ``clean_epochs`` and ``distill`` (from the dense network) shape fine-tuning
    only; see :class:`~ensprune.models.TrainConfig`.
    """
    target = check_sparsity(sparsity)
    pruning = make_method(method, **(params or {}))
    # fail before training, not after it: the fine-tuning config is checked up front
    finetune_cfg = TrainConfig(
        epochs=0,
        batch_size=batch_size,
        lr=lr,
        device=device,
        seed=seed,
        augment=augment,
        lr_schedule=lr_schedule,
        clean_epochs=clean_epochs,
        distill=distill,
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
    train_cfg = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, device=device, seed=seed, augment=augment
    )
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
    pruned_row["target_sparsity"] = target
    # False for methods that steer towards the target (adaptive: a regulariser's goal)
    pruned_row["target_is_exact"] = pruning.exact_sparsity
    pruned_row["info"] = result.info
    if save is not None:
        save_model(
            save,
            result.model,
            {"dataset": dataset, "model": model, "method": method, "sparsity": target},
        )
    return {"dense": dense_row, "pruned": pruned_row}
