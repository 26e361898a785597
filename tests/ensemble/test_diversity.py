"""Diversity metrics and focal diversity: reference values, loop equivalence, properties, edge cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ensprune.ensemble import METRICS, FocalScorer, diversity, focal_diversity
from ensprune.ensemble.diversity import SampleStats
from ensprune.errors import PredictionError, SpecError, UnknownNameError

Y_REF = [0, 1, 2, 0, 1, 2, 0, 1]
LABELS_REF = [[0, 1, 2, 0, 1, 2, 0, 1], [0, 1, 1, 0, 2, 2, 1, 1], [1, 1, 2, 2, 1, 2, 0, 0]]
REFERENCE_VALUES = {
    "ck": 0.24252491694352163,
    "bd": 0.5,
    "kw": 0.16666666666666666,
    "gd": 1.0,
    "qs": -0.3333333333333333,
}
ALL = ("ck", "bd", "kw", "gd", "qs", "df", "entropy")


@st.composite
def label_sets(draw: st.DrawFn, min_n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    n_members = draw(st.integers(2, 5))
    n = draw(st.integers(min_n, 25))
    n_classes = draw(st.integers(2, 4))
    cells = st.integers(0, n_classes - 1)
    labels = np.array(draw(st.lists(cells, min_size=n_members * n, max_size=n_members * n)))
    y = np.array(draw(st.lists(cells, min_size=n, max_size=n)), dtype=np.int64)
    return labels.reshape(n_members, n).astype(np.int64), y


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("metric", sorted(REFERENCE_VALUES))
def test_reference_values(metric: str) -> None:
    assert diversity(metric, LABELS_REF, Y_REF) == pytest.approx(
        REFERENCE_VALUES[metric], abs=1e-12
    )


def test_registry_directions_and_names() -> None:
    assert METRICS.names() == sorted(ALL)
    lower = {m for m in ALL if METRICS.get(m).direction == "lower"}
    assert lower == {"ck", "qs", "df"}
    assert METRICS.get("ck").pairwise and not METRICS.get("gd").pairwise
    assert "more diverse" in METRICS.get("kw").description


@pytest.mark.parametrize("metric", ALL)
@FAST
@given(data=label_sets(min_n=0))
def test_batched_equals_loop(metric: str, data: tuple[np.ndarray, np.ndarray], reference) -> None:
    labels, y = data
    assert diversity(metric, labels, y) == pytest.approx(
        reference.metric(metric, labels, y), abs=1e-12
    )


@pytest.mark.parametrize("metric", ALL)
@FAST
@given(data=label_sets())
def test_bounds_and_member_order(metric: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    labels, y = data
    value = diversity(metric, labels, y)
    lo, hi = METRICS.get(metric).bounds
    assert np.isfinite(value)
    assert lo - 1e-12 <= value <= hi + 1e-12
    # symmetric in the members: any order of the rows gives the same value
    assert diversity(metric, labels[::-1], y) == pytest.approx(value, abs=1e-12)
    unit = METRICS.get(metric).score(value)
    assert -1e-12 <= unit <= 1 + 1e-12


@FAST
@given(data=label_sets(), perm_seed=st.integers(0, 1000))
def test_kappa_invariant_under_label_permutation(
    data: tuple[np.ndarray, np.ndarray], perm_seed: int
) -> None:
    labels, y = data
    c = int(max(labels.max(), y.max())) + 1
    perm = np.random.default_rng(perm_seed).permutation(c)
    for metric in ALL:
        assert diversity(metric, perm[labels], perm[y]) == pytest.approx(
            diversity(metric, labels, y), abs=1e-12
        )


def test_edge_nobody_fails() -> None:
    y = np.array([0, 1, 2, 1])
    labels = np.stack([y, y, y])
    values = {m: diversity(m, labels, y) for m in ALL}
    assert values == {
        "ck": 1.0,
        "bd": 0.0,
        "kw": 0.0,
        "gd": 0.0,
        "qs": 1.0,
        "df": 0.0,
        "entropy": 0.0,
    }


def test_edge_everybody_fails() -> None:
    y = np.array([0, 0, 0, 0])
    labels = np.array([[1, 1, 2, 2], [2, 1, 1, 2], [1, 2, 1, 1]])
    values = {m: diversity(m, labels, y) for m in ALL}
    assert values["gd"] == 0.0  # every failure shared by all
    assert values["bd"] == 0.0 and values["kw"] == 0.0 and values["df"] == 1.0
    assert values["qs"] == 1.0  # never disagree on right/wrong
    assert all(np.isfinite(v) for v in values.values())


def test_edge_kappa_pe_one() -> None:
    # both members predict class 1 everywhere: p_e = 1, p_o = 1 -> kappa defined as 1
    assert diversity("ck", [[1, 1, 1], [1, 1, 1]], [0, 1, 2]) == 1.0
    # constant but different classes: p_e = 0, p_o = 0 -> kappa 0
    assert diversity("ck", [[1, 1, 1], [2, 2, 2]], [0, 1, 2]) == 0.0


def test_edge_gd_one_failure_per_sample() -> None:
    y = np.zeros(3, dtype=int)
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert diversity("gd", labels, y) == 1.0


def test_edge_empty_sample_set() -> None:
    labels = np.zeros((3, 0), dtype=int)
    y = np.zeros(0, dtype=int)
    assert {m: diversity(m, labels, y) for m in ALL} == {
        "ck": 1.0, "bd": 0.0, "kw": 0.0, "gd": 0.0, "qs": 1.0, "df": 0.0, "entropy": 0.0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("labels", "y", "error"),
    [
        ([[0, 1]], [0, 1], PredictionError),  # one member
        ([0, 1], [0, 1], PredictionError),  # 1-D labels
        ([[0, 1], [1, 0]], [0, 1, 1], PredictionError),  # length mismatch
        ([[0, 1.5], [1, 0]], [0, 1], PredictionError),  # not integers
        ([[0, -1], [1, 0]], [0, 1], PredictionError),  # negative
    ],
)
def test_invalid_input(labels: list, y: list, error: type) -> None:
    with pytest.raises(error):
        diversity("bd", labels, y)


def test_unknown_metric_lists_names() -> None:
    with pytest.raises(UnknownNameError, match="bd, ck"):
        diversity("nope", LABELS_REF, Y_REF)


def test_batch_of_teams_matches_loop(pool10, reference) -> None:
    labels, y = pool10.labels, pool10.y
    teams = [list(t) for s in (2, 3, 5) for t in itertools.combinations(range(10), s)][::7]
    stats = SampleStats.from_labels(labels, y)
    masks = np.zeros((len(teams), 10))
    for r, t in enumerate(teams):
        masks[r, t] = 1
    for metric in ALL:
        batch = METRICS.get(metric).batch(stats, masks)
        loop = [reference.metric(metric, labels[t], y) for t in teams]
        np.testing.assert_allclose(batch, loop, atol=1e-12)


# --- focal diversity ----------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ALL)
def test_focal_matches_loop(metric: str, pool8, reference) -> None:
    labels, y = pool8.labels, pool8.y
    for team in ([0, 1], [2, 5, 7], [0, 1, 3, 4, 6]):
        assert focal_diversity(metric, labels, y, team) == pytest.approx(
            reference.focal(metric, labels, y, team), abs=1e-12
        )


def test_focal_scorer_batch_matches_public_function(pool8) -> None:
    labels, y = pool8.labels, pool8.y
    teams = [list(t) for t in itertools.combinations(range(8), 3)]
    scorer = FocalScorer(labels, y, metrics=("gd", "ck"))
    values = scorer.values(teams)
    for r in (0, 17, len(teams) - 1):
        assert values["gd"][r] == pytest.approx(
            focal_diversity("gd", labels, y, teams[r]), abs=1e-12
        )
        assert values["ck"][r] == pytest.approx(
            focal_diversity("ck", labels, y, teams[r]), abs=1e-12
        )
    # scores: oriented to [0, 1], consensus = their mean
    scores = scorer.scores(teams)
    np.testing.assert_allclose(scores["ck"], (1 - values["ck"]) / 2)
    np.testing.assert_allclose(scorer.consensus(teams), (scores["ck"] + scores["gd"]) / 2)


def test_focal_member_without_negatives_is_defined() -> None:
    y = np.array([0, 1, 0, 1, 0, 1])
    labels = np.array([y, [1, 1, 0, 1, 0, 0], [0, 0, 0, 1, 1, 1]])
    value = focal_diversity("gd", labels, y, [0, 1, 2])
    assert np.isfinite(value)
    # member 0 is never wrong: it contributes GD on no samples, 0
    expected = np.mean([0.0, _gd_on(labels, y, 1), _gd_on(labels, y, 2)])
    assert value == pytest.approx(expected)


def _gd_on(labels: np.ndarray, y: np.ndarray, f: int) -> float:
    neg = labels[f] != y
    return diversity("gd", labels[:, neg], y[neg])


def test_focal_subsampling_is_seeded(pool8) -> None:
    labels, y = pool8.labels, pool8.y
    teams = [[0, 1, 2], [3, 4], [1, 5, 6, 7]]
    a = FocalScorer(labels, y, ("bd",), n_negatives=20, n_draws=3, seed=5).values(teams)["bd"]
    b = FocalScorer(labels, y, ("bd",), n_negatives=20, n_draws=3, seed=5).values(teams)["bd"]
    c = FocalScorer(labels, y, ("bd",), n_negatives=20, n_draws=3, seed=6).values(teams)["bd"]
    full = FocalScorer(labels, y, ("bd",)).values(teams)["bd"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_allclose(a, full, atol=0.2)  # an estimate of the full value


def test_focal_normalize_per_size(pool8) -> None:
    teams = [list(t) for s in (2, 3) for t in itertools.combinations(range(8), s)]
    scorer = FocalScorer(pool8.labels, pool8.y, ("kw", "gd"))
    norm = scorer.scores(teams, normalize=True)
    for values in norm.values():
        assert values.min() >= 0 and values.max() <= 1
    per = scorer.per_focal(teams)["kw"]
    sizes = np.array([len(t) for t in teams])
    assert np.all(np.isnan(per) == (np.array([[i not in t for i in range(8)] for t in teams])))
    assert set(np.unique(sizes)) == {2, 3}


def test_focal_options_validated(pool8) -> None:
    with pytest.raises(SpecError):
        FocalScorer(pool8.labels, pool8.y, ())
    with pytest.raises(SpecError):
        FocalScorer(pool8.labels, pool8.y, ("gd",), n_draws=3)
    with pytest.raises(SpecError):
        FocalScorer(pool8.labels, pool8.y, ("gd",), n_negatives=0)
    with pytest.raises(PredictionError):
        FocalScorer(pool8.labels, pool8.y, ("gd",)).values([[0]])
    with pytest.raises(PredictionError):
        FocalScorer(pool8.labels, pool8.y, ("gd",)).values([[0, 9]])


def test_gd_formula_by_hand() -> None:
    # 4 samples, 3 members; failures per sample: 0, 1, 2, 3
    y = np.zeros(4, dtype=int)
    labels = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]])
    p = np.array([1, 1, 1, 1]) / 4
    p1 = sum(i / 3 * p[i] for i in range(4))
    p2 = sum(i * (i - 1) / 6 * p[i] for i in range(4))
    assert diversity("gd", labels, y) == pytest.approx(1 - p2 / p1)
    assert math.isclose(diversity("kw", labels, y), (0 + 2 + 2 + 0) / (4 * 9))


@FAST
@given(data=label_sets(min_n=0))
def test_kw_is_a_fixed_multiple_of_bd_within_a_team_size(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    # per sample, l (L - l) of the L (L - 1) / 2 pairs disagree: KW = (L - 1) / (2 L) x BD
    labels, y = data
    size = labels.shape[0]
    factor = (size - 1) / (2 * size)
    assert diversity("kw", labels, y) == pytest.approx(
        factor * diversity("bd", labels, y), abs=1e-12
    )
    # the identity survives the mean over focal members, so BD and KW rank teams alike
    pool = np.vstack([labels, y[None, :]])  # one more member, always right
    team = list(range(size))
    assert focal_diversity("kw", pool, y, team) == pytest.approx(
        factor * focal_diversity("bd", pool, y, team), abs=1e-12
    )


def test_bd_and_kw_rank_teams_of_one_size_identically(pool8) -> None:
    scorer = FocalScorer(pool8.labels, pool8.y, ("bd", "kw"))
    for size in (2, 3, 5):
        teams = [list(t) for t in itertools.combinations(range(8), size)]
        values = scorer.values(teams)
        np.testing.assert_allclose(values["kw"], (size - 1) / (2 * size) * values["bd"], atol=1e-12)


def test_focal_normalize_all_uses_every_team_of_a_size(pool8) -> None:
    scorer = FocalScorer(pool8.labels, pool8.y, ("gd",))
    every = [list(t) for t in itertools.combinations(range(8), 3)]
    some = every[::7]
    # over a batch holding every team of the size, both modes agree
    np.testing.assert_allclose(
        scorer.scores(every, normalize="all")["gd"],
        scorer.scores(every, normalize="candidates")["gd"],
        atol=1e-12,
    )
    # on part of them, "all" keeps the scale of the full set; "candidates" rescales the part
    full = dict(zip(map(tuple, every), scorer.scores(every, normalize="all")["gd"], strict=True))
    np.testing.assert_allclose(
        scorer.scores(some, normalize="all")["gd"], [full[tuple(t)] for t in some], atol=1e-12
    )
    assert not np.allclose(
        scorer.scores(some, normalize="candidates")["gd"], [full[tuple(t)] for t in some]
    )
    lo, hi = scorer.size_bounds(3)["gd"]
    assert np.all(lo <= hi) and np.all((lo >= 0) & (hi <= 1))
    with pytest.raises(SpecError, match="normalize must be one of"):
        scorer.scores(some, normalize="published")
