"""Menus of operating points: every member's network at several compressions, with a cost each.

A :class:`Menu` holds P operating points of a pool of M members: the class probabilities of each
point on one split, the member it belongs to, and its cost (effective MACs, compacted MACs,
parameters, latency: ``cost_name`` says which). The joint selector
(:mod:`ensprune.ensemble.selection.joint`) chooses, for every member, "out" or one of its
points under a total cost budget.

The npz format (``ensprune select MENU.npz --mode joint``), read without pickles:

=============  ===========  ==========================================================
key            shape        meaning
=============  ===========  ==========================================================
``proba``      (P, N, C)    class probabilities of each operating point
``member``     (P,)         the member each point belongs to (any integers)
``cost``       (P,)         the point's cost (finite, >= 0)
``y``          (N,)         true labels
``names``      (P,)         optional point names (default ``p0, p1, ...``)
``cost_name``  ()           optional name of the cost (default ``"cost"``)
=============  ===========  ==========================================================
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensprune.ensemble.predictions import PredictionSet
from ensprune.errors import PredictionError, SpecError

__all__ = ["Menu", "make_menu", "resolve_budget"]


@dataclass(frozen=True)
class Menu:
    """Operating points of a pool on one split (see the module docstring).

    Attributes:
        points: the points' predictions, names and costs, as a :class:`PredictionSet` of P rows.
        member: int array (P,), the member each point belongs to.
        cost_name: what the cost measures (e.g. ``"effective_macs"``).

    Example:
        >>> menu = Menu.from_arrays(proba, member=[0, 0, 1, 1], cost=[4e5, 1e5, 3e5, 8e4], y=y)
        >>> menu.points_of(0)        # point indices of member 0, cheapest first
    """

    points: PredictionSet
    member: np.ndarray
    cost_name: str = "cost"

    def __post_init__(self) -> None:
        member = np.asarray(self.member)
        p = self.points.n_members
        if member.shape != (p,):
            raise PredictionError(
                f"member must have shape ({p},), one member index per operating point; "
                f"got shape {member.shape}"
            )
        if not np.issubdtype(member.dtype, np.integer):
            if np.issubdtype(member.dtype, np.floating) and np.all(member == np.round(member)):
                member = member.astype(np.int64)
            else:
                raise PredictionError(f"member must hold integers; got dtype {member.dtype}")
        if self.points.cost is None:
            raise PredictionError("a menu needs a 'cost' array (P,): one cost per operating point")
        if not str(self.cost_name).strip():
            raise PredictionError("cost_name must be a non-empty name such as 'effective_macs'")
        object.__setattr__(self, "member", member.astype(np.int64, copy=False))
        object.__setattr__(self, "cost_name", str(self.cost_name))

    @classmethod
    def from_arrays(
        cls,
        proba: np.ndarray,
        *,
        member: np.ndarray | list[int],
        cost: np.ndarray | list[float],
        y: np.ndarray,
        names: tuple[str, ...] | list[str] = (),
        cost_name: str = "cost",
    ) -> Menu:
        """A menu from plain arrays (validated like a :class:`PredictionSet`)."""
        points = PredictionSet(np.asarray(proba), np.asarray(y), tuple(names), np.asarray(cost))
        return cls(points, np.asarray(member), cost_name)

    @classmethod
    def from_predictions(cls, preds: PredictionSet, cost_name: str = "cost") -> Menu:
        """One operating point per member: each member of ``preds`` at its only point."""
        if preds.cost is None:
            raise PredictionError("a menu needs member costs: the predictions hold no 'cost'")
        return cls(preds, np.arange(preds.n_members), cost_name)

    @property
    def n_points(self) -> int:
        return self.points.n_members

    @property
    def members(self) -> np.ndarray:
        """The distinct member indices, ascending (the joint search's genes, in this order)."""
        return np.unique(self.member)

    @property
    def n_members(self) -> int:
        return int(self.members.size)

    @property
    def cost(self) -> np.ndarray:
        """Cost of each point (P,)."""
        assert self.points.cost is not None
        return self.points.cost

    def points_of(self, member: int) -> np.ndarray:
        """Point indices of one member, cheapest first (ties: lower index first)."""
        idx = np.flatnonzero(self.member == member)
        return idx[np.argsort(self.cost[idx], kind="stable")]

    def dense_cost(self) -> np.ndarray:
        """Each member's costliest point (its dense network in a pipeline menu), by member."""
        return np.array([self.cost[self.points_of(m)[-1]] for m in self.members])

    def with_split(self, points: PredictionSet) -> Menu:
        """The same menu on another split (e.g. test): same points, members and costs."""
        if points.n_members != self.n_points:
            raise PredictionError(
                f"the other split holds {points.n_members} points; the menu has {self.n_points}"
            )
        return Menu(PredictionSet(points.proba, points.y, self.points.names, self.cost),
                    self.member, self.cost_name)  # fmt: skip

    def save(self, path: str | Path) -> Path:
        """Write the npz format of the module docstring (no pickles)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            proba=self.points.proba,
            member=self.member,
            cost=self.cost,
            y=self.points.y,
            names=np.asarray(self.points.names, dtype=np.str_),
            cost_name=np.asarray(self.cost_name, dtype=np.str_),
        )
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    @classmethod
    def load(cls, path: str | Path) -> Menu:
        """Read a menu npz file (see the module docstring); bad content raises PredictionError."""
        path = Path(path)
        if not path.is_file():
            raise PredictionError(f"menu file {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = {"proba", "member", "cost", "y"} - set(npz.files)
                if missing:
                    raise PredictionError(
                        f"{path} lacks the array(s) {sorted(missing)}; a menu file holds 'proba' "
                        "(points, samples, classes), 'member' (points,), 'cost' (points,) and "
                        "'y' (samples,)"
                    )
                arrays = {k: npz[k] for k in npz.files}
        except PredictionError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise PredictionError(
                f"cannot read {path} as an .npz menu file ({exc}); write it with numpy.savez"
            ) from None
        names = tuple(str(s) for s in arrays["names"]) if "names" in arrays else ()
        cost_name = str(arrays["cost_name"]) if "cost_name" in arrays else "cost"
        cost = np.asarray(arrays["cost"])
        if cost.shape != (arrays["proba"].shape[0] if arrays["proba"].ndim else -1,):
            raise PredictionError(
                f"cost must have shape (points,) matching proba's first axis; got {cost.shape}"
            )
        return cls.from_arrays(
            arrays["proba"],
            member=arrays["member"],
            cost=cost,
            y=arrays["y"],
            names=names,
            cost_name=cost_name,
        )


_RELATIVE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(x_member|%_pool)\s*$", re.I)


def resolve_budget(budget: float | str | None, dense_cost: np.ndarray) -> float | None:
    """A budget as a number: absolute, or relative to the dense members' costs.

    ``"1x_member"`` is once the mean dense cost of one member, ``"25%_pool"`` a quarter of the
    summed dense cost of the whole pool; numbers (or numeric strings) are absolute.

    Raises:
        SpecError: anything else, or a negative budget.
    """
    if budget is None:
        return None
    if isinstance(budget, int | float):
        value = float(budget)
    else:
        match = _RELATIVE.match(budget)
        if match:
            factor, unit = float(match.group(1)), match.group(2).lower()
            dense = np.asarray(dense_cost, dtype=np.float64)
            value = factor * (dense.mean() if unit == "x_member" else dense.sum() / 100.0)
        else:
            try:
                value = float(budget)
            except ValueError:
                raise SpecError(
                    f"budget {budget!r} is not a number, 'Nx_member' (e.g. '1x_member', "
                    "'0.25x_member') or 'N%_pool' (e.g. '25%_pool')"
                ) from None
    if not (np.isfinite(value) and value >= 0):
        raise SpecError(f"budget must be a finite number >= 0; got {budget!r}")
    return value


def make_menu(
    n_members: int = 6,
    n_points: int = 3,
    n_samples: int = 1000,
    n_classes: int = 10,
    *,
    damage: float = 0.06,
    cost_ratio: float = 0.5,
    seed: int = 0,
) -> Menu:
    """A seeded synthetic menu (tests, benchmarks): each member of a synthetic pool at several points.

    Point 0 of a member is its network as :func:`~ensprune.ensemble.synthetic.make_pool` made
    it (cost 1 to 10); point k costs ``cost_ratio**k`` of that and is "pruned": on a random
    ``damage * k`` share of the samples its probabilities are replaced by random ones (so cheaper
    points are less accurate, and still correlated with their dense member).
    """
    from ensprune.ensemble.synthetic import make_pool

    pool = make_pool(n_members, n_samples, n_classes, seed=seed)
    assert pool.cost is not None
    rng = np.random.default_rng(seed + 1)
    proba, member, cost, names = [], [], [], []
    for i in range(n_members):
        for k in range(n_points):
            p = pool.proba[i].copy()
            hit = rng.random(n_samples) < damage * k
            p[hit] = rng.dirichlet(np.ones(n_classes), size=int(hit.sum()))
            proba.append(p)
            member.append(i)
            cost.append(pool.cost[i] * cost_ratio**k)
            names.append(f"{pool.names[i]}@{k}")
    return Menu.from_arrays(
        np.stack(proba), member=member, cost=cost, y=pool.y, names=names, cost_name="cost"
    )
