"""Compaction on graphs: the compacted network's outputs against the masked network's.

For zoo networks (chains, BatchNorm, flatten, residual streams), with randomised BatchNorm
statistics, half of every removable unit group is dropped at random; ``mask_units`` on a copy is
compared with ``compact`` on random inputs, and the compacted network goes through
``save_model`` / ``load_model``. Prints one Markdown row per network.

    OMP_NUM_THREADS=1 nice python benchmarks/bench_compaction.py
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from ensprune.models import build_seeded, count_macs, count_parameters, load_model, save_model
from ensprune.pruning import compact, mask_units, unit_layers

NETWORKS = [
    ("lenet300", (1, 28, 28), {}),
    ("vgg_small", (3, 32, 32), {}),
    ("model_c", (3, 32, 32), {}),
    ("resnet20", (3, 32, 32), {}),
    ("resnet20", (1, 28, 28), {"width": 8}),
]


def _randomise_norms(net: nn.Module) -> None:
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=gen))
                m.bias.copy_(torch.randn(m.num_features, generator=gen))


def main() -> None:
    torch.set_num_threads(1)
    print(
        "| network | input | unit groups | parameters | MACs | max |compacted - masked| "
        "| max |loaded - saved| | trace / compact s |"
    )
    for name, shape, config in NETWORKS:
        net = build_seeded(name, shape, 10, seed=0, **config)
        _randomise_norms(net)
        net.eval()
        start = time.perf_counter()
        groups = unit_layers(net)
        trace = time.perf_counter() - start
        gen = torch.Generator().manual_seed(1)
        masks = {}
        for group in groups:
            keep = torch.rand(group.width, generator=gen) >= 0.5
            keep[0] = True
            masks[group.name] = keep
        masked = copy.deepcopy(net)
        mask_units(masked, masks)
        start = time.perf_counter()
        small = compact(net, masks)
        seconds = time.perf_counter() - start
        small.eval()
        x = torch.randn(64, *shape, generator=gen)
        with tempfile.TemporaryDirectory() as tmp:
            loaded, _ = load_model(save_model(Path(tmp) / "small.pt", small))
        loaded.eval()
        with torch.no_grad():
            diff = (small(x) - masked(x)).abs().max().item()
            reload = (loaded(x) - small(x)).abs().max().item()
        label = name + (f" (width {config['width']})" if config else "")
        print(
            f"| {label} | {shape} | {len(groups)} | {count_parameters(net).total:,} -> "
            f"{count_parameters(small).total:,} | {count_macs(net, shape):,} -> "
            f"{count_macs(small, shape):,} | {diff:.1e} | {reload:.0e} | {trace:.2f} / {seconds:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
