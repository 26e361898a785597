"""Claiming trials: the budget is never exceeded, dead workers' trials are freed."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from ensprune.study.claims import SurplusTrial, check_claim, fail_dead_trials, mark_worker


def test_a_trial_beyond_the_budget_is_surplus() -> None:
    study = optuna.create_study()
    first, second, third = study.ask(), study.ask(), study.ask()
    check_claim(study, first, 2)
    check_claim(study, second, 2)
    with pytest.raises(SurplusTrial, match="already has its 2 trial"):
        check_claim(study, third, 2)
    assert third.user_attrs == {"surplus": True}
    study.tell(first, state=TrialState.FAIL)  # a failed trial frees its slot
    check_claim(study, third, 2)


def test_running_trials_of_a_gone_process_are_failed_live_ones_kept() -> None:
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead, alive, unmarked = study.ask(), study.ask(), study.ask()
    mark_worker(alive)  # this host, a live process (not the checking one: use the parent)
    alive.set_user_attr("worker", {**alive.user_attrs["worker"], "pid": os.getppid()})
    mark_worker(dead)
    dead.set_user_attr("worker", {**dead.user_attrs["worker"], "pid": int(gone.stdout)})
    assert fail_dead_trials(study, storage, shared=True) == 1
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING]
    # a storage nobody else writes: every RUNNING trial is a leftover of a killed run
    assert fail_dead_trials(study, storage, shared=False) == 2
    assert unmarked.number == 2
