"""PredictionSet: the members' class probabilities on one split, the only input of the ensemble side."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ensprune.errors import PredictionError

_PROBA_ATOL = 1e-3


@dataclass(frozen=True)
class PredictionSet:
    """Class probabilities of M members on N samples with C classes.

    Attributes:
        proba: float array (M, N, C); each row a probability vector (non-negative, sums to 1).
        y: int array (N,) of true labels in [0, C).
        names: one name per member.
        cost: optional non-negative cost per member (e.g. MACs), used by budgeted selection.

    Example:
        >>> ps = PredictionSet(proba, y, names=["a", "b", "c"])
        >>> ps.labels.shape   # (M, N) predicted labels
    """

    proba: np.ndarray
    y: np.ndarray
    names: tuple[str, ...] = field(default=())
    cost: np.ndarray | None = None

    def __post_init__(self) -> None:
        proba = np.asarray(self.proba)
        y = np.asarray(self.y)
        if proba.ndim != 3:
            raise PredictionError(
                f"proba must have shape (members, samples, classes); got shape {proba.shape}"
            )
        if not np.issubdtype(proba.dtype, np.floating):
            raise PredictionError(f"proba must be floating point; got dtype {proba.dtype}")
        m, n, c = proba.shape
        if m < 1 or n < 1 or c < 2:
            raise PredictionError(
                f"proba needs at least 1 member, 1 sample and 2 classes; got shape {proba.shape}"
            )
        if not np.all(np.isfinite(proba)):
            bad = int(np.argmax(~np.isfinite(proba).reshape(m, -1).all(axis=1)))
            raise PredictionError(
                f"proba holds NaN or infinite values (first in member {bad}); "
                "recompute that member's predictions"
            )
        if proba.min() < -_PROBA_ATOL or not np.allclose(proba.sum(-1), 1.0, atol=_PROBA_ATOL):
            raise PredictionError(
                "proba rows must be probability vectors (non-negative, summing to 1); "
                "apply softmax to logits before building a PredictionSet"
            )
        if y.shape != (n,):
            raise PredictionError(
                f"y must have shape ({n},) to match proba's {n} samples; got shape {y.shape}"
            )
        if not np.issubdtype(y.dtype, np.integer):
            if (
                np.issubdtype(y.dtype, np.floating)
                and np.all(np.isfinite(y))
                and np.all(y == np.round(y))
            ):
                y = y.astype(np.int64)
            else:
                raise PredictionError(f"y must hold integer class labels; got dtype {y.dtype}")
        if y.min() < 0 or y.max() >= c:
            raise PredictionError(
                f"labels in y must lie in [0, {c}) for {c} classes; found {int(y.min())}..{int(y.max())}"
            )
        names = (
            tuple(str(s) for s in self.names)
            if len(self.names)
            else tuple(f"m{i}" for i in range(m))
        )
        if len(names) != m:
            raise PredictionError(
                f"got {len(names)} names for {m} members; give one name per member"
            )
        if len(set(names)) != m:
            raise PredictionError("member names must be unique")
        cost = None
        if self.cost is not None:
            try:
                cost = np.asarray(self.cost, dtype=np.float64)
            except (TypeError, ValueError):  # strings, objects
                raise PredictionError(
                    f"cost must be {m} finite non-negative numbers, one per member; got "
                    f"dtype {np.asarray(self.cost).dtype}"
                ) from None
            if cost.shape != (m,) or not np.all(np.isfinite(cost)) or cost.min() < 0:
                raise PredictionError(
                    f"cost must be {m} finite non-negative numbers, one per member; got shape {cost.shape}"
                )
        object.__setattr__(self, "proba", proba)
        object.__setattr__(self, "y", y.astype(np.int64, copy=False))
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "cost", cost)

    @property
    def n_members(self) -> int:
        return int(self.proba.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.proba.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.proba.shape[2])

    @property
    def labels(self) -> np.ndarray:
        """Predicted labels, int array (M, N)."""
        return np.asarray(self.proba.argmax(axis=2), dtype=np.int64)

    @property
    def oracle(self) -> np.ndarray:
        """Oracle matrix, bool array (N, M): member i correct on sample n."""
        return np.asarray((self.labels == self.y[None, :]).T)

    def accuracies(self) -> np.ndarray:
        """Per-member accuracy, float array (M,)."""
        return np.asarray(self.oracle.mean(axis=0), dtype=np.float64)

    def subset(self, members: Sequence[int]) -> PredictionSet:
        """The PredictionSet of the given member indices, in that order."""
        idx = np.asarray(members, dtype=np.int64)
        return PredictionSet(
            self.proba[idx],
            self.y,
            names=tuple(self.names[i] for i in idx),
            cost=None if self.cost is None else self.cost[idx],
        )

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` file (keys proba, y, names, and cost when set); no pickles."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "proba": self.proba,
            "y": self.y,
            "names": np.asarray(self.names, dtype=np.str_),
        }
        if self.cost is not None:
            arrays["cost"] = self.cost
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    @classmethod
    def load(cls, path: str | Path) -> PredictionSet:
        """Read an ``.npz`` file holding ``proba`` (M, N, C) and ``y`` (N,), optionally ``names``, ``cost``."""
        path = Path(path)
        if path.is_dir():
            raise PredictionError(f"prediction file {path} is a directory; give the .npz file")
        if not path.is_file():
            raise PredictionError(f"prediction file {path} does not exist")
        try:
            loaded = np.load(path, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):  # an .npy: one bare array
                raise PredictionError(
                    f"{path} holds a single array, not an .npz archive; save 'proba' and 'y' "
                    "together with numpy.savez"
                )
            with loaded as npz:
                keys = set(npz.files)
                missing = {"proba", "y"} - keys
                if missing:
                    raise PredictionError(
                        f"{path} lacks the array(s) {sorted(missing)}; a prediction file holds "
                        "'proba' (members, samples, classes) and 'y' (samples,)"
                    )
                proba = npz["proba"]
                y = npz["y"]
                names = tuple(str(s) for s in npz["names"]) if "names" in keys else ()
                cost = npz["cost"] if "cost" in keys else None
        except PredictionError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise PredictionError(
                f"cannot read {path} as an .npz prediction file ({exc}); write it with numpy.savez"
            ) from None
        return cls(proba, y, names=names, cost=cost)
