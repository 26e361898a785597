"""The one rule for "within the budget": a summed cost may exceed the budget by float rounding.

Every budgeted search (selectors, the joint members x operating points search, repairs) asks
:func:`within_budget`, so a team whose member costs add up to the budget in exact arithmetic is
never rejected because the floating-point sum came out one ulp above it.
"""

from __future__ import annotations

from typing import overload

import numpy as np

#: relative slack of a summed cost over the budget (float sums of member costs)
BUDGET_RTOL = 1e-9

__all__ = ["BUDGET_RTOL", "budget_limit", "within_budget"]


def budget_limit(budget: float | None) -> float:
    """The largest summed cost :func:`within_budget` accepts (``inf`` without a budget)."""
    return float("inf") if budget is None else float(budget) * (1.0 + BUDGET_RTOL)


@overload
def within_budget(cost: float, budget: float | None) -> bool: ...
@overload
def within_budget(cost: np.ndarray, budget: float | None) -> np.ndarray: ...
def within_budget(cost: float | np.ndarray, budget: float | None) -> bool | np.ndarray:
    """Whether ``cost`` (a number or an array of summed costs) fits ``budget`` (None: no budget).

    Example:
        >>> within_budget(0.1 + 0.2, 0.3), within_budget(np.array([1.0, 2.0]), 1.5)
        (True, array([ True, False]))
    """
    if isinstance(cost, np.ndarray):
        return np.asarray(cost) <= budget_limit(budget)
    return bool(float(cost) <= budget_limit(budget))
