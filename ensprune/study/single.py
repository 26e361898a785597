"""One model, one method: the library function behind ``ensprune prune``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from ensprune.data import DATASETS, load_dataset
from ensprune.models import (
    evaluate,
    measure,
    save_model,
    train_model,
)
from ensprune.models.named import build_named, canonical_model_name
from ensprune.models.weights import load_state, read_state_dict
from ensprune.pruning import METHODS, PruningContext, check_sparsity, make_method
from ensprune.study.build import finetune_config, train_config
from ensprune.study.pipeline import EARLY_EPOCH
from ensprune.study.spec import PoolSpec, SearchSpec


def _measure(
    model: nn.Module, acc: float, input_shape: tuple[int, ...], effective: bool
) -> dict[str, Any]:
    m = measure(model, input_shape)  # the one measurement (latency at batch 1 and 256)
    return {
        "accuracy": acc,
        "params": m.prunable_nonzero,
        "macs": m.macs_effective if effective else m.macs_dense,
        "latency_ms": m.latency_ms(256),
        "measurement": m.to_dict(),
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
    checkpoint: str | Path | None = None,
    model_args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``model`` on ``dataset``, prune it with ``method`` and measure both.

    Returns:
        ``{"dataset": ..., "model": ..., "dense": {...}, "pruned": {...}}`` (names canonical),
        the last two each with ``accuracy`` (test, 0..1), ``params``
        (non-zero prunable weights), ``macs`` (dense MACs for the dense model, effective MACs of
        non-zero weights for the pruned one), ``latency_ms`` (CPU, batch 256, median); ``pruned``
        adds ``sparsity`` (share of the dense model's prunable weights removed), ``method``,
        ``params`` and the method's ``info``.

    ``model`` is a zoo name or a user's factory ``"pkg.module:function"`` (called with
    ``model_args``; see :func:`~ensprune.models.named.build_named`). With ``checkpoint`` (a plain
    state_dict or an ensprune checkpoint) the dense network is loaded instead of trained; methods
    that rewind to θ₀ or an early checkpoint then need ``reset``/``rewind`` options without them.
    ``measurement`` in each row is the full :func:`~ensprune.models.measure` record.

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
        canonical_model_name(model),
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
    # a bad checkpoint fails here, before data is loaded (a bad model name failed above)
    dense_state = read_state_dict(checkpoint) if checkpoint is not None else None
    data = load_dataset(
        dataset,
        data_dir=data_dir,
        seed=seed,
        max_train=max_train,
        download=download,
        progress=progress,
    )
    net = build_named(model, data.input_shape, data.num_classes, seed, **(model_args or {}))
    if dense_state is not None:  # trained elsewhere: no θ₀ or early checkpoint to rewind to
        load_state(net, dense_state, f"checkpoint {checkpoint}")
        initial_state, early_state = None, None
    else:
        # θ₀ and an early checkpoint let rewinding methods (DropNet's reset, rewind=...) run.
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
        early_state = history.snapshot
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
        early_state=early_state,
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
    return {"dataset": dataset, "model": model, "dense": dense_row, "pruned": pruned_row}
