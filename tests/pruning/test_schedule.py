"""Schedules: one-shot, iterative (same share of the survivors per round), cubic (Zhu & Gupta)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensprune.errors import SpecError
from ensprune.pruning import make_schedule


def test_oneshot_is_one_round_with_the_whole_budget() -> None:
    plan = make_schedule("oneshot", 0.9, rounds=7, epochs=10)
    assert [(r.sparsity, r.epochs) for r in plan] == [(0.9, 10)]


def test_iterative_removes_the_same_share_of_survivors_each_round() -> None:
    plan = make_schedule("iterative", 0.875, rounds=3, epochs=7)
    assert [r.sparsity for r in plan] == pytest.approx([0.5, 0.75, 0.875])
    assert [r.epochs for r in plan] == [2, 2, 3]  # the remainder recovers from the last cut


def test_cubic_matches_zhu_and_gupta() -> None:
    plan = make_schedule("cubic", 0.9, rounds=3, epochs=6)
    expected = [0.9 + (0.0 - 0.9) * (1 - t / 3) ** 3 for t in (1, 2, 3)]
    assert [r.sparsity for r in plan] == pytest.approx(expected)
    assert expected[0] == pytest.approx(0.9 * (1 - (2 / 3) ** 3))
    assert [r.epochs for r in plan] == [2, 2, 2]


def test_cubic_starts_from_the_initial_sparsity() -> None:
    plan = make_schedule("cubic", 0.9, rounds=2, initial=0.5)
    assert [r.sparsity for r in plan] == pytest.approx([0.9 - 0.4 / 8, 0.9])


@settings(max_examples=50, deadline=None)  # the CPU is shared: no timing flakes
@given(
    kind=st.sampled_from(["oneshot", "iterative", "cubic"]),
    target=st.floats(0.0, 0.999),
    rounds=st.integers(1, 20),
    epochs=st.integers(0, 50),
)
def test_schedules_rise_to_the_target_and_spend_the_budget(
    kind: str, target: float, rounds: int, epochs: int
) -> None:
    plan = make_schedule(kind, target, rounds=rounds, epochs=epochs)
    values = [r.sparsity for r in plan]
    assert values[-1] == target
    assert all(0.0 <= a <= b + 1e-12 for a, b in itertools.pairwise(values))
    assert sum(r.epochs for r in plan) == epochs


@pytest.mark.parametrize(
    ("kind", "target", "rounds", "epochs"),
    [("linear", 0.5, 2, 0), ("cubic", 1.0, 2, 0), ("cubic", 0.5, 0, 0), ("iterative", 0.5, 2, -1)],
)
def test_bad_schedules_raise(kind: str, target: float, rounds: int, epochs: int) -> None:
    with pytest.raises(SpecError):
        make_schedule(kind, target, rounds=rounds, epochs=epochs)
