"""HQ: hierarchical pruning of low-diversity teams (Wu & Liu, ICDM 2021; docs/metrics.md).

For sizes S = 2 .. S_max: the candidates are the teams of size S that contain no pruned team;
they are sorted from least diverse (consensus focal-diversity score; ties: lower validation
accuracy first, then lexicographic order) and the first ``floor(beta * n)`` are pruned. Every
superset of a pruned team is skipped at the larger sizes, since low diversity is inherited
upward. A team contains no pruned team exactly when all its subsets one member smaller were
kept, so the candidates of size S are generated from the kept teams of size S - 1
(Apriori-style), never by enumerating all C(M, S) teams.

HQ returns ONE team: among the kept teams within the budget, the one with the highest fitness of
:class:`~ensprune.ensemble.objective.Objective`; ties go to the smaller team, then to the
lexicographically first (the published code returns every kept team). Teams over the budget are
kept or pruned like the others but not extended (their supersets cost at least as much).

``normalize="all"`` min-max normalises each focal member's scores over all teams of a size, as
the published HQ code does, so it scores all C(M, S) teams of sizes 2 .. S_max;
``"candidates"`` normalises over the surviving candidates of a size only.

``Selection.table`` lists every kept and pruned team with its size, status, validation
accuracy, consensus diversity, raw focal values and fitness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ensprune.ensemble.budget import within_budget
from ensprune.ensemble.focal import normalize_mode
from ensprune.ensemble.objective import TeamScores
from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection._base import (
    ObjectiveSelector,
    Selection,
    best_row,
    register_selector,
)
from ensprune.ensemble.selection._teams import codes, count_teams, members_of, teams_of_size
from ensprune.errors import SpecError


def extend_kept(kept: np.ndarray) -> np.ndarray:
    """Teams one member larger all of whose one-smaller subsets are in ``kept``.

    Args:
        kept: (K, M) bool masks of kept teams, all of one size.

    Returns:
        (n, M) bool masks, in lexicographic order when ``kept`` is.
    """
    k, m = kept.shape
    if k == 0:
        return np.zeros((0, m), dtype=bool)
    last = m - 1 - np.argmax(kept[:, ::-1], axis=1)
    counts = m - 1 - last
    total = int(counts.sum())
    if total == 0:
        return np.zeros((0, m), dtype=bool)
    parent = np.repeat(np.arange(k), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    added = last[parent] + 1 + (np.arange(total) - starts)
    new = kept[parent].copy()
    new[np.arange(total), added] = True
    size = int(new[0].sum())
    bits = np.left_shift(np.uint64(1), np.arange(m, dtype=np.uint64))
    new_codes = codes(new)
    member_idx = np.nonzero(new)[1].reshape(total, size)
    sub_codes = new_codes[:, None] - bits[member_idx]
    ok = np.isin(sub_codes, codes(kept)).all(axis=1)
    return new[ok]


@register_selector("hq")
@dataclass(kw_only=True)
class HQSelector(ObjectiveSelector):
    """HQ hierarchical pruning of low-focal-diversity teams with prune ratio beta.

    Attributes:
        beta: share of each size's candidates pruned, in [0, 1).
        normalize: min-max normalisation of focal scores per (focal member, team size):
            ``"none"``, ``"candidates"`` (over each size's surviving candidates) or ``"all"``
            (over all teams of the size: the published HQ; see docs/metrics.md).
        max_teams: refuse to score more than this many teams in total (lower ``max_size``
            explicitly instead of running for hours).

    ``max_size`` (S_max) defaults to the pool size; the published scripts use 5.

    Example:
        >>> sel = HQSelector(beta=0.1, max_size=5, metrics=("gd", "kw")).select(val_preds)
        >>> sel.table.query("status == 'pruned'")
    """

    beta: float = 0.1
    normalize: str | bool = "none"
    max_teams: int = 200_000

    def __post_init__(self) -> None:
        super().__post_init__()
        self.normalize = normalize_mode(self.normalize)
        if not 0.0 <= self.beta < 1.0:
            raise SpecError(f"beta (prune ratio) must lie in [0, 1); got {self.beta}")
        if self.max_teams < 1:
            raise SpecError(f"max_teams must be >= 1; got {self.max_teams}")

    def _select(self, preds: PredictionSet) -> Selection:
        m = preds.n_members
        s_max = self.size_limit(preds)
        if self.normalize == "all" and count_teams(m, 2, s_max) > self.max_teams:
            raise SpecError(
                f"normalize='all' scores every team of 2 to {s_max} members, "
                f"{count_teams(m, 2, s_max)} teams, more than max_teams={self.max_teams}; "
                "lower --max-size or normalise over the candidates only"
            )
        evaluator = self.evaluator(preds, normalize=self.normalize)
        frames: list[pd.DataFrame] = []
        kept_parts: list[TeamScores] = []
        basis = np.zeros((0, m), dtype=bool)
        total = last = 0
        for size in range(2, s_max + 1):
            cand = teams_of_size(m, 2) if size == 2 else extend_kept(basis)
            if len(cand) == 0:
                break
            total += len(cand)
            if total > self.max_teams:
                raise SpecError(
                    f"HQ would score more than max_teams={self.max_teams} teams (reached size "
                    f"{size} of {s_max}); lower --max-size, or use the ga selector for large pools"
                )
            scores = evaluator.evaluate(cand)
            last = size
            n_prune = math.floor(self.beta * len(cand) + 1e-9)
            order = np.lexsort((np.arange(len(cand)), scores.accuracy, scores.diversity))
            pruned = np.zeros(len(cand), dtype=bool)
            pruned[order[:n_prune]] = True
            frame = scores.frame(preds.names)
            frame.insert(3, "status", np.where(pruned, "pruned", "kept"))
            frames.append(frame)
            kept = scores.take(~pruned)
            kept_parts.append(kept)
            within = np.ones(len(kept.masks), dtype=bool)
            if self.budget is not None and kept.cost is not None:
                within = within_budget(kept.cost, self.budget)
            basis = kept.masks[within]
            self.log(
                f"size {size}: {len(cand)} candidates, {n_prune} pruned, {len(kept.masks)} kept"
            )
        if self.normalize == "all":  # every team of the sizes visited was scored
            total = count_teams(m, 2, last)
        all_kept = TeamScores.concat(kept_parts)
        row = best_row(all_kept)
        table = pd.concat(frames, ignore_index=True)
        return self.make_selection(
            preds,
            members_of(all_kept.masks[row]),
            scores=self.team_scores(all_kept, row),
            table=table,
            n_evaluated=total,
        )
