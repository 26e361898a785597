"""The plugin registry: exact and case-insensitive lookup, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from ensprune._registry import Registry
from ensprune.ensemble import diversity
from ensprune.errors import UnknownNameError


def test_lookup_is_exact_first_then_case_insensitive() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("ck")(1)
    reg.register("Mixed")(2)
    assert reg.get("ck") == 1
    assert reg.get("CK") == 1
    assert reg.get("mixed") == 2
    with pytest.raises(UnknownNameError, match=r"unknown thing 'kc'; valid thing names: Mixed, ck"):
        reg.get("kc")


def test_duplicate_registration_is_refused() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(2)


def test_metric_names_as_the_papers_write_them() -> None:
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    labels = np.array(
        [[0, 1, 2, 0, 1, 2, 0, 1], [0, 1, 1, 0, 2, 2, 1, 1], [1, 1, 2, 2, 1, 2, 0, 0]]
    )
    assert diversity("KW", labels, y) == diversity("kw", labels, y) == pytest.approx(1 / 6)
