"""The menu stage: every member's operating points, measured and predicted once, nothing retrained.

A member's menu is its dense network plus the Pareto-optimal COMPLETE trials of its study,
validation accuracy against the run's cost (``[selection] cost``): effective MACs (non-zero
weights), non-zero parameters, or latency measured here. The joint selector
(:mod:`ensprune.ensemble.selection.joint`) chooses among these points; the report scores its
choice on test.

Each point's costs and its validation and test probabilities are cached under
``members/<member>/menu[-<search>]/`` (atomic writes, keyed by a hash of the checkpoint they come
from), so an interrupted menu build, a resume, or a change of the cost kind reuses what was
written; only then are the pool's menus assembled into ``menus/val.npz``, ``menus/test.npz``
(:class:`~ensprune.ensemble.menu.Menu` files) and ``menu.csv`` (one row per point).
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
from ensprune.study.search import TrainedMember
from ensprune.study.spec import StudySpec

logger = logging.getLogger("ensprune.study")

__all__ = ["COST_COLUMNS", "COST_KINDS", "build_menus", "point_name"]

#: ``[selection] cost`` -> the menu.csv column (and the menu's ``cost_name``)
COST_COLUMNS = {"macs": "effective_macs", "params": "nonzero_params", "latency": "latency_ms"}
COST_KINDS = tuple(COST_COLUMNS)
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


def _member_costs(
    folder: Path,
    sources: dict[str, Path],
    member: str,
    shape: tuple[int, ...],
    latency: bool,
) -> dict[str, dict[str, Any]]:
    """Costs of every source checkpoint (key -> record), reusing the cache where the hash matches.

    The cache is rewritten after every newly measured point, so an interrupted build (latency
    measurement is the slow part) keeps what it measured.
    """
    cache_path = folder / "costs.json"
    cached = _read_costs(cache_path)
    costs: dict[str, dict[str, Any]] = {}
    for key, path in sources.items():
        sha = _fingerprint(path)
        record = cached.get(key)
        if not (isinstance(record, dict) and record.get("sha") == sha):
            record = None  # not measured yet, or from another checkpoint
        if record is not None and not (latency and record.get("latency_ms") is None):
            costs[key] = record
            continue
        model = _load(path, member)
        if record is None:
            counts = count_parameters(model)
            record = {
                "sha": sha,
                "effective_macs": float(count_macs(model, shape, effective=True)),
                "nonzero_params": float(counts.prunable_nonzero),
                "sparsity": counts.sparsity,
                "latency_ms": None,
            }
        if latency:
            record["latency_ms"] = float(
                measure_latency_ms(model, shape, batch_size=LATENCY_BATCH, repeats=LATENCY_REPEATS)
            )
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
    """Build (or reuse) every member's menu; write ``menus/*.npz`` and ``menu.csv``.

    Args:
        mapper: runs the points' predictions, ``mapper(func, items) == [func(x) for x in items]``
            (e.g. on parallel workers); the default is that loop, here. Costs (latency above all)
            are measured here, one network at a time.

    Returns:
        menu.csv's frame: one row per point (``point`` index, ``name``, ``member``,
        ``member_index``, ``trial`` (-1: dense), ``method``, ``sparsity``, ``val_accuracy``,
        ``effective_macs``, ``nonzero_params``, ``latency_ms`` (empty unless measured),
        ``cost``, ``checkpoint``).
    """
    kind = spec.selection.cost
    column = COST_COLUMNS[kind]
    rows: list[dict[str, Any]] = []
    work: list[tuple[Path, str, str, Callable[[], nn.Module]]] = []
    for index, (member, _, _) in enumerate(spec.members):
        folder = rd.menu_dir(run_dir, member, search_suffix)
        sources, facts = _member_points(trials, member, pool[member].val_accuracy, run_dir)
        costs = _member_costs(folder, sources, member, data.input_shape, kind == "latency")
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
                    "sparsity": record["sparsity"],
                    "effective_macs": record["effective_macs"],
                    "nonzero_params": record["nonzero_params"],
                    "latency_ms": record["latency_ms"],
                    "cost": record[column],
                    "checkpoint": facts[key]["checkpoint"],
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
    rd.write_csv(run_dir / rd.MENU_CSV, frame)
    return frame
