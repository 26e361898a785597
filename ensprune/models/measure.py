"""Honest size and speed: parameter counts, multiply-accumulates and measured CPU latency.

Prunable parameters are the weights of Linear, Conv1d and Conv2d layers; biases and normalisation
parameters are never pruned and are not counted as prunable.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)


def prunable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The prunable weights by qualified name (``"0.weight"``), in module order."""
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


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, ...], effective: bool = False) -> int:
    """Multiply-accumulates of Linear and Conv2d layers for one sample.

    Args:
        effective: count only MACs of non-zero weights (what a sparse kernel could skip to);
            the default counts the dense layers as they are executed.
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        weight = module.weight
        assert isinstance(weight, torch.Tensor)
        per_weight = int(torch.count_nonzero(weight)) if effective else weight.numel()
        if isinstance(module, nn.Conv1d | nn.Conv2d):  # every kernel runs once per output position
            total += per_weight * output[0, 0].numel()
        else:
            total += per_weight * (output.numel() // output.shape[-1] // output.shape[0])

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, PRUNABLE_TYPES)
    ]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total


@torch.no_grad()
def measure_latency_ms(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_size: int = 256,
    warmup: int = 5,
    repeats: int = 20,
    threads: int | None = None,
) -> float:
    """Median wall-clock milliseconds of one CPU forward pass on a fixed random batch.

    The passes run under ``torch.inference_mode()`` after ``warmup`` untimed passes.

    Args:
        threads: torch intra-op threads during the measurement (None keeps the current setting).
    """
    model = model.to("cpu")
    was_training = model.training
    model.eval()
    x = torch.randn((batch_size, *input_shape), generator=torch.Generator().manual_seed(0))
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        # Inference as deployed: no autograd graph, no saved activations.
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - start) * 1000.0)
    finally:
        torch.set_num_threads(old_threads)
        model.train(was_training)
    return float(statistics.median(times))
