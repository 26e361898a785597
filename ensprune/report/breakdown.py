"""Frames that break a run down: methods at equal sparsity, per-layer sparsity, the GA's progress.

* :func:`method_comparison_frame`: the search's trials binned by achieved sparsity, per
  architecture and pruning method: trials, best and median validation accuracy per bin, so methods
  are compared at equal sparsity rather than at whatever sparsity each happened to reach.
* :func:`layer_sparsity_frame`: each chosen pruned member's prunable layers by qualified name:
  weights of the dense layer, non-zero weights kept, sparsity (read from ``members/<m>/pruned.pt``
  and ``dense.pt``, so weights removed by compaction count as pruned).
* :func:`ga_progress_frame`: the per-generation log a GA selector recorded at selection time
  (``gen``, ``best``, ``mean``, ``median`` fitness, teams scored; ``ga``, ``nsga2``, joint
  ``ga``), or None for other selectors.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from ensprune.errors import CheckpointError, RunDirError
from ensprune.models.measure import prunable_parameters
from ensprune.rundir import RunDir

logger = logging.getLogger(__name__)

SPARSITY_BIN = 0.1
"""Width of the sparsity bins in which methods are compared."""

GA_LOG_COLUMNS = ("gen", "best")
"""Columns that mark a selector's table as a GA's per-generation log (``evolve``'s logbook)."""

_COMPLETE = "COMPLETE"


def method_comparison_frame(
    trials: pd.DataFrame, members: pd.DataFrame | None = None, width: float = SPARSITY_BIN
) -> pd.DataFrame:
    """Completed trials binned by achieved sparsity: best and median accuracy per method.

    Args:
        trials: the trials frame (member, state, method, sparsity, val_accuracy).
        members: the members frame; its ``architecture`` column groups members (without it, or
            for a member it does not list, the architecture is ``"all"``).
        width: bin width in sparsity (bins ``[k*width, (k+1)*width)``, the last one closed).

    Returns:
        one row per (architecture, bin, method) with trials: ``architecture``, ``sparsity_low``,
        ``sparsity_high``, ``method``, ``n_trials``, ``best_val_accuracy``,
        ``median_val_accuracy``; sorted by architecture, bin and method.

    Example:
        >>> table = method_comparison_frame(trials_frame(run), members_frame(run))
        >>> table[table.sparsity_low == 0.8]
    """
    if not 0 < width <= 1:
        raise ValueError(f"width must be in (0, 1]; got {width}")
    columns = [
        "architecture",
        "sparsity_low",
        "sparsity_high",
        "method",
        "n_trials",
        "best_val_accuracy",
        "median_val_accuracy",
    ]
    done = trials[trials["state"].astype(str).str.upper() == _COMPLETE]
    done = done[np.isfinite(done["sparsity"].astype(float))]
    done = done[np.isfinite(done["val_accuracy"].astype(float))]
    if not len(done):
        return pd.DataFrame(columns=columns)
    arch = {}
    if members is not None and "architecture" in members.columns:
        arch = dict(
            zip(members["member"].astype(str), members["architecture"].astype(str), strict=True)
        )
    n_bins = math.ceil(round(1.0 / width, 9))
    sparsity = done["sparsity"].astype(float).clip(0.0, 1.0)
    index = np.minimum(np.floor(sparsity / width + 1e-9).astype(int), n_bins - 1)
    frame = pd.DataFrame(
        {
            "architecture": [arch.get(str(m), "all") for m in done["member"]],
            "bin": index.to_numpy(),
            "method": done["method"].astype(str).to_numpy(),
            "val_accuracy": done["val_accuracy"].astype(float).to_numpy(),
        }
    )
    table = (
        frame.groupby(["architecture", "bin", "method"], sort=True)["val_accuracy"]
        .agg(n_trials="size", best_val_accuracy="max", median_val_accuracy="median")
        .reset_index()
    )
    table.insert(1, "sparsity_low", (table["bin"] * width).round(6))
    table.insert(2, "sparsity_high", ((table["bin"] + 1) * width).clip(upper=1.0).round(6))
    return table.drop(columns="bin")[columns]


def layer_sparsity_frame(run: RunDir, members: Iterable[str]) -> pd.DataFrame:
    """Per prunable layer of each member's chosen pruned network: weights, non-zero, sparsity.

    A layer's ``weights`` are the dense network's (``dense.pt``), so a compacted layer's removed
    rows or channels count as pruned; without a dense checkpoint the pruned layer's own size is
    used.

    Raises:
        RunDirError: a member's ``pruned.pt`` is missing.
        CheckpointError: a checkpoint is corrupt.
    """
    rows = []
    for member in members:
        pruned = prunable_parameters(run.member_model(member, "pruned"))
        try:
            dense_sizes = {
                name: p.numel()
                for name, p in prunable_parameters(run.member_model(member, "dense")).items()
            }
        except (RunDirError, CheckpointError) as exc:
            logger.info("%s: per-layer sparsity against the pruned sizes (%s)", member, exc)
            dense_sizes = {}
        for name, weight in pruned.items():
            total = dense_sizes.get(name, weight.numel())
            nonzero = int(torch.count_nonzero(weight))
            rows.append(
                {
                    "member": member,
                    "layer": name,
                    "weights": total,
                    "nonzero": nonzero,
                    "sparsity": 1.0 - nonzero / total if total else 0.0,
                }
            )
    return pd.DataFrame(rows, columns=["member", "layer", "weights", "nonzero", "sparsity"])


def ga_progress_frame(
    table: pd.DataFrame | None, selection: Mapping[str, Any] | None = None
) -> pd.DataFrame | None:
    """An evolutionary selector's per-generation progress, or None for other selectors.

    Read from ``selection.json``'s ``history`` (``ga`` and ``nsga2`` record it at selection
    time; NSGA-II's numbers are the first front's accuracy, with ``front_size``), else from the
    selector's table (``teams.csv``) when that is the GA toolkit's logbook (``joint`` with
    ``search = "ga"``, and ``ga`` runs of older versions): ``gen``, ``n_evaluated``, ``best``,
    ``mean`` (absent in older runs) and ``median`` fitness of each generation's population.
    Infeasible genomes score ``-inf`` (``null`` in JSON), shown as missing.
    """
    history = (selection or {}).get("history")
    if isinstance(history, list) and history and all(isinstance(r, dict) for r in history):
        table = pd.DataFrame(history)
    if table is None or not all(c in table.columns for c in GA_LOG_COLUMNS):
        return None
    stats = ("gen", "n_evaluated", "front_size", "best", "mean", "median")
    log = table[[c for c in stats if c in table.columns]].copy()
    for column in ("best", "mean", "median"):
        if column in log.columns:
            values = pd.to_numeric(log[column], errors="coerce").astype(float)
            log[column] = values.where(np.isfinite(values))
    return log.sort_values("gen", kind="stable").reset_index(drop=True)
