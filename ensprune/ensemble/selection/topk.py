"""Top-k: the k most accurate members (validation accuracy; ties: lower index).

With ``k`` unset, every k from 2 to ``max_size`` is tried and the k whose team has the highest
validation accuracy under the voting rule wins (ties: smaller k). With a budget, members are
taken in accuracy order and any member that would exceed it is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection._base import Selection, Selector, register_selector
from ensprune.ensemble.voting import TeamVoter
from ensprune.errors import SpecError


@register_selector("topk")
@dataclass(kw_only=True)
class TopKSelector(Selector):
    """The k individually most accurate members (validation accuracy).

    Attributes:
        k: team size; None tries 2 .. max_size and keeps the most accurate team.
    """

    k: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k is not None and self.k < 2:
            raise SpecError(f"k must be at least 2; got {self.k}")

    def _select(self, preds: PredictionSet) -> Selection:
        accs = preds.accuracies()
        ranking = sorted(range(preds.n_members), key=lambda i: (-accs[i], i))
        limit = self.size_limit(preds) if self.k is None else min(self.k, self.size_limit(preds))
        order: list[int] = []
        for i in ranking:
            if len(order) == limit:
                break
            if self.can_grow(preds, [*order, i]):
                order.append(i)
        if len(order) < 2:
            raise SpecError("no two members fit the budget in accuracy order")
        sizes = range(2, len(order) + 1) if self.k is None else [len(order)]
        masks = np.zeros((len(sizes), preds.n_members), dtype=bool)
        for r, k in enumerate(sizes):
            masks[r, order[:k]] = True
        team_acc = TeamVoter(preds.proba, self.voting).accuracy(masks, preds.y)
        best = int(np.argmax(team_acc))  # first max = smallest k
        table = pd.DataFrame(
            {
                "k": list(sizes),
                "added": [preds.names[order[k - 1]] for k in sizes],
                "member_accuracy": [float(accs[order[k - 1]]) for k in sizes],
                "val_accuracy": team_acc,
            }
        )
        return self.make_selection(
            preds,
            order[: list(sizes)[best]],
            scores={"k": float(list(sizes)[best])},
            table=table,
            n_evaluated=len(sizes),
        )
