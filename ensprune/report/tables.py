"""The report's tables on disk: each DataFrame as CSV (for people) and Parquet (typed, for code)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

__all__ = ["write_table"]


def write_table(frame: pd.DataFrame, stem: Path) -> None:
    """``stem.csv`` and ``stem.parquet`` (typed columns: booleans, integers, NaN stay what they are)."""
    frame.to_csv(stem.with_suffix(".csv"), index=False)
    typed = frame.copy()
    for column in typed.columns:
        # mixed-type object columns (e.g. a parameter that is a number for one method and a
        # string for another) are written as text, which Parquet can type
        if typed[column].dtype == object and typed[column].map(type).nunique() > 1:
            typed[column] = typed[column].map(lambda v: None if _missing_value(v) else str(v))
    typed.to_parquet(stem.with_suffix(".parquet"), index=False)


def _missing_value(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
