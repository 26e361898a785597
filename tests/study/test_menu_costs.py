"""Menu costs of compacted networks: ``[selection] cost = "compacted_macs"`` and ``"latency"``.

The compacted cost of a point is what its network executes once every dead unit is removed:
lower than dense for a structured (DropNet) point, dense minus the dead units for a masked one;
cached costs of another cost definition are measured again; menus round-trip through the run
directory with the cost named; a bad cost name is one line and exit 2 before any training.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import ensprune.study.menus as menus_module
from ensprune import rundir as rd
from ensprune.cli import main
from ensprune.data import load_dataset
from ensprune.ensemble.menu import Menu
from ensprune.models import TrainConfig, build_seeded, count_macs, save_model
from ensprune.pruning import PruningContext, make_method
from ensprune.study import StudySpec
from ensprune.study.menus import COSTS_DEFINITION, build_menus, deployed_network
from ensprune.study.search import TrainedMember
from ensprune.study.spec import COST_KINDS

from ._specs import one_line_error

SHAPE = (1, 8, 8)
DENSE_MACS = 64 * 300 + 300 * 100 + 100 * 10  # lenet300 on 8x8 digits
DEAD = [3, 17, 42, 99, 150, 201, 299]  # hidden units of layer 1 that nothing reads


@pytest.fixture(scope="module")
def digits() -> Any:
    return load_dataset("digits", seed=0, download=False, progress=False)


@pytest.fixture(scope="module")
def dropnet_net(digits: Any) -> torch.nn.Module:
    """lenet300 after one DropNet round removing half its hidden units (compacted)."""
    torch.manual_seed(0)
    net = build_seeded("lenet300", SHAPE, 10, seed=0)
    context = PruningContext(
        digits.x_train[:400],
        digits.y_train[:400],
        digits.x_val,
        digits.y_val,
        finetune=TrainConfig(epochs=1, batch_size=64, lr=3e-3, patience=0),
    )
    method = make_method("dropnet", reset="none", fraction=0.5, kappa=0.0)
    return method.prune(net, 0.5, context).model


def masked_net() -> torch.nn.Module:
    """lenet300 with unstructured zeros: the DEAD units' outgoing columns and scattered weights."""
    net = build_seeded("lenet300", SHAPE, 10, seed=1)
    with torch.no_grad():
        net[3].weight[:, DEAD] = 0.0  # nothing reads these units of layer 1 any more
        scattered = torch.rand(net[5].weight.shape, generator=torch.Generator().manual_seed(0))
        net[5].weight[(scattered < 0.5) & (torch.arange(100) % 2 == 0)] = 0.0  # no whole column
    return net


def test_dropnet_point_executes_fewer_macs_equal_to_its_compacted_network(
    dropnet_net: torch.nn.Module,
) -> None:
    small, compacted = deployed_network(dropnet_net, SHAPE)
    assert compacted
    assert count_macs(small, SHAPE) == count_macs(dropnet_net, SHAPE) < DENSE_MACS
    assert count_macs(dropnet_net, SHAPE) <= 0.75 * DENSE_MACS  # half the hidden units are gone


def test_masked_point_loses_exactly_its_dead_units() -> None:
    net = masked_net()
    small, compacted = deployed_network(net, SHAPE)
    assert compacted
    # each dead unit takes its row of layer 1 (64 inputs) and its column of layer 3 (100 outputs)
    assert count_macs(small, SHAPE) == DENSE_MACS - len(DEAD) * (64 + 100)
    # the dead units' non-zero rows of layer 1 are gone; every other zero is still executed
    effective = count_macs(small, SHAPE, effective=True)
    assert effective == count_macs(net, SHAPE, effective=True) - len(DEAD) * 64
    assert effective < count_macs(small, SHAPE)
    x = torch.randn(16, *SHAPE)
    net.eval()
    small.eval()
    torch.testing.assert_close(small(x), net(x), atol=1e-5, rtol=1e-5)  # removal is exact


def _run_dir(tmp_path: Path, digits: Any, dropnet_net: torch.nn.Module) -> tuple[Path, Any]:
    """A run directory holding two members' dense and trial checkpoints, and their trials."""
    run_dir = tmp_path / "run"
    rows = []
    for seed, member in enumerate(("lenet300-s0", "lenet300-s1")):
        folder = run_dir / rd.MEMBERS_DIR / member
        save_model(folder / "dense.pt", build_seeded("lenet300", SHAPE, 10, seed=seed))
        for number, (method, net, accuracy) in enumerate(
            [("dropnet", dropnet_net, 0.80), ("magnitude", masked_net(), 0.85)]
        ):
            checkpoint = f"{rd.MEMBERS_DIR}/{member}/trials/trial-{number:04d}.pt"
            save_model(run_dir / checkpoint, copy.deepcopy(net))
            rows.append(
                {
                    "member": member,
                    "number": number,
                    "state": "COMPLETE",
                    "method": method,
                    "val_accuracy": accuracy,
                    "checkpoint": checkpoint,
                    "chosen": number == 1,
                }
            )
    return run_dir, pd.DataFrame(rows)


def _spec(cost: str) -> StudySpec:
    return StudySpec.from_dict(
        {
            "study": {"name": "costs"},
            "pool": {"architectures": ["lenet300"], "seeds": [0, 1]},
            "selection": {"mode": "joint", "cost": cost, "budget": "1x_member", "max_size": 2},
        }
    )


def test_compacted_costs_round_trip_through_the_run_directory(
    tmp_path: Path, digits: Any, dropnet_net: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, trials = _run_dir(tmp_path, digits, dropnet_net)
    pool = {
        m: TrainedMember(torch.nn.Identity(), 0.9, {}, None) for m, _, _ in _spec("macs").members
    }
    frame = build_menus(_spec("compacted_macs"), digits, pool, trials, run_dir)
    menu = Menu.load(run_dir / rd.MENUS["val"])
    assert menu.cost_name == "compacted_macs" == Menu.load(run_dir / rd.MENUS["test"]).cost_name
    table = pd.read_csv(run_dir / rd.MENU_CSV)
    np.testing.assert_array_equal(menu.cost, table["cost"])
    np.testing.assert_array_equal(table["cost"], table["compacted_macs"])
    assert table["compacted_latency_ms"].isna().all()  # only measured when the cost is latency
    by_name = table.set_index("name")
    assert by_name.loc["lenet300-s0@dense", "cost"] == DENSE_MACS
    expected = {"t0": count_macs(dropnet_net, SHAPE), "t1": DENSE_MACS - len(DEAD) * 164}
    for key, macs in expected.items():
        if f"lenet300-s0@{key}" in by_name.index:  # on the menu: Pareto-optimal
            assert by_name.loc[f"lenet300-s0@{key}", "cost"] == macs
    # every measured checkpoint is in menu_candidates.csv, the two-stage point marked
    candidates = pd.read_csv(run_dir / rd.MENU_CANDIDATES_CSV).set_index("name")
    assert set(candidates.index) == {
        f"lenet300-s{s}@{k}" for s in (0, 1) for k in ("dense", "t0", "t1")
    }
    for key, macs in expected.items():
        assert candidates.loc[f"lenet300-s1@{key}", "compacted_macs"] == macs
    assert list(candidates[candidates.two_stage].trial) == [1, 1]
    assert set(frame["name"]) == set(candidates[candidates.on_menu].index)

    # latency: measured on the compacted networks, the compacted MACs reused from the cache
    calls: list[int] = []
    real = menus_module.deployed_network

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(menus_module, "deployed_network", counting)
    build_menus(_spec("latency"), digits, pool, trials, run_dir)
    assert len(calls) == 6  # every checkpoint once more, for its timing
    build_menus(_spec("latency"), digits, pool, trials, run_dir)
    build_menus(_spec("compacted_macs"), digits, pool, trials, run_dir)
    assert len(calls) == 6  # nothing measured again
    latency = pd.read_csv(run_dir / rd.MENU_CANDIDATES_CSV)["compacted_latency_ms"]
    assert (latency > 0).all()
    assert Menu.load(run_dir / rd.MENUS["val"]).cost_name == "compacted_macs"


def test_costs_cached_under_another_definition_are_measured_again(
    tmp_path: Path, digits: Any, dropnet_net: torch.nn.Module
) -> None:
    run_dir, trials = _run_dir(tmp_path, digits, dropnet_net)
    pool = {
        m: TrainedMember(torch.nn.Identity(), 0.9, {}, None) for m, _, _ in _spec("macs").members
    }
    build_menus(_spec("macs"), digits, pool, trials, run_dir)
    cache = rd.menu_dir(run_dir, "lenet300-s0") / "costs.json"
    records = json.loads(cache.read_text())
    assert {r["definition"] for r in records.values()} == {COSTS_DEFINITION}
    # a cache of the first definition: masked latency under "latency_ms", no definition
    old = {k: {**r, "latency_ms": 0.001, "effective_macs": -1.0} for k, r in records.items()}
    for record in old.values():
        del record["definition"]
    cache.write_text(json.dumps(old))
    build_menus(_spec("latency"), digits, pool, trials, run_dir)
    table = pd.read_csv(run_dir / rd.MENU_CSV)
    assert "latency_ms" not in table.columns and table["compacted_latency_ms"].notna().all()
    assert (table["effective_macs"] > 0).all()  # the old record's numbers were not reused
    assert Menu.load(run_dir / rd.MENUS["val"]).cost_name == "compacted_latency_ms"
    np.testing.assert_array_equal(table["cost"], table["compacted_latency_ms"])


def test_cost_kinds_of_the_spec_are_the_menus_columns() -> None:
    assert tuple(menus_module.COST_COLUMNS) == COST_KINDS
    assert _spec("Compacted_MACs").selection.cost == "compacted_macs"


def test_cli_refuses_a_bad_cost_name_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "joint.toml"
    spec.write_text('[selection]\nmode = "joint"\ncost = "flops"\n')
    assert main(["run", str(spec), "--run-dir", str(tmp_path / "run")]) == 2
    err = one_line_error(capsys)
    assert "[selection] cost must be one of macs, compacted_macs, params, latency" in err
    assert "'flops'" in err
    assert not (tmp_path / "run").exists()  # refused before anything was made
