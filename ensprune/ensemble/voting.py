"""Voting rules that turn a team's member predictions into one prediction, for many teams at once.

=============  ================================================================================
rule           decision for each sample
=============  ================================================================================
``plurality``  the class with the most votes (each member votes its argmax class); a tie goes
               to the lowest class index
``majority``   the class voted by more than half of the members; otherwise the team abstains
               (label -1), which counts as an error in every accuracy
``soft``       the argmax of the mean of the members' probabilities (ties: lowest class index);
               the default everywhere in ensprune
``weighted``   the argmax of the weighted mean of the members' probabilities (weighted soft
               voting); needs one non-negative weight per member
=============  ================================================================================

Teams are passed as a (T, M) matrix of member weights over the pool (0/1 masks for the
unweighted rules), so scoring a population of teams is one matrix product per block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from ensprune._registry import Registry
from ensprune.errors import PredictionError, SpecError

ABSTAIN = -1
DEFAULT_VOTING = "soft"

# largest (teams x samples x classes) block of vote totals built at once
_BLOCK = 1 << 22
# pools at least this large (joint menus: every operating point of every member) hold their
# votes in float32 and add up each team's few rows instead of a dense product over the pool;
# summed probabilities then differ from float64 in the 7th digit, which can change a
# prediction only where two classes tie to that precision
LARGE_POOL = 48

DecideFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class VotingRule:
    """How a team decides.

    Attributes:
        name: registry name.
        uses: ``"labels"`` (members vote their argmax class) or ``"proba"`` (probabilities).
        weighted: whether the rule takes real-valued member weights.
        decide: ``decide(totals, team_total) -> labels``: totals (T, N, C) of votes or
            probabilities, team_total (T,) the summed member weights; returns (T, N) labels,
            ``ABSTAIN`` where the rule abstains.
    """

    name: str
    uses: Literal["labels", "proba"]
    weighted: bool
    decide: DecideFn


VOTING: Registry[VotingRule] = Registry("voting rule")


def _rule(
    name: str, uses: Literal["labels", "proba"], weighted: bool = False
) -> Callable[[DecideFn], DecideFn]:
    def decorator(fn: DecideFn) -> DecideFn:
        VOTING.register(name)(VotingRule(name, uses, weighted, fn))
        return fn

    return decorator


@_rule("plurality", "labels")
def _plurality(totals: np.ndarray, team_total: np.ndarray) -> np.ndarray:
    return np.asarray(totals.argmax(axis=-1), dtype=np.int64)  # first max = lowest class


@_rule("majority", "labels")
def _majority(totals: np.ndarray, team_total: np.ndarray) -> np.ndarray:
    winner = totals.argmax(axis=-1)
    strict = totals.max(axis=-1) > team_total[:, None] / 2
    return np.where(strict, winner, ABSTAIN).astype(np.int64)


@_rule("soft", "proba")
def _soft(totals: np.ndarray, team_total: np.ndarray) -> np.ndarray:
    return np.asarray(totals.argmax(axis=-1), dtype=np.int64)


@_rule("weighted", "proba", weighted=True)
def _weighted(totals: np.ndarray, team_total: np.ndarray) -> np.ndarray:
    return np.asarray(totals.argmax(axis=-1), dtype=np.int64)


class TeamVoter:
    """Predictions and accuracy of many teams drawn from one pool under one voting rule.

    Args:
        proba: (M, N, C) member probabilities.
        rule: a registered voting rule name.

    Example:
        >>> voter = TeamVoter(preds.proba, "plurality")
        >>> voter.accuracy(np.array([[1, 1, 0], [0, 1, 1]], bool), preds.y)   # two teams
    """

    def __init__(self, proba: np.ndarray, rule: str = DEFAULT_VOTING) -> None:
        self.rule = VOTING.get(rule)
        proba = np.asarray(proba, dtype=np.float64)
        m, n, c = proba.shape
        self.shape = (m, n, c)
        if self.rule.uses == "labels":
            hot = np.zeros((m, n, c))
            np.put_along_axis(hot, proba.argmax(axis=2)[:, :, None], 1.0, axis=2)
            self._inputs = hot.reshape(m, n * c)
        else:
            self._inputs = proba.reshape(m, n * c)
        self._large = m >= LARGE_POOL
        if self._large:
            self._inputs = self._inputs.astype(np.float32)
        self._proba = proba

    def _weights(self, teams: np.ndarray) -> np.ndarray:
        w = np.asarray(teams, dtype=np.float64)
        if w.ndim == 1:
            w = w[None, :]
        if w.ndim != 2 or w.shape[1] != self.shape[0]:
            raise PredictionError(
                f"team weights must have shape (teams, {self.shape[0]}); got {w.shape}"
            )
        if not np.all(np.isfinite(w)) or w.min(initial=0.0) < 0:
            raise PredictionError("member weights must be finite and non-negative")
        if w.shape[0] and w.sum(axis=1).min() <= 0:
            raise PredictionError("every team needs at least one member with positive weight")
        if not self.rule.weighted:
            w = (w > 0).astype(np.float64)
        return w

    def predict(self, teams: np.ndarray) -> np.ndarray:
        """Team predictions (T, N); ``ABSTAIN`` (-1) where a majority team abstains.

        Args:
            teams: (T, M) member weights (0/1 masks for unweighted rules; any positive weight
                counts as membership there).
        """
        w = self._weights(teams)
        _, n, c = self.shape
        out = np.empty((w.shape[0], n), dtype=np.int64)
        rows = max(1, _BLOCK // (n * c))
        # few members per team in a large pool: add their rows (a dense product would read
        # every member's row for every team)
        sparse = self._large and np.count_nonzero(w) * 4 <= w.size
        for start in range(0, w.shape[0], rows):
            block = w[start : start + rows]
            if sparse:
                totals = self._member_sums(block).reshape(-1, n, c)
            else:
                totals = (block.astype(self._inputs.dtype) @ self._inputs).reshape(-1, n, c)
            out[start : start + rows] = self.rule.decide(totals, block.sum(axis=1))
        return out

    def _member_sums(self, block: np.ndarray) -> np.ndarray:
        """``block @ inputs`` a team at a time, reading only each team's members' rows."""
        out = np.zeros((block.shape[0], self._inputs.shape[1]), dtype=self._inputs.dtype)
        for row, weights in zip(out, block, strict=True):
            for member in np.flatnonzero(weights):
                if weights[member] == 1.0:
                    row += self._inputs[member]
                else:
                    row += np.float32(weights[member]) * self._inputs[member]
        return out

    def accuracy(self, teams: np.ndarray, y: ArrayLike) -> np.ndarray:
        """Share of samples each team gets right (abstentions count as wrong), shape (T,)."""
        yy = np.asarray(y)
        return np.asarray((self.predict(teams) == yy[None, :]).mean(axis=1), dtype=np.float64)

    def log_loss(self, teams: np.ndarray, y: ArrayLike) -> np.ndarray:
        """Mean negative log-likelihood of the teams' (weighted) mean probabilities, shape (T,)."""
        w = np.asarray(teams, dtype=np.float64)
        w = w[None, :] if w.ndim == 1 else w
        yy = np.asarray(y)
        p_true = self._proba[:, np.arange(yy.size), yy]  # (M, N)
        mean = (w @ p_true) / w.sum(axis=1, keepdims=True)
        return np.asarray(-np.log(np.clip(mean, 1e-15, None)).mean(axis=1), dtype=np.float64)


def vote(
    proba: ArrayLike, rule: str = DEFAULT_VOTING, weights: ArrayLike | None = None
) -> np.ndarray:
    """The prediction (N,) of one team whose members' probabilities are ``proba`` (L, N, C).

    Args:
        proba: (L, N, C) probabilities of the team's members.
        rule: ``plurality``, ``majority``, ``soft`` or ``weighted``.
        weights: (L,) non-negative member weights; required by ``weighted``, rejected otherwise.

    Returns:
        int array (N,) of class indices, ``-1`` where a ``majority`` team abstains.
    """
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 3:
        raise PredictionError(f"proba must have shape (members, samples, classes); got {p.shape}")
    spec = VOTING.get(rule)
    if spec.weighted and weights is None:
        raise SpecError(f"voting rule {rule!r} needs one weight per member")
    if not spec.weighted and weights is not None:
        raise SpecError(f"voting rule {rule!r} takes no weights; use 'weighted'")
    w = np.ones(p.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (p.shape[0],):
        raise PredictionError(f"need {p.shape[0]} weights, one per member; got shape {w.shape}")
    return TeamVoter(p, rule).predict(w[None, :])[0]


def plurality_vote(proba: ArrayLike) -> np.ndarray:
    """Plurality voting: most voted class, ties to the lowest class index."""
    return vote(proba, "plurality")


def majority_vote(proba: ArrayLike) -> np.ndarray:
    """Majority voting: the class of more than half the members, else -1 (abstain)."""
    return vote(proba, "majority")


def soft_vote(proba: ArrayLike) -> np.ndarray:
    """Soft voting: argmax of the mean probabilities, ties to the lowest class index."""
    return vote(proba, "soft")


def weighted_vote(proba: ArrayLike, weights: ArrayLike) -> np.ndarray:
    """Weighted soft voting: argmax of the weighted mean probabilities."""
    return vote(proba, "weighted", weights)


def team_accuracy(
    proba: ArrayLike,
    y: ArrayLike,
    teams: ArrayLike,
    rule: str = DEFAULT_VOTING,
) -> np.ndarray:
    """Accuracy (T,) of each team under ``rule``.

    Args:
        proba: (M, N, C) pool probabilities.
        y: (N,) true labels.
        teams: (T, M) member weights or 0/1 masks.
        rule: voting rule name.
    """
    return TeamVoter(np.asarray(proba), rule).accuracy(np.asarray(teams), y)
