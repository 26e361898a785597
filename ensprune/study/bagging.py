"""Bagging: each member's own random subset of the training split (``[pool] bag``).

A member's bag is a pure function of the study seed, the member's name and the size of the
training split, so the lead, its ``--join`` workers and a resumed run all draw the same one,
and adding a member to the pool leaves the other members' bags unchanged.
"""

from __future__ import annotations

import zlib

import numpy as np

from ensprune.errors import SpecError
from ensprune.study.search import SplitData
from ensprune.study.spec import StudySpec

__all__ = ["bag_rows", "check_bag", "member_split"]


def check_bag(spec: StudySpec, n_train: int) -> None:
    """Refuse a ``[pool] bag`` larger than the training split (before any training)."""
    bag = spec.pool.bag
    if bag is not None and bag > n_train:
        raise SpecError(
            f"[pool] bag = {bag} is more than the {n_train} training images of this dataset "
            "split; lower bag (or raise [data] max_train)"
        )


def bag_rows(spec: StudySpec, member: str, n_train: int) -> np.ndarray | None:
    """The sorted training-row indices of ``member``'s bag, or ``None`` without bagging."""
    bag = spec.pool.bag
    if bag is None:
        return None
    check_bag(spec, n_train)
    # crc32, not hash(): Python salts str hashes per process
    rng = np.random.default_rng([spec.seed, zlib.crc32(member.encode("utf-8"))])
    return np.sort(rng.choice(n_train, size=bag, replace=False))


def member_split(spec: StudySpec, member: str, split: SplitData) -> SplitData:
    """``split`` with its training part narrowed to ``member``'s bag (validation is shared)."""
    rows = bag_rows(spec, member, len(split.y_train))
    if rows is None:
        return split
    return SplitData(split.x_train[rows], split.y_train[rows], split.x_val, split.y_val)
