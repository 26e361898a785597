"""Every registered selector through one conformance suite, then each selector's own behaviour."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from ensprune.ensemble import (
    SELECTORS,
    ExhaustiveSelector,
    GeneticSelector,
    HQSelector,
    NSGA2Selector,
    PredictionSet,
    Selection,
    TeamVoter,
    evolve_weights,
    make_pool,
)
from ensprune.ensemble.selection._teams import teams_of_size
from ensprune.ensemble.selection.hq import extend_kept
from ensprune.errors import PredictionError, SpecError

ALL_SELECTORS = SELECTORS.names()


def _check_selection(sel: Selection, preds: PredictionSet) -> None:
    assert sel.size >= 2
    assert sel.members == sorted(set(sel.members))
    assert all(0 <= i < preds.n_members for i in sel.members)
    assert sel.names == [preds.names[i] for i in sel.members]
    assert all(np.isfinite(v) for v in sel.scores.values())
    json.dumps(sel.to_dict())
    # the reported validation accuracy is the team's accuracy under its voting rule
    assert sel.accuracy(preds) == pytest.approx(sel.val_accuracy)
    if sel.weights is not None:
        assert sel.voting == "weighted"
        assert len(sel.weights) == sel.size and sum(sel.weights) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ALL_SELECTORS)
def test_conformance_valid_and_deterministic(name: str, pool8: PredictionSet) -> None:
    first = SELECTORS.get(name)(seed=4).select(pool8)
    _check_selection(first, pool8)
    again = SELECTORS.get(name)(seed=4).select(pool8)
    assert again.members == first.members
    assert again.val_accuracy == first.val_accuracy
    assert again.scores == first.scores
    assert again.weights == first.weights


@pytest.mark.parametrize("name", ALL_SELECTORS)
def test_conformance_respects_max_size(name: str, pool8: PredictionSet) -> None:
    sel = SELECTORS.get(name)(seed=1, max_size=3).select(pool8)
    _check_selection(sel, pool8)
    assert sel.size <= 3


@pytest.mark.parametrize("name", ALL_SELECTORS)
def test_conformance_respects_budget(name: str, pool8: PredictionSet) -> None:
    assert pool8.cost is not None
    budget = float(np.sort(pool8.cost)[:3].sum()) + 1.0
    sel = SELECTORS.get(name)(seed=2, budget=budget).select(pool8)
    _check_selection(sel, pool8)
    assert pool8.cost[sel.members].sum() <= budget + 1e-9
    assert sel.scores["cost"] == pytest.approx(pool8.cost[sel.members].sum())


@pytest.mark.parametrize("name", ALL_SELECTORS)
def test_conformance_pool_limits(name: str, pool8: PredictionSet) -> None:
    pair = pool8.subset([2, 5])
    assert SELECTORS.get(name)().select(pair).members == [0, 1]
    with pytest.raises(PredictionError, match="at least 2"):
        SELECTORS.get(name)().select(pool8.subset([0]))
    no_cost = PredictionSet(pool8.proba, pool8.y)
    with pytest.raises(SpecError, match="cost"):
        SELECTORS.get(name)(budget=5.0).select(no_cost)
    with pytest.raises(SpecError, match="cheapest"):
        SELECTORS.get(name)(budget=0.5).select(pool8)
    with pytest.raises(SpecError):
        SELECTORS.get(name)(max_size=1)


def test_weighted_voting_only_for_weighting_selectors() -> None:
    with pytest.raises(SpecError, match="weights"):
        HQSelector(voting="weighted")
    with pytest.raises(SpecError, match="evolve"):
        GeneticSelector(voting="weighted")
    with pytest.raises(SpecError, match="evolve"):  # the name in any case
        GeneticSelector(voting="WEIGHTED")
    with pytest.raises(SpecError, match="weighted"):
        SELECTORS.get("caruana")(voting="soft")


@pytest.mark.parametrize("voting", ["plurality", "majority", "soft"])
def test_voting_rule_is_used(voting: str, pool8: PredictionSet) -> None:
    sel = SELECTORS.get("greedy")(voting=voting).select(pool8)
    assert sel.voting == voting
    mask = np.zeros((1, pool8.n_members), dtype=bool)
    mask[0, sel.members] = True
    assert sel.val_accuracy == pytest.approx(
        TeamVoter(pool8.proba, voting).accuracy(mask, pool8.y)[0]
    )


# --- HQ -------------------------------------------------------------------------------------------


def test_extend_kept_is_apriori() -> None:
    pairs = teams_of_size(5, 2)
    kept = pairs[~(pairs[:, 0] & pairs[:, 1])]  # prune the pair {0, 1}
    triples = extend_kept(kept)
    expected = [t for t in itertools.combinations(range(5), 3) if not {0, 1} <= set(t)]
    assert [tuple(np.flatnonzero(r)) for r in triples] == expected


@pytest.mark.parametrize("beta", [0.1, 0.3])
def test_hq_prunes_beta_share_and_skips_supersets(beta: float, pool8: PredictionSet) -> None:
    sel = HQSelector(beta=beta, max_size=5, metrics=("gd", "kw")).select(pool8)
    table = sel.table
    assert table is not None
    pruned: list[set[int]] = []
    for size, group in table.groupby("size", sort=True):
        teams = [set(t) for t in group["members"]]
        n_pruned = int((group["status"] == "pruned").sum())
        assert n_pruned == math.floor(beta * len(group) + 1e-9)
        # no candidate contains a team pruned at a smaller size ...
        assert not any(p <= t for t in teams for p in pruned)
        # ... and every team free of pruned subsets is a candidate
        free = [
            set(c) for c in itertools.combinations(range(8), size)
            if not any(p <= set(c) for p in pruned)
        ]  # fmt: skip
        assert sorted(map(sorted, teams)) == sorted(map(sorted, free))
        # the pruned teams are the least diverse of their size
        kept_div = group.loc[group["status"] == "kept", "diversity"]
        pruned_div = group.loc[group["status"] == "pruned", "diversity"]
        if len(pruned_div):
            assert pruned_div.max() <= kept_div.min() + 1e-12
        pruned += [set(t) for t in group.loc[group["status"] == "pruned", "members"]]
    # the documented final pick: the fittest kept team
    kept = table[table["status"] == "kept"]
    assert sel.scores["fitness"] == pytest.approx(kept["fitness"].max())
    assert tuple(sel.members) in set(kept["members"])


def test_hq_beta_zero_equals_exhaustive(pool8: PredictionSet) -> None:
    hq = HQSelector(beta=0.0, max_size=4).select(pool8)
    ex = ExhaustiveSelector(max_size=4).select(pool8)
    assert hq.members == ex.members
    assert hq.n_evaluated == ex.n_evaluated == sum(math.comb(8, s) for s in range(2, 5))


def test_hq_normalize_and_limits(pool8: PredictionSet) -> None:
    sel = HQSelector(beta=0.2, max_size=3, normalize=True).select(pool8)
    assert sel.table is not None and sel.table["diversity"].between(0, 1).all()
    with pytest.raises(SpecError, match="max_teams"):
        HQSelector(max_teams=10).select(pool8)
    with pytest.raises(SpecError, match="beta"):
        HQSelector(beta=1.0)


# --- exhaustive, GA, NSGA-II -----------------------------------------------------------------------


def test_exhaustive_guard(pool8: PredictionSet) -> None:
    with pytest.raises(SpecError, match="max_teams"):
        ExhaustiveSelector(max_teams=100).select(pool8)


def test_ga_reaches_exhaustive_optimum(pool10: PredictionSet) -> None:
    best = ExhaustiveSelector().select(pool10)
    for seed in (0, 1):
        ga = GeneticSelector(seed=seed).select(pool10)
        assert ga.scores["fitness"] == pytest.approx(best.scores["fitness"], abs=1e-12)
        assert ga.n_evaluated is not None and ga.n_evaluated < best.n_evaluated  # type: ignore[operator]
        assert ga.table is not None and {"gen", "best", "n_evaluated"} <= set(ga.table.columns)


def test_ga_same_result_with_two_workers(pool8: PredictionSet) -> None:
    one = GeneticSelector(seed=3, population=16, generations=5).select(pool8)
    two = GeneticSelector(seed=3, population=16, generations=5, n_jobs=2).select(pool8)
    assert one.members == two.members and one.scores == two.scores
    assert one.n_evaluated == two.n_evaluated


def test_ga_penalty_mode_and_settings(pool8: PredictionSet) -> None:
    assert pool8.cost is not None
    budget = float(np.sort(pool8.cost)[:4].sum())
    sel = GeneticSelector(constraint="penalty", budget=budget, max_size=3, seed=1).select(pool8)
    assert sel.size <= 3 and pool8.cost[sel.members].sum() <= budget + 1e-9
    for bad in ({"constraint": "x"}, {"population": 2}, {"cx_prob": 2.0}, {"elite": 100}):
        with pytest.raises(SpecError):
            GeneticSelector(**bad)  # type: ignore[arg-type]


def test_ga_evolve_weights(pool8: PredictionSet) -> None:
    sel = GeneticSelector(seed=0, evolve_weights=True, max_size=4).select(pool8)
    assert sel.voting == "weighted" and sel.weights is not None
    soft = TeamVoter(pool8.proba[sel.members], "soft").accuracy(np.ones((1, sel.size)), pool8.y)[0]
    assert sel.val_accuracy >= soft


def test_evolve_weights_function(pool8: PredictionSet) -> None:
    team = [0, 2, 5]
    w, acc = evolve_weights(pool8, team, seed=1)
    assert w.shape == (3,) and w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert acc == pytest.approx(
        TeamVoter(pool8.proba[team], "weighted").accuracy(w[None, :], pool8.y)[0]
    )
    assert np.array_equal(w, evolve_weights(pool8, team, seed=1)[0])
    with pytest.raises(SpecError):
        evolve_weights(pool8, [1])


def test_nsga2_front_is_non_dominated(pool10: PredictionSet) -> None:
    sel = NSGA2Selector(seed=0, population=24, generations=20).select(pool10)
    front = sel.table
    assert front is not None and len(front) == sel.scores["front_size"]
    pts = front[["val_accuracy", "diversity", "cost"]].to_numpy()
    for i, j in itertools.permutations(range(len(pts)), 2):
        a, b = pts[i], pts[j]
        dominates = (
            a[0] >= b[0]
            and a[1] >= b[1]
            and a[2] <= b[2]
            and (a[0] > b[0] or a[1] > b[1] or a[2] < b[2])
        )
        assert not dominates
    # the documented pick: the front's most accurate team
    assert sel.val_accuracy == pytest.approx(front["val_accuracy"].max())
    assert tuple(sel.members) in set(front["members"])


def test_nsga2_uses_size_without_costs(pool8: PredictionSet) -> None:
    no_cost = PredictionSet(pool8.proba, pool8.y)
    sel = NSGA2Selector(seed=0, population=16, generations=5).select(no_cost)
    assert sel.table is not None
    assert (sel.table["cost"] == sel.table["size"]).all()


# --- baselines ---------------------------------------------------------------------------------------


def test_topk_picks_most_accurate(pool8: PredictionSet) -> None:
    acc = pool8.accuracies()
    sel = SELECTORS.get("topk")(k=3).select(pool8)
    assert sel.members == sorted(np.argsort(-acc, kind="stable")[:3].tolist())
    free = SELECTORS.get("topk")().select(pool8)
    assert free.table is not None and free.val_accuracy == free.table["val_accuracy"].max()


def test_caruana_weights_are_bag_counts(pool8: PredictionSet) -> None:
    sel = SELECTORS.get("caruana")(iterations=20).select(pool8)
    assert sel.table is not None and len(sel.table) == 20
    bag = sel.scores["bag_size"]
    assert sel.weights is not None
    counts = np.asarray(sel.weights) * bag
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
    assert sel.val_accuracy == pytest.approx(sel.table["val_accuracy"].max())


def test_greedy_improves_on_best_member(pool10: PredictionSet) -> None:
    sel = SELECTORS.get("greedy")().select(pool10)
    assert sel.val_accuracy >= pool10.accuracies().max()
    assert sel.table is not None and sel.table["fitness"].is_monotonic_increasing


def test_random_team_size_and_seed(pool8: PredictionSet) -> None:
    a = SELECTORS.get("random")(k=4, seed=9).select(pool8)
    b = SELECTORS.get("random")(k=4, seed=10).select(pool8)
    assert a.size == 4 and b.size == 4
    sizes = {SELECTORS.get("random")(seed=s, max_size=5).select(pool8).size for s in range(12)}
    assert sizes <= {2, 3, 4, 5} and len(sizes) > 1


def test_selection_predicts_other_split(pool8: PredictionSet) -> None:
    sel = SELECTORS.get("greedy")().select(pool8)
    test = make_pool(8, 100, 4, seed=99)
    assert sel.predict(test).shape == (100,)
    assert 0.0 <= sel.accuracy(test) <= 1.0
    with pytest.raises(PredictionError):
        sel.predict(test.subset([0, 1]))
