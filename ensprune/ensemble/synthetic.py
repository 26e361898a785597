"""Synthetic prediction pools with controlled accuracy and error correlation (tests, benchmarks).

Member i is right on sample n when ``skill_i > a * d_n + rho * g_{group(i), n} + s * e_{i, n}``
with standard normal sample difficulty ``d``, group noise ``g`` shared by the members of one
"architecture" group and member noise ``e`` (``s = sqrt(1 - rho**2)``). ``skill_i`` is set so that
member i's expected accuracy is its target. Wrong members mostly agree on a per-sample confuser
class (correlated errors, as real networks have); probabilities are a softmax of noisy logits
whose argmax is the member's label, with extra mass on the true class when the member is wrong.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from ensprune.ensemble.predictions import PredictionSet
from ensprune.errors import SpecError


def make_pool(
    n_members: int = 10,
    n_samples: int = 2000,
    n_classes: int = 10,
    *,
    accuracy: tuple[float, float] = (0.6, 0.9),
    n_groups: int = 3,
    group_correlation: float = 0.6,
    difficulty: float = 1.0,
    confuser_share: float = 0.6,
    with_cost: bool = True,
    seed: int = 0,
) -> PredictionSet:
    """A seeded synthetic :class:`PredictionSet`.

    Args:
        n_members: pool size M.
        n_samples: samples N.
        n_classes: classes C (>= 2).
        accuracy: member target accuracies are spread evenly over this range (shuffled).
        n_groups: number of groups of members with correlated errors.
        group_correlation: weight ``rho`` of the shared group noise, in [0, 1).
        difficulty: weight ``a`` of the shared sample difficulty.
        confuser_share: share of wrong answers that go to the sample's confuser class.
        with_cost: attach a cost per member (larger for more accurate members, like MACs).
        seed: seeds everything.
    """
    if n_members < 1 or n_samples < 1 or n_classes < 2:
        raise SpecError("make_pool needs n_members >= 1, n_samples >= 1 and n_classes >= 2")
    if not 0 <= group_correlation < 1:
        raise SpecError(f"group_correlation must lie in [0, 1); got {group_correlation}")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_samples)
    targets = np.linspace(accuracy[0], accuracy[1], n_members)
    rng.shuffle(targets)
    group = np.arange(n_members) % max(1, n_groups)
    noise_scale = math.sqrt(1 - group_correlation**2)
    spread = math.sqrt(difficulty**2 + group_correlation**2 + noise_scale**2)
    skill = np.array([spread * NormalDist().inv_cdf(float(t)) for t in targets])
    d = rng.standard_normal(n_samples)
    g = rng.standard_normal((max(1, n_groups), n_samples))
    e = rng.standard_normal((n_members, n_samples))
    margin = skill[:, None] - (
        difficulty * d[None, :] + group_correlation * g[group] + noise_scale * e
    )
    right = margin > 0
    confuser = (y + rng.integers(1, n_classes, n_samples)) % n_classes
    other = (y[None, :] + rng.integers(1, n_classes, (n_members, n_samples))) % n_classes
    use_confuser = rng.random((n_members, n_samples)) < confuser_share
    labels = np.where(right, y[None, :], np.where(use_confuser, confuser[None, :], other))
    logits = rng.normal(0.0, 1.0, (n_members, n_samples, n_classes))
    rows = np.arange(n_samples)
    for i in range(n_members):
        top = logits[i].max(axis=1)
        logits[i, rows, labels[i]] = top + 0.5 + np.abs(margin[i])
        wrong = ~right[i]
        # a wrong member still gives the true class some mass, as a trained network does
        logits[i, rows[wrong], y[wrong]] = top[wrong] + 0.25 * rng.random(int(wrong.sum()))
    logits -= logits.max(axis=2, keepdims=True)
    proba = np.exp(logits)
    proba /= proba.sum(axis=2, keepdims=True)
    cost = np.round(1.0 + 9.0 * (targets - accuracy[0]) / max(1e-9, accuracy[1] - accuracy[0]), 3)
    return PredictionSet(
        proba,
        y,
        names=tuple(f"m{i}_g{group[i]}" for i in range(n_members)),
        cost=cost if with_cost else None,
    )
