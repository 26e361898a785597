"""Third-party plugins through entry points, from a real (tiny) installed distribution.

The package is written into ``tmp_path`` with a ``*.dist-info`` folder holding ``METADATA`` and
``entry_points.txt``, exactly what ``pip install`` leaves in site-packages, and put on
``sys.path``; ``importlib.metadata`` finds it the ordinary way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from ensprune._registry import Registry
from ensprune.cli.list_cmd import entries
from ensprune.data import DATASETS, load_dataset
from ensprune.ensemble import SELECTORS
from ensprune.ensemble.predictions import PredictionSet
from ensprune.errors import UnknownNameError
from ensprune.models import MODELS, TrainConfig, build_model
from ensprune.plugins import GROUPS
from ensprune.pruning import METHODS, PruningContext, make_method

REPO = Path(__file__).resolve().parents[1]

PLUGIN_CODE = '''
"""A third-party package adding one plugin of every kind to ensprune."""
from dataclasses import dataclass

import numpy as np
from torch import nn

from ensprune.data import RawData
from ensprune.ensemble import Selection, Selector
from ensprune.models import prunable_parameters
from ensprune.pruning import ScoreMethod


class SquaredMagnitude(ScoreMethod):
    """Keep the weights of largest w squared (a plugin's saliency)."""

    description = "plugin: squared magnitude"

    def scores(self, model, context):
        return {n: p.detach() ** 2 for n, p in prunable_parameters(model).items()}


@dataclass(kw_only=True)
class FirstTwo(Selector):
    """The first two members (a plugin's selector)."""

    def _select(self, preds):
        return Selection(self.name, [0, 1], list(preds.names[:2]), 0.0, self.voting)


def blobs(request):
    """Two Gaussian blobs as 1x2x2 images (a plugin's dataset)."""
    rng = np.random.default_rng(0)
    y = np.arange(200) % 2
    x = rng.normal(size=(200, 1, 2, 2)) + 3.0 * y[:, None, None, None]
    return RawData(x=x.astype(np.float32), y=y.astype(np.int64), num_classes=2)


def tiny_mlp(input_shape, num_classes, hidden=6):
    """A one-hidden-layer MLP (a plugin's model)."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(int(np.prod(input_shape)), hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )
'''

ENTRY_POINTS = """
[ensprune.methods]
plug_squared = ensprune_testplug:SquaredMagnitude
plug_broken = ensprune_testplug.missing:Nothing
magnitude = ensprune_testplug:SquaredMagnitude

[ensprune.selectors]
plug_first_two = ensprune_testplug:FirstTwo

[ensprune.datasets]
plug_blobs = ensprune_testplug:blobs

[ensprune.models]
plug_mlp = ensprune_testplug:tiny_mlp
"""


def write_distribution(root: Path) -> Path:
    """Write the package and its dist-info (as pip would install it) under ``root``."""
    (root / "ensprune_testplug").mkdir()
    (root / "ensprune_testplug" / "__init__.py").write_text(textwrap.dedent(PLUGIN_CODE))
    info = root / "ensprune_testplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ensprune-testplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The plugin distribution on sys.path; the four registries re-read their entry points."""
    root = write_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(root))
    for registry in (METHODS, SELECTORS, DATASETS, MODELS):
        # a copy of the built-ins, restored afterwards: the plugins leave no trace in others' tests
        monkeypatch.setattr(registry, "_registered", dict(registry._registered))
        monkeypatch.setattr(registry, "_plugins_loaded", False)
        monkeypatch.setattr(registry, "_broken", {})
    yield root
    sys.modules.pop("ensprune_testplug", None)


def test_registries_declare_the_documented_groups() -> None:
    declared = {
        "methods": METHODS.entry_points,
        "selectors": SELECTORS.entry_points,
        "datasets": DATASETS.entry_points,
        "models": MODELS.entry_points,
    }
    assert declared == GROUPS


def test_plugins_of_every_kind_load_and_work(installed: Path) -> None:
    assert "plug_squared" in METHODS.names() and "Plug_Squared" in METHODS
    assert "plug_first_two" in SELECTORS.names()
    assert "plug_blobs" in DATASETS.names() and "plug_mlp" in MODELS.names()

    data = load_dataset("plug_blobs", seed=0, progress=False)
    assert data.input_shape == (1, 2, 2) and data.num_classes == 2
    net = build_model("plug_mlp", data.input_shape, data.num_classes)
    assert net(torch.zeros(3, 1, 2, 2)).shape == (3, 2)

    context = PruningContext(
        data.x_train, data.y_train, data.x_val, data.y_val, finetune=TrainConfig(epochs=0)
    )
    result = make_method("PLUG_SQUARED", schedule="oneshot").prune(net, 0.5, context)
    kept = result.masks["1.weight"]
    weight = net[1].weight.detach().abs()
    assert kept.sum() < kept.numel()  # pruned, and by magnitude: kept weights are the large ones
    assert weight[kept].min() >= weight[~kept].max()

    preds = PredictionSet(np.full((3, 4, 2), 0.5), np.array([0, 1, 0, 1]), names=("a", "b", "c"))
    selection = SELECTORS.get("plug_first_two")().select(preds)
    assert selection.names == ["a", "b"] and selection.selector == "plug_first_two"


def test_a_broken_plugin_says_why_and_a_builtin_is_never_replaced(installed: Path) -> None:
    from ensprune.pruning.magnitude import MagnitudePruning

    assert "plug_broken" not in METHODS.names()
    with pytest.raises(UnknownNameError, match=r"plug_broken.*ensprune_testplug\.missing.*"):
        METHODS.get("plug_broken")
    assert METHODS.get("magnitude") is MagnitudePruning


def test_entry_points_load_lazily_on_the_first_lookup(installed: Path) -> None:
    fresh: Registry[object] = Registry("thing", entry_points="ensprune.models")
    fresh.register("builtin")(object())
    assert fresh._plugins_loaded is False
    assert fresh.names() == ["builtin", "plug_mlp"]


def test_ensprune_list_shows_the_plugins(installed: Path) -> None:
    """What a user sees after ``pip install``: the plugins in ``ensprune list`` (a real process)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), str(REPO)])}
    listed = subprocess.run(
        [sys.executable, "-m", "ensprune", "list", "methods"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "plug_squared" in listed.stdout and "plugin: squared magnitude" in listed.stdout
    for kind, name, text in (
        ("selectors", "plug_first_two", "The first two members"),
        ("datasets", "plug_blobs", "Two Gaussian blobs"),
        ("models", "plug_mlp", "A one-hidden-layer MLP"),
    ):
        assert dict(entries(kind))[name].startswith(text)
