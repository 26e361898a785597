"""The one measurement of a network: MACs against torch's own FLOP counter, latency with spread."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ensprune.models import (
    MODELS,
    PRUNABLE_TYPES,
    build_seeded,
    count_macs,
    count_parameters,
    measure,
    measure_latency,
    measure_model,
    prunable_parameters,
)


def flop_counter_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs per sample as torch counts them: FLOPs of matmuls and convolutions, halved."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros((1, *input_shape)))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


class Block(nn.Module):
    """A residual block: conv-BN-ReLU-conv-BN plus a (projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class UserNet(nn.Module):
    """A user's network: residual blocks, a depthwise and a grouped conv, a concatenation,
    a Conv1d branch, a Linear applied per position and a shared (twice-called) layer."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.layer1 = nn.Sequential(Block(8, 8, 1), Block(8, 16, 2))
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.grouped = nn.Conv2d(16, 8, 1, groups=4)
        self.seq = nn.Conv1d(16, 4, 3)
        self.per_position = nn.Linear(14, 8)
        self.shared = nn.Linear(24, 24)
        self.head = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(torch.relu(self.stem(x)))
        y = torch.relu(self.depthwise(x))
        x = torch.cat([self.grouped(y), self.grouped(x)], dim=1)  # 16 channels, 14x14
        rows = self.seq(x.mean(3))  # (N, 4, 12)
        cols = self.per_position(x.mean(1))  # (N, 14, 8): a Linear over 14 positions
        z = torch.cat([rows.flatten(1)[:, :16], cols.mean(1)], dim=1)  # (N, 24)
        return self.head(self.shared(torch.relu(self.shared(z))))


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("input_shape", [(1, 28, 28), (3, 32, 32)])
def test_macs_match_the_flop_counter_on_every_zoo_model(
    name: str, input_shape: tuple[int, ...]
) -> None:
    net = build_seeded(name, input_shape, 10, seed=0)
    assert count_macs(net, input_shape) == flop_counter_macs(net, input_shape)


def test_macs_match_the_flop_counter_on_a_residual_user_model() -> None:
    net = UserNet()
    macs = count_macs(net, (1, 28, 28))
    assert macs == flop_counter_macs(net, (1, 28, 28))
    # the depthwise conv counts 16 * 9 weights per pixel, not 16 * 16 * 9
    depthwise = 16 * 1 * 9 * 14 * 14
    assert depthwise == net.depthwise.weight.numel() * 196
    assert macs > depthwise


def test_prunable_types_are_linear_and_convolutions_anywhere_in_the_tree() -> None:
    net = UserNet()
    names = list(prunable_parameters(net))
    assert (nn.Linear, nn.Conv1d, nn.Conv2d) == PRUNABLE_TYPES
    assert "layer1.1.shortcut.0.weight" in names and "seq.weight" in names
    assert "layer1.0.bn1.weight" not in names  # norms are never pruned
    modules = dict(net.named_modules())
    assert all(isinstance(modules[n.rsplit(".", 1)[0]], PRUNABLE_TYPES) for n in names)


def test_effective_macs_count_nonzero_weights_once_per_output_position() -> None:
    net = UserNet()
    with torch.no_grad():
        net.depthwise.weight[:8] = 0  # half the depthwise filters: 8 * 9 weights x 196 pixels
        net.seq.weight[:, :, 0] = 0  # 4 * 16 weights x 12 positions
    dense, effective = count_macs(net, (1, 28, 28)), count_macs(net, (1, 28, 28), effective=True)
    assert dense - effective == 8 * 9 * 196 + 4 * 16 * 12


def test_measure_reports_counts_and_latency_with_spread() -> None:
    net = UserNet()
    m = measure(net, (1, 28, 28), batch_sizes=(1, 4), warmup=1, repeats=5, threads=1)
    counts = count_parameters(net)
    assert (m.params_total, m.prunable, m.sparsity) == (counts.total, counts.prunable, 0.0)
    assert m.macs_dense == m.macs_effective == count_macs(net, (1, 28, 28))
    assert m.threads == 1 and [lat.batch_size for lat in m.latency] == [1, 4]
    for lat in m.latency:
        assert lat.repeats == 5 and lat.threads == 1 and lat.passes_per_repeat >= 1
        assert 0 < lat.median_ms < 1000 and 0 <= lat.iqr_ms < 1000
    assert m.latency_ms(4) == m.latency[1].median_ms
    with pytest.raises(KeyError, match="256"):
        m.latency_ms(256)
    row = m.to_dict()
    assert {"latency_ms_b1", "latency_iqr_ms_b4", "latency_repeats_b4", "threads"} <= set(row)
    assert m.file_bytes > 4 * counts.total  # float32 state_dict plus container


def test_measure_restores_threads_and_training_mode() -> None:
    net = UserNet().train()
    before = torch.get_num_threads()
    lat = measure_latency(net, (1, 28, 28), batch_size=2, warmup=1, repeats=2, threads=1)
    assert lat.threads == 1 and torch.get_num_threads() == before and net.training


def test_measure_needs_a_shape_for_user_models() -> None:
    with pytest.raises(ValueError, match="input_shape"):
        measure(UserNet(), latency=False)
    zoo = build_seeded("model_a", (1, 8, 8), 10, seed=0)
    assert measure_model(zoo, latency=False)["macs_dense"] == count_macs(zoo, (1, 8, 8))
