"""Greedy forward selection: grow the team one member at a time while the fitness improves.

Starts from the most accurate member (ties: lower index), adds the member that gives the fittest
team (the shared :class:`~ensprune.ensemble.objective.Objective`: accuracy, focal diversity and
size), and stops when no addition improves the fitness or ``max_size`` is reached. The first
addition is always made, since a team needs 2 members. Members that would break the budget are
never added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ensprune.ensemble.budget import within_budget
from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection._base import (
    ObjectiveSelector,
    Selection,
    best_row,
    register_selector,
)
from ensprune.ensemble.selection._teams import members_of
from ensprune.errors import SpecError


@register_selector("greedy")
@dataclass(kw_only=True)
class GreedySelector(ObjectiveSelector):
    """Greedy forward selection on the shared objective.

    ``Selection.table`` holds one row per step: the team after the step and its scores.
    """

    def _select(self, preds: PredictionSet) -> Selection:
        m = preds.n_members
        s_max = self.size_limit(preds)
        evaluator = self.evaluator(preds)
        accs = preds.accuracies()
        cost = preds.cost if preds.cost is not None else np.zeros(m)
        start_ok = [i for i in range(m) if self.can_grow(preds, [i])]
        first = max(start_ok, key=lambda i: (accs[i], -i))
        team = np.zeros(m, dtype=bool)
        team[first] = True
        steps = []
        best_fitness = -np.inf
        while team.sum() < s_max:
            cand_idx = [
                j
                for j in np.flatnonzero(~team)
                if within_budget(float(cost[team].sum() + cost[j]), self.budget)
            ]
            if not cand_idx:
                break
            masks = np.repeat(team[None, :], len(cand_idx), axis=0)
            masks[np.arange(len(cand_idx)), cand_idx] = True
            scores = evaluator.evaluate(masks)
            row = best_row(scores)
            if team.sum() >= 2 and scores.fitness[row] <= best_fitness:
                break
            team = masks[row]
            best_fitness = float(scores.fitness[row])
            step = scores.take(np.array([row])).frame(preds.names)
            steps.append(step)
            self.log(f"size {int(team.sum())}: fitness {best_fitness:.5f}")
        if team.sum() < 2:
            raise SpecError("greedy selection found no feasible team of 2 members")
        final = evaluator.evaluate(team[None, :])
        return self.make_selection(
            preds,
            members_of(team),
            scores=self.team_scores(final, 0),
            table=pd.concat(steps, ignore_index=True),
            n_evaluated=evaluator.n_evaluated,
        )
