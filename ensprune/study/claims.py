"""Exactly ``n_trials`` per member study, however many processes or machines work on it.

Each worker process loops: while fewer than ``n_trials`` trials are taken (complete, pruned,
running or waiting), it asks Optuna for one more. Two workers can ask at the same moment, so a
new trial first checks its rank among the taken trials (by storage id, which the storage hands
out in order); a trial ranked ``n_trials`` or later is surplus and ends as FAIL (user attribute
``surplus``) before any work, and is checked again before it is told, when every earlier trial
is visible. Failed trials (a worker killed mid-trial, a crash) free their slot and are redone.

A trial records the worker that runs it (host and process id); a RUNNING trial whose process is
gone from this host is failed, and on PostgreSQL Optuna's heartbeat fails those of dead workers
on other machines.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "SURPLUS_ATTR",
    "TAKEN",
    "SurplusTrial",
    "check_claim",
    "fail_dead_trials",
    "mark_worker",
    "taken_trials",
]

TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
SURPLUS_ATTR = "surplus"
WORKER_ATTR = "worker"


class SurplusTrial(Exception):
    """A trial beyond the study's budget, started by a worker that raced another."""


class _QuietSurplus(logging.Filter):
    """Drop Optuna's two warnings for a surplus trial (the traceback, then "failed with value
    None"): nothing went wrong, and the per-trial log says nothing of it either."""

    def __init__(self) -> None:
        super().__init__()
        self.surplus_trial: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], SurplusTrial):
            self.surplus_trial = record.getMessage().split(" failed", 1)[0]  # "Trial 7"
            return False
        if self.surplus_trial and record.getMessage().startswith(self.surplus_trial + " failed"):
            self.surplus_trial = None
            return False
        return True


# the logger Optuna's optimize loop reports failed trials on
logging.getLogger("optuna.study._optimize").addFilter(_QuietSurplus())


def taken_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that use up the budget: finished ones and those still running or queued."""
    return study.get_trials(deepcopy=False, states=TAKEN)


def mark_worker(trial: optuna.Trial) -> None:
    """Record which process runs ``trial`` (so a dead one can be told from a slow one)."""
    trial.set_user_attr(WORKER_ATTR, {"host": socket.gethostname(), "pid": os.getpid()})


def check_claim(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> None:
    """Raise :class:`SurplusTrial` when ``n_trials`` taken trials came before ``trial``."""
    own = trial._trial_id
    earlier = sum(1 for t in taken_trials(study) if t._trial_id < own)
    if earlier >= n_trials:
        trial.set_user_attr(SURPLUS_ATTR, True)
        raise SurplusTrial(f"the study already has its {n_trials} trial(s)")


def fail_dead_trials(
    study: optuna.Study, storage: optuna.storages.BaseStorage, shared: bool
) -> int:
    """Mark FAIL the RUNNING trials whose worker is gone; returns how many.

    With a storage that only this process writes (``shared`` false) every RUNNING trial is a
    leftover of a killed run. Otherwise a trial is dead when its worker ran on this host and the
    process no longer exists, or when Optuna's heartbeat (PostgreSQL) says so.
    """
    if shared and isinstance(storage, optuna.storages.RDBStorage):
        with warnings.catch_warnings():  # experimental in Optuna since 2.9, still the way
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    failed = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        dead = not shared or worker_is_gone(t)
        if dead and storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
            failed += 1
    return failed


def worker_is_gone(trial: FrozenTrial) -> bool:
    """True when the RUNNING ``trial``'s worker ran on this host and its process is gone.

    A trial without a worker record is kept: on a shared storage a worker records itself right
    after asking for the trial, so another process may see it in between. A worker on another
    host is never judged from here (Optuna's heartbeat does that).
    """
    worker = trial.user_attrs.get(WORKER_ATTR) or {}
    if "pid" not in worker:
        return False
    return worker.get("host") == socket.gethostname() and not _alive(int(worker["pid"]))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process runs no trial while it checks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True
