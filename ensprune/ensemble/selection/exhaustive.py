"""Exhaustive search: score every team of 2 .. max_size members and keep the fittest.

The reference optimum the other search selectors are measured against. It refuses to run when
the number of teams exceeds ``max_teams`` (65,519 teams for a 16-member pool; 2**M grows fast).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ensprune.ensemble.focal import normalize_mode
from ensprune.ensemble.objective import TeamScores
from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection._base import (
    ObjectiveSelector,
    Selection,
    best_row,
    register_selector,
)
from ensprune.ensemble.selection._teams import count_teams, members_of, teams_of_size
from ensprune.errors import SpecError


@register_selector("exhaustive")
@dataclass(kw_only=True)
class ExhaustiveSelector(ObjectiveSelector):
    """The fittest of all teams of 2 to max_size members (guarded by a team-count limit).

    Attributes:
        normalize: ``"none"``, or min-max normalise focal scores per (focal member, team size)
            over all teams of that size (``"candidates"`` and ``"all"`` are the same here).
        max_teams: refuse pools whose number of teams exceeds this.
        table_rows: keep this many of the fittest teams in ``Selection.table`` (all: None).

    Ties go to the smaller team, then to the lexicographically first.
    """

    normalize: str | bool = "none"
    max_teams: int = 200_000
    table_rows: int | None = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        self.normalize = normalize_mode(self.normalize)

    def _select(self, preds: PredictionSet) -> Selection:
        m = preds.n_members
        s_max = self.size_limit(preds)
        n = count_teams(m, 2, s_max)
        if n > self.max_teams:
            raise SpecError(
                f"exhaustive search over {m} members up to size {s_max} means {n} teams, more "
                f"than max_teams={self.max_teams}; lower --max-size or use the ga selector"
            )
        evaluator = self.evaluator(preds, normalize=self.normalize)
        parts = []
        for size in range(2, s_max + 1):
            parts.append(evaluator.evaluate(teams_of_size(m, size)))
            self.log(f"size {size}: {len(parts[-1].masks)} teams scored")
        scores = TeamScores.concat(parts)
        row = best_row(scores)
        order = np.lexsort((np.arange(n), scores.size, -scores.fitness))
        if self.table_rows is not None:
            order = order[: self.table_rows]
        return self.make_selection(
            preds,
            members_of(scores.masks[row]),
            scores=self.team_scores(scores, row),
            table=scores.take(order).frame(preds.names),
            n_evaluated=n,
        )
