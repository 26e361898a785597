"""joblib configuration: n_jobs resolution, ordered parallel map, backend passthrough."""

from __future__ import annotations

import os

import joblib
import pytest

from ensprune.errors import SpecError
from ensprune.parallel import parallel_config, parallel_map, resolve_n_jobs


def _square(x: int) -> int:
    return x * x


def test_resolve_n_jobs() -> None:
    assert resolve_n_jobs(None) == 1
    assert resolve_n_jobs(3) == 3
    assert resolve_n_jobs(-1) == (os.cpu_count() or 1)
    with parallel_config(n_jobs=2):
        assert resolve_n_jobs(None) == 2
    with pytest.raises(SpecError):
        resolve_n_jobs(0)


def test_parallel_map_in_order_on_threads() -> None:
    with parallel_config(backend="threading"):
        assert joblib.parallel.get_active_backend()[0].__class__.__name__ == "ThreadingBackend"
        assert parallel_map(_square, range(7), n_jobs=2) == [x * x for x in range(7)]
    assert parallel_map(_square, range(4), n_jobs=1) == [0, 1, 4, 9]
