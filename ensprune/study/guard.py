"""What keeps a run directory sound when runs collide, crash or are interrupted.

- One writer: :func:`guarded` holds the run directory's lock (:func:`ensprune.rundir.lock_run_dir`)
  for the whole run, so a second run on the same directory is refused with one line.
- Identity: every run directory has a ``run_id`` (in ``run.json``) that its Optuna studies carry as
  the user attribute ``ensprune_run_id``; :func:`claim_studies` refuses a study of another run
  found in a shared storage, and marks the trials an earlier, killed run left RUNNING as FAIL
  (the lock guarantees that no live process of this run directory is still running them).
- Interrupts: Ctrl-C ends the run with :class:`RunInterrupted` (exit code 130 on the command line)
  after saying what was kept and the exact command that resumes; worker processes ignore SIGINT
  (only the parent reacts, so no worker traceback) and end when their parent is gone
  (:func:`follow_parent`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shlex
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ensprune import rundir as rd
from ensprune.errors import RunDirError

logger = logging.getLogger("ensprune.study")

RUN_ID_ATTR = "ensprune_run_id"
PARENT_POLL_S = 0.5

F = TypeVar("F", bound=Callable[..., Any])


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C ended a run; the message says what was kept and how to resume."""


def default_run_dir(spec: Any, run_dir: str | Path | None) -> Path:
    """The run directory a run of ``spec`` uses: the given one, the spec's, or ``runs/<name>``."""
    return Path(run_dir or spec.run_dir or Path("runs") / spec.name)


def refuse_unusable(run_dir: Path) -> None:
    """Refuse a path that is a file, or a non-empty directory that is not a run directory."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--run-dir {run_dir} is a file; give a directory (new or a run's)")
    ours = any((run_dir / n).exists() for n in (rd.RUN_JSON, rd.SPEC_TOML))
    if run_dir.is_dir() and not ours and any(p.name != rd.LOCK_FILE for p in run_dir.iterdir()):
        raise RunDirError(
            f"{run_dir} exists and is not an ensprune run directory; choose another --run-dir"
        )


def guarded(run: F) -> F:
    """Run ``run(spec, **kwargs)`` holding its run directory's lock; Ctrl-C -> RunInterrupted."""

    @functools.wraps(run)
    def wrapper(spec: Any, **kwargs: Any) -> Any:
        target = default_run_dir(spec, kwargs.get("run_dir")).resolve()
        refuse_unusable(target)
        with rd.lock_run_dir(target):
            try:
                return run(spec, **kwargs)
            except KeyboardInterrupt:
                previous = _ignore_sigint()  # a second Ctrl-C must not cut the clean-up short
                try:
                    message = _after_interrupt(target, kwargs.get("spec_file"))
                finally:
                    _restore_sigint(previous)
                raise RunInterrupted(message) from None

    return wrapper  # type: ignore[return-value]


def resume_command(run_dir: Path, spec_file: str | Path | None) -> str:
    """The exact command that resumes the run in ``run_dir``."""
    spec = str(spec_file) if spec_file is not None else str(run_dir / rd.SPEC_TOML)
    return shlex.join(["ensprune", "run", spec, "--run-dir", str(run_dir)])


def _after_interrupt(run_dir: Path, spec_file: str | Path | None) -> str:
    """Fail the trials the interrupt cut short, log what was kept; the one-line message."""
    members = sorted(p.parent.name for p in (run_dir / rd.MEMBERS_DIR).glob("*/dense.pt"))
    complete = 0
    meta_path = run_dir / rd.RUN_JSON
    if meta_path.is_file():
        try:
            meta = rd.read_json(meta_path)
            names = [str(n) for n in meta.get("studies", [])]
            if names:
                storage = rd.storage_url(run_dir, meta)
                complete = fail_running_trials(storage, names, str(meta.get("run_id", "")))
        except Exception as exc:  # the message must come out whatever the storage does
            logger.warning("could not mark the interrupted trials FAIL: %s", exc)
    command = resume_command(run_dir, spec_file)
    kept = f"kept {len(members)} trained member(s) and {complete} complete trial(s) in {run_dir}"
    logger.info("interrupted: %s; resume with: %s", kept, command)
    return f"interrupted: {kept}; resume with `{command}`"


def _ignore_sigint() -> Any:
    try:
        return signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave signals alone
        return None


def _restore_sigint(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)


# ----------------------------------------------------------------------------------- studies


def _open_studies(storage_url: str, names: Sequence[str]) -> list[Any]:
    import optuna

    from ensprune.storage import open_storage

    storage = open_storage(storage_url)
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    return [optuna.load_study(study_name=n, storage=storage) for n in names if n in existing]


def fail_running_trials(storage_url: str, names: Sequence[str], run_id: str) -> int:
    """Mark FAIL the RUNNING trials a killed or interrupted run left in this run's studies
    ``names``; returns the COMPLETE count.

    Called while holding the run directory's lock. On a storage only this run writes, every
    RUNNING trial is such a leftover; on a shared one (``--join`` workers may be adding trials)
    only those whose worker process is gone (see :func:`ensprune.study.claims.worker_is_gone`).
    """
    from optuna.trial import TrialState

    from ensprune.storage import is_shared
    from ensprune.study.claims import worker_is_gone

    shared = is_shared(storage_url)
    complete = 0
    for study in _open_studies(storage_url, names):
        if run_id and study.user_attrs.get(RUN_ID_ATTR) not in (None, run_id):
            continue  # another run's study: never touch it
        for trial in study.get_trials(deepcopy=False):
            if trial.state == TrialState.RUNNING and (not shared or worker_is_gone(trial)):
                study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                logger.info(
                    "[%s] trial %d was cut short: marked FAIL", study.study_name, trial.number
                )
            complete += trial.state == TrialState.COMPLETE
    return complete


def claim_studies(
    storage_url: str,
    names: Sequence[str],
    run_id: str,
    owns_trial: Callable[[str, Any], bool],
) -> None:
    """Tie the studies ``names`` to this run and clear what a killed run left RUNNING.

    A study carrying another run's id is refused. A study from before run ids (no attribute) is
    adopted when every complete trial's checkpoint is in this run directory (``owns_trial(name,
    trial)``), and refused otherwise: a shared storage never hands one run's studies to another.

    Studies not in the storage yet are created here, tagged with this run's id.

    Raises:
        RunDirError: a study belongs to another run.
    """
    import optuna
    from optuna.trial import TrialState

    from ensprune.storage import open_storage, redact

    storage = open_storage(storage_url)
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    for name in names:
        if name not in existing:  # both objectives maximised, as the member searches create them
            optuna.create_study(
                study_name=name, storage=storage, directions=["maximize", "maximize"]
            ).set_user_attr(RUN_ID_ATTR, run_id)
    for study in _open_studies(storage_url, [n for n in names if n in existing]):
        owner = study.user_attrs.get(RUN_ID_ATTR)
        if owner is None:
            done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            owner = run_id if all(owns_trial(study.study_name, t) for t in done) else "?"
        if owner != run_id:
            raise RunDirError(
                f"storage {redact(storage_url)} already holds the study {study.study_name!r} of "
                "another run directory; give this run its own storage (drop --storage) or another "
                "[study] name"
            )
        study.set_user_attr(RUN_ID_ATTR, run_id)
    fail_running_trials(storage_url, names, run_id)


# ----------------------------------------------------------------------------------- workers

_followed: list[int] = []


def follow_parent() -> None:
    """In a worker process: ignore Ctrl-C (the parent handles it) and exit when the parent dies.

    A watchdog thread polls the parent pid; when the parent is gone (SIGKILL included) the
    worker exits at once instead of living on as an orphan that keeps writing trials. Called at
    the start of every task; the thread is started once per process.
    """
    # in a thread of a worker pool (e.g. dask) this fails: that process handles its signals
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _followed:
        return
    parent = os.getppid()
    _followed.append(parent)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)  # the parent is gone: nothing waits for this worker's results

    threading.Thread(target=watch, name="ensprune-parent-watchdog", daemon=True).start()
