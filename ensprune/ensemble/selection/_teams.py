"""Team enumeration helpers: masks of all teams of a size, bit codes, counts."""

from __future__ import annotations

import itertools
import math

import numpy as np

from ensprune.errors import SpecError


def count_teams(n_members: int, min_size: int, max_size: int) -> int:
    """Number of teams with ``min_size`` to ``max_size`` members out of ``n_members``."""
    return sum(math.comb(n_members, s) for s in range(min_size, max_size + 1))


def teams_of_size(n_members: int, size: int) -> np.ndarray:
    """Bool masks (C(M, size), M) of all teams of ``size`` members, in lexicographic order."""
    count = math.comb(n_members, size)
    idx = np.fromiter(
        itertools.chain.from_iterable(itertools.combinations(range(n_members), size)),
        dtype=np.int64,
        count=count * size,
    ).reshape(count, size)
    masks = np.zeros((count, n_members), dtype=bool)
    masks[np.arange(count)[:, None], idx] = True
    return masks


def codes(masks: np.ndarray) -> np.ndarray:
    """One uint64 bit code per team (bit i = member i); pools of at most 64 members."""
    m = masks.shape[1]
    if m > 64:
        raise SpecError(f"team bit codes support pools of at most 64 members; got {m}")
    bits = np.left_shift(np.uint64(1), np.arange(m, dtype=np.uint64))
    return np.asarray(
        (masks.astype(np.uint64) * bits).sum(axis=1, dtype=np.uint64), dtype=np.uint64
    )


def members_of(mask: np.ndarray) -> list[int]:
    """Sorted member indices of one mask."""
    return [int(i) for i in np.flatnonzero(mask)]
