"""Random teams: the baseline every selector must beat.

Draws a team size uniformly from 2 .. max_size (or uses ``k``), shuffles the pool with a numpy
Generator seeded by ``seed``, and takes members in that order, skipping any that would exceed the
budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ensprune.ensemble.budget import within_budget
from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection._base import Selection, Selector, register_selector
from ensprune.errors import SpecError


def random_team(
    rng: np.random.Generator,
    n_members: int,
    size: int,
    cost: np.ndarray | None = None,
    budget: float | None = None,
) -> list[int]:
    """Up to ``size`` members in random order, skipping members that break the budget."""
    team: list[int] = []
    spent = 0.0
    for i in rng.permutation(n_members):
        if len(team) == size:
            break
        c = 0.0 if cost is None else float(cost[i])
        if budget is not None and cost is not None:
            if not within_budget(spent + c, budget):
                continue
            # a first member must leave room for a second: a team needs two
            partner = np.delete(cost, i).min(initial=np.inf)
            if not team and not within_budget(c + partner, budget):
                continue
        team.append(int(i))
        spent += c
    return sorted(team)


@register_selector("random")
@dataclass(kw_only=True)
class RandomSelector(Selector):
    """A uniformly random team.

    Attributes:
        k: team size; None draws it uniformly from 2 .. max_size.
    """

    k: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k is not None and self.k < 2:
            raise SpecError(f"k must be at least 2; got {self.k}")

    def _select(self, preds: PredictionSet) -> Selection:
        rng = np.random.default_rng(self.seed)
        limit = self.size_limit(preds)
        size = int(rng.integers(2, limit + 1)) if self.k is None else min(self.k, limit)
        budget = self.budget if preds.cost is not None else None
        team = random_team(rng, preds.n_members, size, preds.cost, budget)
        if len(team) < 2:
            raise SpecError("no random team of 2 members fits the budget")
        return self.make_selection(preds, team, n_evaluated=1)
