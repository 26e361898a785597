"""``ensprune prune --include/--exclude``, on a user's network with grouped convolutions.

The network is the user's own package (a factory and a trained state_dict, as a user brings
them): a stem, then a residual block whose branch is a 2-group and a 4-group convolution.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ensprune.cli import main
from ensprune.models import load_model
from ensprune.models.named import build_named

NETS = '''
import torch
from torch import nn


class GroupedNet(nn.Module):
    """stem -> x + bn2(mix(relu(bn1(grouped(x))))) -> pool -> head; 2 and 4 channel groups."""

    def __init__(self, input_shape, num_classes, width=16):
        super().__init__()
        self.stem = nn.Conv2d(input_shape[0], width, 3, padding=1)
        self.grouped = nn.Conv2d(width, width, 3, padding=1, groups=2)
        self.bn1 = nn.BatchNorm2d(width)
        self.mix = nn.Conv2d(width, width, 1, groups=4)
        self.bn2 = nn.BatchNorm2d(width)
        self.head = nn.Linear(width * (input_shape[1] // 2) * (input_shape[2] // 2), num_classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(x + self.bn2(self.mix(torch.relu(self.bn1(self.grouped(x))))))
        return self.head(torch.flatten(nn.functional.max_pool2d(x, 2), 1))


def make_net(input_shape, num_classes, width=16):
    return GroupedNet(input_shape, num_classes, width)
'''
FACTORY = "cli_grouped_nets.nets:make_net"


@pytest.fixture
def dense_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The user's package on sys.path and a state_dict of their network."""
    (tmp_path / "cli_grouped_nets").mkdir()
    (tmp_path / "cli_grouped_nets" / "__init__.py").write_text("")
    (tmp_path / "cli_grouped_nets" / "nets.py").write_text(textwrap.dedent(NETS))
    monkeypatch.syspath_prepend(str(tmp_path))
    net = build_named(FACTORY, (1, 8, 8), 10, seed=7)
    torch.save(net.state_dict(), tmp_path / "dense.pt")
    yield tmp_path / "dense.pt"
    for name in ("cli_grouped_nets", "cli_grouped_nets.nets"):
        sys.modules.pop(name, None)


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the dense network is trained (bad input must be refused before)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the dense network was trained before the input was checked")

    monkeypatch.setattr("ensprune.study.single.train_dense", refuse)


def _prune(checkpoint: Path, *argv: str) -> list[str]:
    return [
        "prune",
        "--model",
        FACTORY,
        "--checkpoint",
        str(checkpoint),
        "--finetune-epochs",
        "1",
        "--no-cache",
        "--json",
        *argv,
    ]


def test_include_prunes_only_the_matching_layers(
    dense_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "pruned.pt"
    argv = _prune(dense_checkpoint, "--method", "magnitude", "--sparsity", "0.5")
    argv += ["--include", "grouped", "--include", "mix.weight", "--save", str(saved)]
    assert main(argv) == 0
    json.loads(capsys.readouterr().out)
    pruned, _ = load_model(saved)  # the factory path + shapes, weights_only=True
    dense = torch.load(dense_checkpoint, weights_only=True)
    for name in ("stem.weight", "head.weight"):  # not included: untouched
        assert torch.equal(pruned.state_dict()[name].ne(0), dense[name].ne(0))
    # Global magnitude over the included layers only: half of their weights go, some from each.
    included = [pruned.state_dict()[n].ne(0) for n in ("grouped.weight", "mix.weight")]
    assert all(not bool(kept.all()) for kept in included)
    share = sum(int(k.sum()) for k in included) / sum(k.numel() for k in included)
    assert share == pytest.approx(0.5, abs=0.01)


def test_dropnet_on_grouped_convs_with_an_excluded_stem(
    dense_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "pruned.pt"
    argv = _prune(dense_checkpoint, "--method", "dropnet", "--sparsity", "0.5")
    argv += ["--param", "reset=none", "--param", "kappa=0", "--exclude", "stem"]
    argv += ["--save", str(saved)]
    assert main(argv) == 0
    info = json.loads(capsys.readouterr().out)["pruned"]["info"]
    # The stem's residual stream stays whole (stem excluded); grouped's 16 outputs lose alike
    # from its channel groups (4 blocks: mix reads them in 4 groups), down to half.
    assert list(info["units_per_layer"]) == ["grouped.weight"]
    kept = info["kept_units"]["grouped.weight"]
    assert len(kept) == 8 and [sum(1 for u in kept if u // 4 == b) for b in range(4)] == [2] * 4
    pruned, _ = load_model(saved)
    assert (pruned.grouped.out_channels, pruned.grouped.groups) == (8, 2)
    assert (pruned.mix.in_channels, pruned.mix.groups) == (8, 4)
    assert pruned.stem.out_channels == 16


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (
            ["--include", "Grouped"],
            "--include pattern 'Grouped' matches no prunable layer of this GroupedNet; layer "
            "names are case-sensitive: did you mean 'grouped'?",
        ),
        (
            ["--include", "grouped", "--exclude", "*.shortcut.*"],
            "--exclude pattern '*.shortcut.*' matches no prunable layer",
        ),
        (["--exclude", "*"], "leave no layer of this GroupedNet to prune; narrow --exclude"),
        (["--include", ""], "layer include patterns must be non-empty strings"),
    ],
)
def test_a_bad_pattern_is_one_line_and_exit_2_before_training(
    flags: list[str],
    fragment: str,
    dense_checkpoint: Path,
    no_training: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # No --checkpoint: the dense network would be trained next, were the patterns not refused.
    argv = ["prune", "--model", FACTORY, "--epochs", "1", "--no-cache", "--quiet", *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert fragment in err
    assert "prunable layers: stem, grouped, mix, head" in err or "non-empty" in fragment
