"""One model, one method: the library function behind ``ensprune prune``."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ensprune.data import DATASETS, Dataset, load_dataset
from ensprune.errors import SpecError
from ensprune.models import (
    TrainConfig,
    evaluate,
    measure,
    save_model,
    train_model,
)
from ensprune.models.named import build_named, canonical_model_name
from ensprune.models.weights import load_state, read_state_dict
from ensprune.pruning import (
    METHODS,
    LayerSelection,
    PruningContext,
    check_sparsity,
    make_method,
)
from ensprune.study import dense_cache
from ensprune.study.build import finetune_config, train_config
from ensprune.study.pipeline import EARLY_EPOCH
from ensprune.study.spec import PoolSpec, SearchSpec

logger = logging.getLogger("ensprune.study")


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
    dense_anneal: float | None = None,
    cache: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
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

    ``dense_anneal`` adds a second dense training stage at ``lr * dense_anneal`` after early
    stopping (the benchmarks' recipe uses 0.1). A dense network trained here is cached (see
    :mod:`ensprune.study.dense_cache`) and reused by later calls with the same dataset,
    ``max_train``, model, ``model_args``, seed and training recipe; ``cache=False`` neither reads
    nor writes the cache. The result's ``recipe`` says how the dense network was trained (and
    whether it came from the cache) and how the pruned one was fine-tuned.

    ``include`` / ``exclude`` narrow the prunable layers by name pattern (see
    :class:`~ensprune.pruning.LayerSelection`); a pattern that matches no layer is refused on the
    untrained network, before any training.

    ``augment`` (e.g. ``"shift"``) augments training images in both training and fine-tuning.
    ``lr_schedule``, ``clean_epochs`` and ``distill`` (from the dense network) shape fine-tuning
    only; see :class:`~ensprune.models.TrainConfig`.
    """
    target = check_sparsity(sparsity)
    if dense_anneal is not None and not 0.0 < dense_anneal <= 1.0:
        raise SpecError(
            f"dense anneal must lie in (0, 1] (the lr factor of dense training's second stage); "
            f"got {dense_anneal}"
        )
    dataset, model, method = (
        DATASETS.canonical(dataset),
        canonical_model_name(model),
        METHODS.canonical(method),
    )
    METHODS.check_knobs(method, params or {}, "--param")
    pruning = make_method(method, **(params or {}))
    layers = LayerSelection(include=tuple(include), exclude=tuple(exclude))
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
    layers.check(net, "--include", "--exclude")  # a typo fails before training, not after
    dense_recipe = dense_cache.recipe_of(train_cfg, dense_anneal)
    if dense_state is not None:  # trained elsewhere: no θ₀ or early checkpoint to rewind to
        load_state(net, dense_state, f"checkpoint {checkpoint}")
        initial_state, early_state = None, None
        dense_source: dict[str, Any] = {"source": f"checkpoint {checkpoint}"}
    else:
        key = dense_cache.cache_key(
            dataset=dataset,
            model=model,
            model_args=dict(model_args or {}),
            seed=seed,
            max_train=max_train,
            recipe=dense_recipe,
        )
        entry, dense_source = _dense_network(
            net, data, model, train_cfg, dense_anneal, key, use_cache=cache, progress=progress
        )
        initial_state, early_state = entry.initial_state, entry.early_state
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
        layers=layers,
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
    recipe = {
        "threads": torch.get_num_threads(),
        "dense": {**dense_recipe, **_lr_stages(train_cfg.lr, dense_anneal), **dense_source},
        "finetune": {
            **{
                k: v
                for k, v in dense_cache.recipe_of(context.finetune, None).items()
                if k != "anneal"
            },
            "method": method,
            "method_params": pruning.params(),
        },
    }
    return {
        "dataset": dataset,
        "model": model,
        "dense": dense_row,
        "pruned": pruned_row,
        "recipe": recipe,
    }


def _lr_stages(lr: float, anneal: float | None) -> dict[str, list[float]]:
    """The learning rates of dense training's stages, in order."""
    return {"lr_stages": [lr] if anneal in (None, 1.0) else [lr, lr * anneal]}


def _dense_network(
    net: nn.Module,
    data: Dataset,
    model: str,
    config: TrainConfig,
    anneal: float | None,
    key: str,
    *,
    use_cache: bool,
    progress: bool,
) -> tuple[dense_cache.CachedDense, dict[str, Any]]:
    """Train ``net`` (untrained, seeded) or load its cached training; returns (entry, provenance).

    ``net`` ends up holding the trained weights either way.
    """
    path = dense_cache.cache_path(key, dataset=data.name, model=model, seed=config.seed)
    entry = dense_cache.load_entry(path, key) if use_cache else None
    if entry is not None:
        load_state(net, entry.state, f"cached dense network {path}")
        logger.info("dense network loaded from the cache: %s", path)
        return entry, {"source": "cache", "cache_file": str(path), **entry.facts}
    initial_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    start = time.perf_counter()
    early_state, epochs_run = train_dense(net, data, config, anneal, progress=progress)
    facts = {"epochs_run": epochs_run, "train_seconds": round(time.perf_counter() - start, 1)}
    entry = dense_cache.CachedDense(net.state_dict(), initial_state, early_state, facts)
    if not use_cache:
        return entry, {"source": "trained", "cache_file": None, **facts}
    dense_cache.store_entry(path, key, entry)
    logger.info("dense network cached: %s", path)
    return entry, {"source": "trained", "cache_file": str(path), **facts}


def train_dense(
    net: nn.Module,
    data: Dataset,
    config: TrainConfig,
    anneal: float | None,
    *,
    progress: bool = True,
) -> tuple[dict[str, torch.Tensor] | None, int]:
    """Train ``net`` in place: to early stopping at ``config.lr``, then (``anneal``) at lr × anneal.

    The two-stage split is :func:`~ensprune.pruning.finetune`'s (up to two thirds of the epochs
    in the first stage, the rest in the second, seeded ``seed + 1``), so a network trained here
    equals the benchmarks' dense network of the same recipe.

    Returns:
        (the weights after :data:`EARLY_EPOCH` epochs, for rewinding methods; epochs run).
    """
    two_stages = anneal is not None and anneal != 1.0 and config.epochs >= 2
    first_cfg = (
        dataclasses.replace(config, epochs=config.epochs - config.epochs // 3)
        if two_stages
        else config
    )
    history = train_model(
        net,
        data.x_train,
        data.y_train,
        data.x_val,
        data.y_val,
        first_cfg,
        progress=progress,
        desc="train",
        snapshot_epoch=EARLY_EPOCH,
    )
    epochs_run = history.epochs_run
    if two_stages:
        assert anneal is not None
        second_cfg = dataclasses.replace(
            config, epochs=config.epochs - epochs_run, lr=config.lr * anneal, seed=config.seed + 1
        )
        epochs_run += train_model(
            net,
            data.x_train,
            data.y_train,
            data.x_val,
            data.y_val,
            second_cfg,
            progress=progress,
            desc="train (annealed)",
        ).epochs_run
    return history.snapshot, epochs_run
