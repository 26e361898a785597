"""One report for every pruned network: sparsity, parameters, MACs, file size and CPU latency.

Masked networks keep their dense shapes (zeros are stored and multiplied), so their file size and
latency equal the dense model's: only the *effective* MACs fall. Compacted networks are smaller in
every column. Sparsity is measured against a ``reference`` (the dense network) when given, which
is the only meaningful base for a compacted network.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from ensprune.models.architecture import SequentialNet
from ensprune.models.checkpoint import save_model
from ensprune.models.measure import count_macs, count_parameters, measure_latency_ms


def checkpoint_size_bytes(model: SequentialNet) -> int:
    """Bytes of ``model``'s checkpoint as written by :func:`~ensprune.models.save_model`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = save_model(Path(tmp) / "model.pt", model)
        return os.path.getsize(path)


def measure_model(
    model: SequentialNet,
    input_shape: tuple[int, ...] | None = None,
    *,
    reference: nn.Module | None = None,
    latency: bool = True,
    batch_sizes: tuple[int, ...] = (1, 256),
    warmup: int = 5,
    repeats: int = 20,
    threads: int | None = None,
) -> dict[str, Any]:
    """Measure a (pruned) network.

    Args:
        model: the network to measure.
        input_shape: per-sample input shape; defaults to ``model.input_shape``.
        reference: the dense network ``model`` was pruned from; sparsity then counts weights
            removed by compaction as well as zeroed ones.
        latency: measure CPU latency (slow-ish; off for quick reports).
        batch_sizes: batch sizes of the latency measurements.
        warmup, repeats: forward passes before timing, and timed passes (the median is reported).
        threads: torch intra-op threads while timing (None keeps the current setting).

    Returns:
        A JSON-able dict: ``sparsity`` (share of prunable weights that are zero or removed),
        ``params_total``, ``params_nonzero``, ``prunable``, ``prunable_nonzero``, ``macs_dense``
        (as executed), ``macs_effective`` (non-zero weights only), ``file_bytes`` (checkpoint size),
        and ``latency_ms_b<batch>`` per batch size (median milliseconds per forward pass).

    Example:
        >>> report = measure_model(result.model, reference=dense)
        >>> report["sparsity"], report["latency_ms_b256"]
    """
    shape = tuple(input_shape if input_shape is not None else model.input_shape)
    counts = count_parameters(model)
    base = count_parameters(reference).prunable if reference is not None else counts.prunable
    report: dict[str, Any] = {
        "sparsity": 1.0 - counts.prunable_nonzero / base if base else 0.0,
        "params_total": counts.total,
        "params_nonzero": counts.nonzero,
        "prunable": counts.prunable,
        "prunable_nonzero": counts.prunable_nonzero,
        "macs_dense": count_macs(model, shape),
        "macs_effective": count_macs(model, shape, effective=True),
        "file_bytes": checkpoint_size_bytes(model),
    }
    if latency:
        for batch in batch_sizes:
            report[f"latency_ms_b{batch}"] = measure_latency_ms(
                model, shape, batch_size=batch, warmup=warmup, repeats=repeats, threads=threads
            )
    return report
