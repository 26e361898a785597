"""CPU latency of ResNet-20 against its width: what halving every layer's channels buys.

DropNet with ``scope="layer"`` at 50 % of the channels removes half of every layer's channels
(residual-coupled groups alike), so the compacted network of a width-W ResNet-20 has exactly the
shapes of a width-W/2 one (the same MACs: 7,783,872 -> 1,960,160 from width 8 to 4, as
bench_resnet.py measures on the trained network). Latency depends on shapes, not on weight
values, so timing untrained networks of widths 16, 8 and 4 tells what the 50 % channel cut
gives at the paper's width (16 -> 8) and at the width this machine trains (8 -> 4), and
``--ops`` splits the batch-256 time by operator (convolutions against batch norm, ReLU and the
residual additions) with ``torch.profiler``.

Example::

    OMP_NUM_THREADS=1 python benchmarks/probe_resnet_width_latency.py --repeats 15 --ops
"""

from __future__ import annotations

import argparse
import collections
import json

import torch

from ensprune.models import build_model, count_macs
from ensprune.models.measure import measure_latency

INPUT = (1, 28, 28)
CONV_OPS = {"aten::mkldnn_convolution", "aten::thnn_conv2d", "aten::slow_conv2d_forward"}


def operator_ms(model: torch.nn.Module, passes: int = 5) -> dict[str, float]:
    """Self CPU milliseconds per batch-256 pass: convolutions against everything else."""
    from torch.profiler import ProfilerActivity, profile

    x = torch.randn(256, *INPUT, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(passes):
                model(x)
    split: collections.Counter[str] = collections.Counter()
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            kind = "convolution" if event.key in CONV_OPS else "other"
            split[kind] += event.self_cpu_time_total / passes / 1000
    return {k: round(v, 2) for k, v in split.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 8, 4])
    parser.add_argument("--repeats", type=int, default=15, help="timed blocks per latency")
    parser.add_argument("--ops", action="store_true", help="also split by operator")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = {}
    for width in args.widths:
        torch.manual_seed(0)
        model = build_model("resnet20", INPUT, 10, width=width).eval()
        row = {"width": width, "macs": count_macs(model, INPUT)}
        for batch in (1, 256):
            latency = measure_latency(model, INPUT, batch, repeats=args.repeats, threads=1)
            row[f"b{batch}_ms"] = round(latency.median_ms, 3)
            row[f"b{batch}_iqr_ms"] = round(latency.iqr_ms, 3)
        if args.ops:
            row["b256_self_ms"] = operator_ms(model)
        rows[width] = row
        print(json.dumps(row), flush=True)
    for wide, narrow in zip(args.widths, args.widths[1:], strict=False):
        speed = rows[wide]["b256_ms"] / rows[narrow]["b256_ms"]
        reduction = rows[wide]["macs"] / rows[narrow]["macs"]
        print(
            json.dumps(
                {
                    "cut": f"width {wide} -> {narrow} (50 % of every layer's channels)",
                    "b256_speedup": round(speed, 2),
                    "mac_reduction": round(reduction, 2),
                    "ratio": round(speed / reduction, 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
