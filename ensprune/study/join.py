"""``ensprune run SPEC --join``: one more worker on the member studies of a run that another
process leads.

The leading run (``ensprune run SPEC --storage URL`` without ``--join``) owns the run directory:
it trains the pool, runs trials, waits for every worker's trials, then evaluates, selects and
reports. A joining process never writes the run directory's metadata: it waits until the lead
has trained the pool (``run.json`` records the train stage and the current search), loads the
pool's checkpoints from the same directory, adds trials to the same studies until each has its
``[search] trials`` in total, and exits. The storage must be one that several processes can
write: PostgreSQL (any machines) or a journal file (one machine); SQLite never is.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from ensprune import rundir as rd
from ensprune.errors import RunDirError, SpecError
from ensprune.storage import is_shared, redact, same_storage
from ensprune.study.spec import StudySpec

logger = logging.getLogger("ensprune.study")

__all__ = ["join_run"]


def join_run(
    spec: StudySpec,
    *,
    run_dir: str | Path | None = None,
    storage: str | None = None,
    data_dir: str | Path | None = None,
    download: bool = True,
    progress: bool = True,
    workers: int | None = None,
    threads: int | None = None,
    wait_s: float = 3600.0,
    poll_s: float = 1.0,  # a stat and a small JSON read per second
) -> Path:
    """Add this process's work to the member studies of the run led elsewhere; returns its dir.

    Args:
        run_dir: the lead's run directory, at the same path as the lead sees it (a shared file
            system across machines).
        storage: the lead's storage URL (default: the spec's).
        threads: torch threads of this process and its workers (see
            :func:`~ensprune.study.pipeline.run_study`).
        wait_s: how long to wait for the lead to train the pool before giving up.

    Raises:
        SpecError: no storage, or one that is not shared (SQLite).
        RunDirError: the run directory belongs to another spec or storage, or the pool was not
            trained within ``wait_s``.
    """
    from ensprune.study.pipeline import (
        _COMPAT_SECTIONS,
        _search_fingerprint,
        load_spec_data,
        search_pool,
        train_pool,
    )

    url = storage or spec.storage
    if not url or not is_shared(url):
        raise SpecError(
            "--join needs the lead's storage, one that several processes can write: --storage "
            "postgresql+psycopg2://USER@HOST/DB (any machines) or --storage PATH.log (a journal "
            f"file, one machine); SQLite is never written by concurrent processes (got {url!r})"
        )
    target = Path(run_dir or spec.run_dir or Path("runs") / spec.name).resolve()
    fingerprint = _search_fingerprint(spec)
    meta = _wait_for_pool(target, fingerprint, wait_s, poll_s)
    if meta.get("compat") != spec.fingerprint(*_COMPAT_SECTIONS):
        raise RunDirError(
            f"run directory {target} holds a run of a different spec (seed, data or pool differ); "
            "give --join the lead's spec file"
        )
    lead_url = rd.storage_or_none(target, meta)
    # one file named another way (relative, through a symlink, with ..) is the same storage
    if not same_storage(lead_url, url):
        raise RunDirError(
            f"run directory {target} stores its studies in {redact(str(lead_url))}, "
            f"not {redact(url)}; give --join the lead's --storage"
        )
    suffix = next(k for k, v in meta["searches"].items() if v == fingerprint)
    logger.info("joining run %s on storage %s", target, redact(url))
    data = load_spec_data(spec, data_dir, download, progress)
    pool = train_pool(spec, data, target, progress)  # loads the lead's checkpoints
    jobs = workers or spec.workers
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        search_pool(
            spec, data, pool, target, url, jobs, search_suffix=suffix, joining=True, threads=threads
        )
    finally:
        torch.set_num_threads(previous)
    logger.info("every member study has its trials; the lead evaluates, selects and reports")
    return target


def _wait_for_pool(run_dir: Path, fingerprint: str, wait_s: float, poll_s: float) -> dict:
    """run.json once it records a trained pool and this search; waits up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    announced = False
    while True:
        path = run_dir / rd.RUN_JSON
        if path.is_file():
            meta = rd.read_json(path)
            searches = meta.get("searches") or {}
            if (meta.get("stages") or {}).get("train") and fingerprint in searches.values():
                return meta
        if time.monotonic() >= deadline:
            raise RunDirError(
                f"no trained pool in {run_dir} after {wait_s:.0f}s; start the lead first "
                "(the same command without --join), with the same --run-dir and --storage"
            )
        if not announced:
            logger.info("waiting for the lead to train the pool in %s", run_dir)
            announced = True
        time.sleep(poll_s)
