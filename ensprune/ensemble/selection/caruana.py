"""Caruana et al. (2004) ensemble selection with replacement.

Starts from the ``n_init`` most accurate members, then for ``iterations`` steps adds (with
replacement) the member whose addition gives the most accurate weighted ensemble; ties are
broken by the lower log-loss, then the lower index. A member's weight is the number of times it
was added, so the result is a weighted soft-voting ensemble. The returned team is the best
prefix of this sequence (highest validation accuracy, then lower log-loss, then earlier) among
prefixes with at least 2 distinct members; the first addition always brings in a second member.
``max_size`` caps the number of distinct members and ``budget`` their summed cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection._base import Selection, Selector, register_selector
from ensprune.ensemble.voting import TeamVoter
from ensprune.errors import SpecError


@register_selector("caruana")
@dataclass(kw_only=True)
class CaruanaSelector(Selector):
    """Greedy ensemble selection with replacement (weighted soft voting).

    Attributes:
        n_init: members placed in the bag before the greedy steps (sorted initialisation).
        iterations: greedy steps (members added with replacement).
    """

    makes_weights = True

    voting: str = "weighted"
    n_init: int = 1
    iterations: int = 50

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.voting != "weighted":
            raise SpecError(
                f"caruana builds a weighted ensemble; use voting 'weighted', not {self.voting!r}"
            )
        if self.n_init < 1 or self.iterations < 1:
            raise SpecError("n_init and iterations must be >= 1")

    def _select(self, preds: PredictionSet) -> Selection:
        m = preds.n_members
        limit = self.size_limit(preds)
        voter = TeamVoter(preds.proba, "weighted")
        accs = preds.accuracies()
        counts = np.zeros(m)
        for i in sorted(range(m), key=lambda i: (-accs[i], i)):
            if (counts > 0).sum() == min(self.n_init, limit - 1):
                break
            if self.can_grow(preds, [*np.flatnonzero(counts).tolist(), i]):
                counts[i] = 1
        if counts.sum() == 0:
            raise SpecError("no member fits the budget")
        history: list[tuple[np.ndarray, float, float]] = []
        n_scored = 0
        for _ in range(self.iterations):
            inside = np.flatnonzero(counts > 0)
            candidates = [
                j
                for j in range(m)
                if (counts[j] > 0 and inside.size >= 2)
                or (
                    counts[j] == 0 and inside.size < limit and self.fits_budget(preds, [*inside, j])
                )
            ]
            if not candidates:
                break
            weights = np.repeat(counts[None, :], len(candidates), axis=0)
            weights[np.arange(len(candidates)), candidates] += 1
            acc = voter.accuracy(weights, preds.y)
            nll = voter.log_loss(weights, preds.y)
            n_scored += len(candidates)
            best = np.lexsort((np.asarray(candidates), nll, -acc))[0]
            counts = weights[best]
            history.append((counts.copy(), float(acc[best]), float(nll[best])))
        valid = [h for h in history if (h[0] > 0).sum() >= 2]
        if not valid:
            raise SpecError("caruana selection found no team of 2 members within the limits")
        pick = min(range(len(valid)), key=lambda t: (-valid[t][1], valid[t][2], t))
        final = valid[pick][0]
        members = np.flatnonzero(final > 0)
        table = pd.DataFrame(
            {
                "step": np.arange(1, len(history) + 1),
                "members": [tuple(int(i) for i in np.flatnonzero(h[0] > 0)) for h in history],
                "bag_size": [int(h[0].sum()) for h in history],
                "val_accuracy": [h[1] for h in history],
                "log_loss": [h[2] for h in history],
            }
        )
        return self.make_selection(
            preds,
            members,
            weights=final[members],
            scores={"log_loss": valid[pick][2], "bag_size": float(final.sum())},
            table=table,
            n_evaluated=n_scored,
        )
