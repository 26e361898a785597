"""Honest size and speed of any network: parameters, MACs, checkpoint size and CPU latency.

:func:`measure_model` is the one measurement of a (pruned) network; the pipeline, ``ensprune
prune`` and the benchmarks all call it. The helpers it is made of (:func:`count_parameters`,
:func:`count_macs`, :func:`measure_latency`, :func:`checkpoint_size_bytes`) are public for callers
that need one number only.

Prunable parameters are the weights of the layer types in :data:`PRUNABLE_TYPES` (``nn.Linear``,
``nn.Conv1d``, ``nn.Conv2d``, grouped and depthwise convolutions included), wherever they sit in
the module tree; biases and normalisation parameters are never pruned and not counted as prunable.
MACs are the multiply-accumulates of those layers for one sample (what
``torch.utils.flop_counter.FlopCounterMode`` reports as FLOPs, halved); other layers (norms,
activations, pooling, additions) are cheap next to them and not counted.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils import benchmark

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)
"""Layer types whose weights pruning methods may zero or remove; the one list of the project."""

LATENCY_BATCH_SIZES: tuple[int, ...] = (1, 256)


def prunable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The prunable weights by qualified name (``"layer1.0.conv1.weight"``), in module order."""
    params: dict[str, nn.Parameter] = {}
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES):
            weight = module.weight
            assert isinstance(weight, nn.Parameter)
            params[f"{name}.weight" if name else "weight"] = weight
    return params


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts: all parameters, and the prunable weights, total and non-zero."""

    total: int
    nonzero: int
    prunable: int
    prunable_nonzero: int

    @property
    def sparsity(self) -> float:
        """Share of prunable weights that are zero."""
        return 1.0 - self.prunable_nonzero / self.prunable if self.prunable else 0.0


def count_parameters(model: nn.Module) -> ParamCounts:
    """Count parameters of ``model`` (zeros in prunable weights count as pruned)."""
    total = sum(p.numel() for p in model.parameters())
    nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    prunable = prunable_parameters(model)
    return ParamCounts(
        total=total,
        nonzero=nonzero,
        prunable=sum(p.numel() for p in prunable.values()),
        prunable_nonzero=sum(int(torch.count_nonzero(p)) for p in prunable.values()),
    )


def _device_of(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, ...], effective: bool = False) -> int:
    """Multiply-accumulates of the prunable layers for one sample of ``input_shape``.

    A weight of a Linear or convolution is multiplied once per output position (a Linear's
    leading dimensions, a convolution's output length or feature-map pixels), so a layer costs
    ``weights x output positions``; grouped and depthwise convolutions hold fewer weights and are
    counted right. A layer called twice (shared weights) counts twice.

    Args:
        effective: count only MACs of non-zero weights (what a sparse kernel could skip to);
            the default counts the dense layers as they are executed.
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        weight = module.weight
        assert isinstance(weight, torch.Tensor)
        per_position = int(torch.count_nonzero(weight)) if effective else weight.numel()
        if isinstance(module, nn.Linear):
            positions = output.numel() // (output.shape[0] * output.shape[-1])
        else:  # (N, C_out, *spatial)
            positions = math.prod(output.shape[2:])
        total += per_position * positions

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, PRUNABLE_TYPES)
    ]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros((1, *input_shape), device=_device_of(model)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total


@dataclass(frozen=True)
class Latency:
    """CPU wall-clock time of one forward pass at one batch size, with its spread.

    Attributes:
        batch_size: samples per forward pass.
        median_ms: median milliseconds per pass.
        iqr_ms: interquartile range of the timed blocks, in milliseconds.
        repeats: timed blocks the median and IQR are taken over.
        passes_per_repeat: forward passes averaged within one block (more for fast passes, so
            timer overhead does not dominate).
        threads: torch intra-op threads during the measurement.
    """

    batch_size: int
    median_ms: float
    iqr_ms: float
    repeats: int
    passes_per_repeat: int
    threads: int


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_size: int = 256,
    warmup: int = 5,
    repeats: int = 20,
    threads: int | None = None,
    min_block_ms: float = 2.0,
) -> Latency:
    """Time CPU forward passes of ``model`` on a fixed random batch with ``torch.utils.benchmark``.

    Passes run under ``torch.inference_mode()`` in eval mode (inference as deployed: no autograd
    graph, no saved activations) after ``warmup`` untimed passes. Each of the ``repeats`` timed
    blocks averages enough passes to last about ``min_block_ms``; the median and IQR are over
    blocks. The model is moved to the CPU.

    Args:
        threads: torch intra-op threads while timing (None: the current setting).
    """
    if repeats < 1 or batch_size < 1:
        raise ValueError(f"repeats and batch_size must be >= 1; got {repeats}, {batch_size}")
    model = model.to("cpu")
    was_training = model.training
    model.eval()
    n_threads = torch.get_num_threads() if threads is None else int(threads)
    x = torch.randn((batch_size, *input_shape), generator=torch.Generator().manual_seed(0))
    timer = benchmark.Timer(
        stmt="model(x)", globals={"model": model, "x": x}, num_threads=n_threads
    )
    try:
        with torch.inference_mode():
            single = timer.timeit(max(warmup, 1)).mean  # warm-up, and a first estimate
            number = max(1, math.ceil(min_block_ms / 1000.0 / max(single, 1e-9)))
            blocks = [timer.timeit(number) for _ in range(repeats)]
    finally:
        model.train(was_training)
    merged = benchmark.Measurement.merge(blocks)[0]  # times: seconds per pass, one per block
    return Latency(
        batch_size=batch_size,
        median_ms=merged.median * 1000.0,
        iqr_ms=merged.iqr * 1000.0,
        repeats=len(merged.times),
        passes_per_repeat=number,
        threads=n_threads,
    )


def measure_latency_ms(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_size: int = 256,
    warmup: int = 5,
    repeats: int = 20,
    threads: int | None = None,
) -> float:
    """Median milliseconds of one CPU forward pass (:func:`measure_latency` without the spread)."""
    return measure_latency(model, input_shape, batch_size, warmup, repeats, threads).median_ms


def checkpoint_size_bytes(model: nn.Module) -> int:
    """Bytes of ``model``'s checkpoint as written by :func:`~ensprune.models.save_model`.

    Networks ``save_model`` cannot describe (built neither from the zoo nor from a factory) are
    measured by their ``torch.save``-d state_dict, which is what a checkpoint holds besides a few
    hundred bytes of metadata.
    """
    from ensprune.errors import CheckpointError
    from ensprune.models.checkpoint import save_model

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        try:
            save_model(path, model)
        except CheckpointError:
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
        return os.path.getsize(path)


@dataclass(frozen=True)
class ModelMeasurement:
    """Everything :func:`measure_model` measured about one network.

    Attributes:
        sparsity: share of the reference's prunable weights that are zero or removed.
        params_total, params_nonzero: all parameters, and the non-zero ones.
        prunable, prunable_nonzero: prunable weights, and the non-zero ones.
        macs_dense: MACs per sample as executed (zeros multiplied too).
        macs_effective: MACs of non-zero weights only.
        file_bytes: checkpoint size.
        latency: one :class:`Latency` per batch size (empty when latency was not measured).
        threads: torch intra-op threads of the latency measurements.
    """

    sparsity: float
    params_total: int
    params_nonzero: int
    prunable: int
    prunable_nonzero: int
    macs_dense: int
    macs_effective: int
    file_bytes: int
    latency: tuple[Latency, ...] = ()
    threads: int = 0

    def latency_ms(self, batch_size: int) -> float:
        """Median milliseconds per forward pass at ``batch_size``."""
        for entry in self.latency:
            if entry.batch_size == batch_size:
                return entry.median_ms
        measured = [e.batch_size for e in self.latency]
        raise KeyError(
            f"latency at batch size {batch_size} was not measured (measured: {measured})"
        )

    def to_dict(self) -> dict[str, Any]:
        """A flat JSON-able dict: the counts, ``latency_ms_b<batch>`` (median),
        ``latency_iqr_ms_b<batch>``, ``latency_repeats_b<batch>`` per batch size, ``threads``."""
        row: dict[str, Any] = {k: v for k, v in asdict(self).items() if k != "latency"}
        for entry in self.latency:
            b = entry.batch_size
            row[f"latency_ms_b{b}"] = entry.median_ms
            row[f"latency_iqr_ms_b{b}"] = entry.iqr_ms
            row[f"latency_repeats_b{b}"] = entry.repeats
        return row


def measure(
    model: nn.Module,
    input_shape: tuple[int, ...] | None = None,
    *,
    reference: nn.Module | None = None,
    latency: bool = True,
    batch_sizes: tuple[int, ...] = LATENCY_BATCH_SIZES,
    warmup: int = 5,
    repeats: int = 20,
    threads: int | None = None,
) -> ModelMeasurement:
    """Measure a (pruned) network: counts, MACs, checkpoint size and CPU latency.

    Masked networks keep their dense shapes (zeros are stored and multiplied), so their file size
    and latency equal the dense model's: only the *effective* MACs fall. Compacted networks are
    smaller in every column.

    Args:
        model: the network to measure (any ``nn.Module``).
        input_shape: per-sample input shape; defaults to ``model.input_shape`` (zoo models).
        reference: the dense network ``model`` was pruned from; sparsity then counts weights
            removed by compaction as well as zeroed ones (without it, only zeroed ones).
        latency: measure CPU latency (seconds per network; off for quick reports).
        batch_sizes: batch sizes of the latency measurements.
        warmup, repeats: untimed passes, and timed blocks (see :func:`measure_latency`).
        threads: torch intra-op threads while timing (None: the current setting).

    Example:
        >>> m = measure(result.model, reference=dense)
        >>> m.sparsity, m.macs_effective, m.latency_ms(256)
    """
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError("measure needs input_shape for a model without an input_shape attribute")
    shape = tuple(int(d) for d in shape)
    counts = count_parameters(model)
    base = count_parameters(reference).prunable if reference is not None else counts.prunable
    timings = tuple(
        measure_latency(model, shape, batch, warmup=warmup, repeats=repeats, threads=threads)
        for batch in (batch_sizes if latency else ())
    )
    return ModelMeasurement(
        sparsity=1.0 - counts.prunable_nonzero / base if base else 0.0,
        params_total=counts.total,
        params_nonzero=counts.nonzero,
        prunable=counts.prunable,
        prunable_nonzero=counts.prunable_nonzero,
        macs_dense=count_macs(model, shape),
        macs_effective=count_macs(model, shape, effective=True),
        file_bytes=checkpoint_size_bytes(model),
        latency=timings,
        threads=timings[0].threads if timings else torch.get_num_threads(),
    )


def measure_model(
    model: nn.Module,
    input_shape: tuple[int, ...] | None = None,
    *,
    reference: nn.Module | None = None,
    latency: bool = True,
    batch_sizes: tuple[int, ...] = LATENCY_BATCH_SIZES,
    warmup: int = 5,
    repeats: int = 20,
    threads: int | None = None,
) -> dict[str, Any]:
    """:func:`measure` as a flat JSON-able dict (:meth:`ModelMeasurement.to_dict`).

    Keys: ``sparsity``, ``params_total``, ``params_nonzero``, ``prunable``, ``prunable_nonzero``,
    ``macs_dense``, ``macs_effective``, ``file_bytes``, ``threads`` and, per batch size,
    ``latency_ms_b<batch>`` (median), ``latency_iqr_ms_b<batch>``, ``latency_repeats_b<batch>``.

    Example:
        >>> report = measure_model(result.model, reference=dense)
        >>> report["sparsity"], report["latency_ms_b256"]
    """
    return measure(
        model,
        input_shape,
        reference=reference,
        latency=latency,
        batch_sizes=batch_sizes,
        warmup=warmup,
        repeats=repeats,
        threads=threads,
    ).to_dict()
