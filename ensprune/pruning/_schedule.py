"""When to prune: one-shot, iterative in k rounds, or gradual cubic (Zhu & Gupta 2017).

A schedule is a list of :class:`Round` objects, each a cumulative sparsity to reach and the
fine-tuning epochs that follow it. The whole fine-tuning budget (``TrainConfig.epochs``) is split
over the rounds, so one-shot and gradual pruning compare at the same cost.

Example:
    >>> [r.sparsity for r in make_schedule("cubic", 0.9, rounds=3, epochs=6)]
    [0.6333333333333333, 0.8666666666666667, 0.9]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ensprune._registry import Registry
from ensprune.errors import SpecError, UnknownNameError

# name -> (target s_f, rounds k, initial s_i) -> k cumulative sparsities ending near s_f.
ScheduleCurve = Callable[[float, int, float], list[float]]
SCHEDULES: Registry[ScheduleCurve] = Registry("schedule")
# In-training pruning (masks change between optimiser steps); not a list of rounds: see _gradual.
GRADUAL = "gradual"


@SCHEDULES.register("oneshot")
def _oneshot(target: float, rounds: int, initial: float) -> list[float]:
    """One round straight to the target (``rounds`` is ignored)."""
    return [target]


@SCHEDULES.register("iterative")
def _iterative(target: float, rounds: int, initial: float) -> list[float]:
    """Each round removes the same share of the weights still present: 1 - (1 - s_f)^(r/k)."""
    keep_i, keep_f = 1.0 - initial, 1.0 - target
    return [1.0 - keep_i * (keep_f / keep_i) ** (r / rounds) for r in range(1, rounds + 1)]


@SCHEDULES.register("cubic")
def _cubic(target: float, rounds: int, initial: float) -> list[float]:
    """Zhu & Gupta's curve in rounds, s_f + (s_i - s_f)(1 - r/k)^3: big steps first."""
    return [target + (initial - target) * (1.0 - r / rounds) ** 3 for r in range(1, rounds + 1)]


def canonical_schedule(name: str, who: str = "") -> str:
    """The registered spelling of a schedule name (any case), ``"gradual"`` included.

    Raises:
        SpecError: an unknown name, listing the valid ones.
    """
    if isinstance(name, str) and name.strip().casefold() == GRADUAL:
        return GRADUAL
    try:
        return SCHEDULES.canonical(name)
    except UnknownNameError:
        prefix = f"{who}: " if who else ""
        valid = ", ".join((*SCHEDULES.names(), GRADUAL))
        raise SpecError(f"{prefix}schedule must be one of {valid}; got {name!r}") from None


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
    name = canonical_schedule(kind)
    if name not in SCHEDULES:  # gradual: masks move during one training run, not in rounds
        raise SpecError(
            f"schedule must be one of {', '.join(SCHEDULES)} for rounds; got {kind!r} "
            "(the gradual schedule prunes during training: see prune_gradually)"
        )
    curve = SCHEDULES.get(name)
    if not isinstance(rounds, int) or rounds < 1:
        raise SpecError(f"rounds must be an integer >= 1; got {rounds!r}")
    if epochs < 0:
        raise SpecError(f"fine-tuning epochs must be >= 0; got {epochs}")
    if not 0.0 <= initial <= target < 1.0:
        raise SpecError(f"need 0 <= initial ({initial}) <= target ({target}) < 1")
    values = curve(target, rounds, initial)
    k = len(values)
    values[-1] = target  # exact, whatever the float rounding above
    per_round, remainder = divmod(int(epochs), k)
    return [Round(s, per_round + (remainder if r == k - 1 else 0)) for r, s in enumerate(values)]
