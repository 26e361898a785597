"""Studies: spec files, Optuna storages, per-member searches and the end-to-end pipeline."""

from ensprune.study.pipeline import RunResult, run_study
from ensprune.study.single import prune_one
from ensprune.study.spec import DataSpec, PoolSpec, SearchSpec, SelectionSpec, StudySpec
from ensprune.study.storage import default_storage_url, open_storage

__all__ = [
    "DataSpec",
    "PoolSpec",
    "RunResult",
    "SearchSpec",
    "SelectionSpec",
    "StudySpec",
    "default_storage_url",
    "open_storage",
    "prune_one",
    "run_study",
]
