"""The menu stage: every member's operating points, measured and predicted once, nothing retrained.

A member's menu is its dense network plus the Pareto-optimal COMPLETE trials of its study,
validation accuracy against the run's cost (``[selection] cost``, :data:`COST_COLUMNS`):

- ``macs``: effective MACs (non-zero weights only: what a sparse kernel could skip to);
- ``compacted_macs``: the MACs the *compacted* network executes, every weight counted: the
  point's network with every dead unit removed (:func:`deployed_network`). A structured method's
  network (``dropnet``, ``apoz``) is already smaller; an unstructured mask only loses the units
  nothing reads any more;
- ``params``: non-zero prunable weights;
- ``latency``: milliseconds per batch of :data:`LATENCY_BATCH` measured here on the COMPACTED
  network (what a user deploys; a masked network runs as fast as its dense one).

The joint selector (:mod:`ensprune.ensemble.selection.joint`) chooses among these points; the
report scores its choice on test.

Each point's costs and its validation and test probabilities are cached under
``members/<member>/menu[-<search>]/`` (atomic writes, keyed by a hash of the checkpoint they come
from and, for costs, by :data:`COSTS_DEFINITION`), so an interrupted menu build, a resume, or a
change of the cost kind reuses what was written; only then are the pool's menus assembled into
``menus/val.npz``, ``menus/test.npz`` (:class:`~ensprune.ensemble.menu.Menu` files), ``menu.csv``
(one row per point) and ``menu_candidates.csv`` (every measured checkpoint of every member, on
the menu or not, with the two-stage rule's point marked: the report's references).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ensprune import rundir as rd
from ensprune.data import Dataset
from ensprune.ensemble.menu import Menu
from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection.joint import accuracy_front
from ensprune.errors import CheckpointError
from ensprune.models import (
    count_macs,
    count_parameters,
    load_model,
    measure_latency_ms,
    predict_proba,
)
from ensprune.models.edits import edits_of
from ensprune.pruning import compact, dead_units
from ensprune.study.search import TrainedMember
from ensprune.study.spec import StudySpec

logger = logging.getLogger("ensprune.study")

__all__ = [
    "COSTS_DEFINITION",
    "COST_COLUMNS",
    "COST_KINDS",
    "build_menus",
    "deployed_network",
    "point_name",
]

#: ``[selection] cost`` -> the menu.csv column (and the menu's ``cost_name``)
COST_COLUMNS = {
    "macs": "effective_macs",
    "compacted_macs": "compacted_macs",
    "params": "nonzero_params",
    "latency": "compacted_latency_ms",
}
COST_KINDS = tuple(COST_COLUMNS)
#: version of what the cached costs mean; cached records of another version are measured again
#: (version 1 timed the masked network as ``latency_ms``)
COSTS_DEFINITION = "ensprune-menu-costs/2"
#: the cost columns each kind needs measured on the compacted network (slow: a dependency
#: trace, and a timing for latency)
_COMPACTED = {
    "compacted_macs": ("compacted_macs",),
    "latency": ("compacted_macs", "compacted_latency_ms"),
}
DENSE = "dense"
LATENCY_BATCH = 256
LATENCY_REPEATS = 10
#: ``mapper(func, items)``: ``[func(x) for x in items]``, in order, wherever it runs them
Mapper = Callable[[Callable[[Any], Any], list[Any]], list[Any]]


def point_name(member: str, key: str) -> str:
    """A point's name: ``lenet300-s0@dense``, ``lenet300-s0@t12`` (trial 12)."""
    return f"{member}@{key}"


def _fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _load(path: Path, member: str) -> nn.Module:
    try:
        model, _ = load_model(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} (member {member})") from None
    return model


def _read_costs(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}  # a damaged cache is rebuilt, not trusted
    return cached if isinstance(cached, dict) else {}


@torch.no_grad()
def deployed_network(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[nn.Module, bool]:
    """The network a user deploys: ``model`` with every dead unit physically removed.

    A unit is dead when nothing downstream reads it (:func:`~ensprune.pruning.dead_units`):
    structured methods have removed theirs already, unstructured masks leave some behind at
    high sparsity. Removal is exact (same outputs). Networks with replaced modules (factorised
    or wrapped layers) cannot be compacted further and are returned as they are.

    Returns:
        (network, compacted): ``compacted`` is False when ``model`` was returned unchanged
        because of replaced modules.
    """
    if edits_of(model):
        return model, False
    example = torch.zeros((1, *input_shape))
    return compact(model, dead_units(model, example), example), True


def _measure_compacted(
    record: dict[str, Any], model: nn.Module, shape: tuple[int, ...], columns: tuple[str, ...]
) -> None:
    """Fill ``columns`` of ``record`` from the compacted network (MACs as executed, latency)."""
    small, compacted = deployed_network(model, shape)
    record["compacted"] = compacted
    record["compacted_macs"] = float(count_macs(small, shape))
    if "compacted_latency_ms" in columns:
        record["compacted_latency_ms"] = float(
            measure_latency_ms(small, shape, batch_size=LATENCY_BATCH, repeats=LATENCY_REPEATS)
        )


def _member_costs(
    folder: Path,
    sources: dict[str, Path],
    member: str,
    shape: tuple[int, ...],
    kind: str,
) -> dict[str, dict[str, Any]]:
    """Costs of every source checkpoint (key -> record), reusing the cache where the checkpoint
    hash and :data:`COSTS_DEFINITION` match.

    Costs of the compacted network are measured only when ``kind`` needs them (its MACs for
    ``compacted_macs``; its MACs and latency for ``latency``). The cache is rewritten after
    every newly measured point, so an interrupted build (latency measurement is the slow part)
    keeps what it measured.
    """
    cache_path = folder / "costs.json"
    cached = _read_costs(cache_path)
    costs: dict[str, dict[str, Any]] = {}
    needed = _COMPACTED.get(kind, ())
    for key, path in sources.items():
        sha = _fingerprint(path)
        record = cached.get(key)
        if not (
            isinstance(record, dict)
            and record.get("sha") == sha
            and record.get("definition") == COSTS_DEFINITION
        ):
            record = None  # not measured yet, from another checkpoint, or an older definition
        if record is not None and all(record.get(c) is not None for c in needed):
            costs[key] = record
            continue
        model = _load(path, member)
        if record is None:
            counts = count_parameters(model)
            record = {
                "sha": sha,
                "definition": COSTS_DEFINITION,
                "effective_macs": float(count_macs(model, shape, effective=True)),
                "nonzero_params": float(counts.prunable_nonzero),
                "sparsity": counts.sparsity,
                "compacted": None,
                "compacted_macs": None,
                "compacted_latency_ms": None,
            }
        if needed:
            _measure_compacted(record, model, shape, needed)
        costs[key] = cached[key] = record
        rd.write_json(cache_path, cached)
    return costs


def _point_predictions(
    item: tuple[Path, str, str, Callable[[], nn.Module]],
    *,
    x_val: np.ndarray,
    x_test: np.ndarray,
    device: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Validation and test probabilities of one point (its cache folder, key, checkpoint hash and
    loader): from the cache, else computed and cached."""
    folder, key, sha, model = item
    path = folder / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                if (
                    str(npz["sha"]) == sha
                    and len(npz["val"]) == len(x_val)
                    and len(npz["test"]) == len(x_test)
                ):
                    return npz["val"], npz["test"]
        except (OSError, ValueError, KeyError, EOFError):
            pass  # damaged or foreign: recomputed below
    net = model()
    val = predict_proba(net, x_val, device=device)
    test = predict_proba(net, x_test, device=device)
    rd.write_npz(path, val=val, test=test, sha=np.asarray(sha))
    return val, test


def _member_points(
    trials: pd.DataFrame, member: str, dense_val_accuracy: float, run_dir: Path
) -> tuple[dict[str, Path], dict[str, dict[str, Any]]]:
    """Candidate points of one member: source checkpoint and trial facts, the dense network first."""
    sources = {DENSE: run_dir / rd.MEMBERS_DIR / member / "dense.pt"}
    facts: dict[str, dict[str, Any]] = {
        DENSE: {"trial": -1, "method": DENSE, "val_accuracy": dense_val_accuracy, "checkpoint": ""}
    }
    if not sources[DENSE].is_file():
        raise CheckpointError(
            f"{sources[DENSE]} is missing (member {member}); re-run the spec to retrain it"
        )
    rows = trials[(trials.member == member) & (trials.state == "COMPLETE")]
    for row in rows.itertuples():
        checkpoint = str(row.checkpoint) if isinstance(row.checkpoint, str) else ""
        if not checkpoint or not np.isfinite(row.val_accuracy):
            continue
        if not (run_dir / checkpoint).is_file():  # e.g. deleted by hand: leave it off the menu
            logger.warning(
                "[%s] trial %d: checkpoint %s is missing; left off the menu",
                member,
                int(row.number),
                checkpoint,
            )
            continue
        key = f"t{int(row.number)}"
        sources[key] = run_dir / checkpoint
        facts[key] = {
            "trial": int(row.number),
            "method": str(row.method),
            "val_accuracy": float(row.val_accuracy),
            "checkpoint": checkpoint,
        }
    return sources, facts


def build_menus(
    spec: StudySpec,
    data: Dataset,
    pool: dict[str, TrainedMember],
    trials: pd.DataFrame,
    run_dir: Path,
    search_suffix: str = "",
    mapper: Mapper | None = None,
) -> pd.DataFrame:
    """Build (or reuse) every member's menu; write ``menus/*.npz``, ``menu.csv`` and
    ``menu_candidates.csv``.

    Args:
        mapper: runs the points' predictions, ``mapper(func, items) == [func(x) for x in items]``
            (e.g. on parallel workers); the default is that loop, here. Costs (latency above all)
            are measured here, one network at a time.

    Returns:
        menu.csv's frame: one row per point (``point`` index, ``name``, ``member``,
        ``member_index``, ``trial`` (-1: dense), ``method``, ``sparsity``, ``val_accuracy``,
        ``effective_macs``, ``nonzero_params``, ``compacted_macs`` and
        ``compacted_latency_ms`` (empty unless the cost kind needed them), ``cost``,
        ``checkpoint``). ``menu_candidates.csv`` has the same cost columns for every measured
        checkpoint, with ``on_menu`` and ``two_stage`` (the two-stage rule's point) flags.
    """
    kind = spec.selection.cost
    column = COST_COLUMNS[kind]
    rows: list[dict[str, Any]] = []
    candidates: list[dict[str, Any]] = []
    work: list[tuple[Path, str, str, Callable[[], nn.Module]]] = []
    for index, (member, _, _) in enumerate(spec.members):
        folder = rd.menu_dir(run_dir, member, search_suffix)
        sources, facts = _member_points(trials, member, pool[member].val_accuracy, run_dir)
        costs = _member_costs(folder, sources, member, data.input_shape, kind)
        keys = list(sources)
        accuracy = np.array([facts[k]["val_accuracy"] for k in keys])
        cost = np.array([costs[k][column] for k in keys], dtype=np.float64)
        on_front = {keys[i] for i in accuracy_front(accuracy, cost)}
        chosen = [k for k in keys if k == DENSE or k in on_front]  # the dense network always
        for key in sorted(chosen, key=lambda k: (costs[k][column], k)):
            loader = functools.partial(_load, sources[key], member)
            work.append((folder, key, costs[key]["sha"], loader))
            record = costs[key]
            rows.append(
                {
                    "point": len(rows),
                    "name": point_name(member, key),
                    "member": member,
                    "member_index": index,
                    **{k: facts[key][k] for k in ("trial", "method", "val_accuracy")},
                    **_cost_columns(record),
                    "cost": record[column],
                    "checkpoint": facts[key]["checkpoint"],
                }
            )
        two_stage = _two_stage_trial(trials, member)
        for key in keys:
            candidates.append(
                {
                    "name": point_name(member, key),
                    "member": member,
                    "member_index": index,
                    **{k: facts[key][k] for k in ("trial", "method", "val_accuracy")},
                    **_cost_columns(costs[key]),
                    "on_menu": key in chosen,
                    "two_stage": facts[key]["trial"] == two_stage,
                }
            )
        logger.info("[%s] menu: %d operating points (%s)", member, len(chosen), column)
    predict = functools.partial(
        _point_predictions, x_val=data.x_val, x_test=data.x_test, device=spec.device
    )
    predicted = mapper(predict, work) if mapper is not None else [predict(w) for w in work]
    frame = pd.DataFrame(rows)
    names = tuple(frame["name"])
    member_index = frame["member_index"].to_numpy(dtype=np.int64)
    cost = frame["cost"].to_numpy(dtype=np.float64)
    for split, position, y in (("val", 0, data.y_val), ("test", 1, data.y_test)):
        parts = [pair[position] for pair in predicted]
        points = PredictionSet(np.stack(parts), y, names=names, cost=cost)
        rd.write_menu(run_dir, split, Menu(points, member_index, column))
    rd.write_csv(run_dir / rd.MENU_CANDIDATES_CSV, pd.DataFrame(candidates))
    rd.write_csv(run_dir / rd.MENU_CSV, frame)
    return frame


def _cost_columns(record: dict[str, Any]) -> dict[str, Any]:
    """A cost record's columns for menu.csv (``compacted`` says whether compaction applied)."""
    names = ("sparsity", "effective_macs", "nonzero_params", "compacted_macs")
    return {
        **{k: record[k] for k in names},
        "compacted_latency_ms": record["compacted_latency_ms"],
        "compacted": record["compacted"],
    }


def _two_stage_trial(trials: pd.DataFrame, member: str) -> int | None:
    """The trial number the two-stage rule chose for ``member`` (None: none marked)."""
    if "chosen" not in trials.columns:
        return None
    rows = trials[(trials.member == member) & trials.chosen.astype(bool)]
    return int(rows.number.iloc[0]) if len(rows) else None
