"""Fixtures of the ensemble tests: small seeded synthetic pools and a loop reference of the metrics."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest

from ensprune.ensemble import PredictionSet, make_pool


def _pairs(n: int) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(n), 2))


def loop_metric(metric: str, labels: np.ndarray, y: np.ndarray) -> float:
    """The docs/metrics.md definitions, written the plain way: one pair at a time."""
    labels = np.asarray(labels)
    y = np.asarray(y)
    n_members, n = labels.shape
    right = labels == y[None, :]
    if metric in ("ck", "bd", "qs", "df"):
        values = []
        for i, k in _pairs(n_members):
            if metric == "ck":
                if n == 0:
                    values.append(1.0)
                    continue
                p_o = float(np.mean(labels[i] == labels[k]))
                classes = set(labels[i].tolist()) | set(labels[k].tolist())
                p_e = sum(
                    float(np.mean(labels[i] == c)) * float(np.mean(labels[k] == c)) for c in classes
                )
                values.append(1.0 if p_e == 1.0 else (p_o - p_e) / (1.0 - p_e))
                continue
            n11 = int(np.sum(right[i] & right[k]))
            n00 = int(np.sum(~right[i] & ~right[k]))
            n10 = int(np.sum(right[i] & ~right[k]))
            n01 = int(np.sum(~right[i] & right[k]))
            if metric == "bd":
                values.append((n01 + n10) / n if n else 0.0)
            elif metric == "df":
                values.append(n00 / n if n else 0.0)
            else:
                den = n11 * n00 + n01 * n10
                if den:
                    values.append((n11 * n00 - n01 * n10) / den)
                else:
                    values.append(1.0 if n01 + n10 == 0 else 0.0)
        return float(np.mean(values))
    if n == 0:
        return 0.0
    n_right = right.sum(axis=0)
    size = n_members
    if metric == "kw":
        return float(np.sum(n_right * (size - n_right)) / (n * size**2))
    if metric == "gd":
        p = np.bincount(size - n_right, minlength=size + 1) / n
        i = np.arange(size + 1)
        p1 = float(np.sum(i / size * p))
        p2 = float(np.sum(i * (i - 1) / (size * (size - 1)) * p))
        return 0.0 if p1 == 0 else 1.0 - p2 / p1
    if metric == "entropy":
        return float(
            np.sum(np.minimum(n_right, size - n_right)) / (n * (size - math.ceil(size / 2)))
        )
    raise ValueError(metric)


def loop_focal(metric: str, labels: np.ndarray, y: np.ndarray, team: list[int]) -> float:
    """Plain mean over the team's members F of the team's metric on F's negatives."""
    labels = np.asarray(labels)
    y = np.asarray(y)
    values = []
    for f in team:
        neg = labels[f] != y
        values.append(loop_metric(metric, labels[team][:, neg], y[neg]))
    return float(np.mean(values))


@pytest.fixture(scope="session")
def reference() -> SimpleNamespace:
    """The loop reference implementations."""
    return SimpleNamespace(metric=loop_metric, focal=loop_focal)


@pytest.fixture(scope="session")
def pool8() -> PredictionSet:
    """8 members, 400 samples, 4 classes, with costs."""
    return make_pool(8, 400, 4, seed=3)


@pytest.fixture(scope="session")
def pool10() -> PredictionSet:
    """10 members, 600 samples, 5 classes, with costs."""
    return make_pool(10, 600, 5, seed=11, accuracy=(0.55, 0.85))
