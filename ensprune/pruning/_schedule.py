"""When to prune: one-shot, iterative in k rounds, or gradual cubic (Zhu & Gupta 2017).

A schedule is a list of :class:`Round` objects, each a cumulative sparsity to reach and the
fine-tuning epochs that follow it. The whole fine-tuning budget (``TrainConfig.epochs``) is split
over the rounds, so one-shot and gradual pruning compare at the same cost.

Example:
    >>> [r.sparsity for r in make_schedule("cubic", 0.9, rounds=3, epochs=6)]
    [0.6333333333333333, 0.8666666666666667, 0.9]
"""

from __future__ import annotations

from dataclasses import dataclass

from ensprune.errors import SpecError

SCHEDULES = ("oneshot", "iterative", "cubic")
# In-training pruning (masks change between optimiser steps); not a list of rounds: see _gradual.
GRADUAL = "gradual"


@dataclass(frozen=True)
class Round:
    """One pruning round: prune to ``sparsity`` (cumulative), then fine-tune ``epochs`` epochs."""

    sparsity: float
    epochs: int


def make_schedule(
    kind: str, target: float, rounds: int = 1, epochs: int = 0, initial: float = 0.0
) -> list[Round]:
    """Per-round cumulative sparsities ending exactly at ``target``, and the fine-tuning budget.

    Args:
        kind: ``"oneshot"`` (one round, ``rounds`` is ignored); ``"iterative"`` (each of ``rounds``
            rounds removes the same share of the weights still present, as in iterative magnitude
            pruning: s_r = 1 - (1 - s_f)^(r/k)); ``"cubic"`` (Zhu & Gupta:
            s_r = s_f + (s_i - s_f)(1 - r/k)^3: big steps first, while many weights are redundant).
        target: final sparsity s_f in [0, 1).
        rounds: number of rounds k >= 1.
        epochs: total fine-tuning epochs, split evenly; the remainder goes to the last round, which
            recovers from the final (largest) cut.
        initial: sparsity s_i the network already has (cubic and iterative start from it).

    Returns:
        ``rounds`` rounds (one for ``"oneshot"``) with non-decreasing sparsities.
    """
    if kind not in SCHEDULES:
        raise SpecError(f"schedule must be one of {', '.join(SCHEDULES)}; got {kind!r}")
    if not isinstance(rounds, int) or rounds < 1:
        raise SpecError(f"rounds must be an integer >= 1; got {rounds!r}")
    if epochs < 0:
        raise SpecError(f"fine-tuning epochs must be >= 0; got {epochs}")
    if not 0.0 <= initial <= target < 1.0:
        raise SpecError(f"need 0 <= initial ({initial}) <= target ({target}) < 1")
    k = 1 if kind == "oneshot" else rounds
    if kind == "iterative":
        keep_i, keep_f = 1.0 - initial, 1.0 - target
        values = [1.0 - keep_i * (keep_f / keep_i) ** (r / k) for r in range(1, k + 1)]
    elif kind == "cubic":
        values = [target + (initial - target) * (1.0 - r / k) ** 3 for r in range(1, k + 1)]
    else:
        values = [target]
    values[-1] = target  # exact, whatever the float rounding above
    per_round, remainder = divmod(int(epochs), k)
    return [Round(s, per_round + (remainder if r == k - 1 else 0)) for r, s in enumerate(values)]
