"""``ensprune prune --model pkg.mod:fn --checkpoint dense.pt``: a user's own trained network."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ensprune.cli import main
from ensprune.data import load_dataset
from ensprune.models import evaluate
from ensprune.models.named import build_named

NETS = '''
import torch
from torch import nn


class Net(nn.Module):
    """A user's network with a skip connection, defined outside ensprune."""

    def __init__(self, input_shape, num_classes, hidden=16):
        super().__init__()
        c, h, w = input_shape
        self.inp = nn.Linear(c * h * w, hidden)
        self.mid = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        x = torch.relu(self.inp(x.flatten(1)))
        return self.head(x + torch.relu(self.mid(x)))


def make_net(input_shape, num_classes, hidden=16):
    return Net(input_shape, num_classes, hidden)
'''
FACTORY = "cli_user_nets.nets:make_net"


@pytest.fixture
def dense_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The user's package on sys.path and a state_dict of their (untrained) network."""
    (tmp_path / "cli_user_nets").mkdir()
    (tmp_path / "cli_user_nets" / "__init__.py").write_text("")
    (tmp_path / "cli_user_nets" / "nets.py").write_text(textwrap.dedent(NETS))
    monkeypatch.syspath_prepend(str(tmp_path))
    net = build_named(FACTORY, (1, 8, 8), 10, seed=7)
    torch.save(net.state_dict(), tmp_path / "dense.pt")
    yield tmp_path / "dense.pt"
    for name in ("cli_user_nets", "cli_user_nets.nets"):
        sys.modules.pop(name, None)


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_prune_a_user_factory_from_its_checkpoint(
    dense_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["prune", "--model", FACTORY, "--checkpoint", str(dense_checkpoint), "--method"]
    argv += ["MAGNITUDE", "--sparsity", "0.5", "--finetune-epochs", "1", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    # the dense row is the checkpoint's network, loaded, not one trained here
    loaded = build_named(FACTORY, (1, 8, 8), 10, seed=0)
    loaded.load_state_dict(torch.load(dense_checkpoint, weights_only=True))
    data = load_dataset("digits", seed=0, progress=False)
    assert result["dense"]["accuracy"] == pytest.approx(
        evaluate(loaded, data.x_test, data.y_test)[1]
    )
    assert result["pruned"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert result["dense"]["measurement"]["latency_repeats_b1"] > 0


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--model", FACTORY, "--checkpoint", "{tmp}/nope.pt"], "does not exist"),
        (["--model", "no_such_pkg.nets:make_net"], "cannot import module 'no_such_pkg.nets'"),
        (["--model", "cli_user_nets.nets:nothing"], "has no attribute 'nothing'"),
        (
            ["--model", FACTORY, "--checkpoint", "{ckpt}", "--model-arg", "hidden=8"],
            "shape mismatch(es), first inp.weight: checkpoint (16, 64) vs model (8, 64)",
        ),
        (["--model", FACTORY, "--model-arg", "hidden"], "--model-arg expects KEY=VALUE"),
    ],
)
def test_bad_user_model_input_is_one_line_and_exit_2(
    argv: list[str], fragment: str, dense_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        a.replace("{tmp}", str(dense_checkpoint.parent)).replace("{ckpt}", str(dense_checkpoint))
        for a in argv
    ]
    assert main(["prune", *argv, "--epochs", "1", "--quiet"]) == 2
    assert fragment in one_line_error(capsys)
