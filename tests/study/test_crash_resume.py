"""SIGKILL at every stage, Ctrl-C, killed workers, moved and damaged run directories: the same
command resumes, reuses what was finished and ends where an uninterrupted run ends.

Each test drives `ensprune run` as real processes on a tiny digits spec (2 members, 3 trials);
the uninterrupted run is made once per module and compared against.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState

from ensprune.ensemble import PredictionSet

from .crashkit import (
    alive,
    checksums,
    children_of,
    run_cli,
    start_run,
    trials_of,
    wait_for,
    write_spec,
)

pytestmark = pytest.mark.slow  # real runs, each tens of seconds on 2 shared cores


def outcome(run_dir: Path) -> dict[str, object]:
    """What must not depend on interruptions: complete trials, chosen trials, team, predictions."""
    studies = {}
    for name, trials in trials_of(run_dir).items():
        assert not [t for t in trials if t.state == TrialState.RUNNING], name
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        studies[name] = [(t.params, [round(v, 6) for v in t.values]) for t in done]
    members = json.loads((run_dir / "selection.json").read_text())["members"]
    chosen = pd.read_csv(run_dir / "members.csv")[["member", "method", "target_sparsity"]]
    val = PredictionSet.load(run_dir / "predictions" / "val.npz")
    return {
        "studies": studies,
        "chosen": chosen.round(6).to_dict("records"),
        "team": members,
        "val": np.round(val.proba, 5).tolist(),
    }


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_spec(tmp_path_factory.mktemp("spec"))


@pytest.fixture(scope="module")
def uninterrupted(spec_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    run_dir = tmp_path_factory.mktemp("clean") / "run"
    done = run_cli("run", str(spec_file), "--run-dir", str(run_dir), "--quiet")
    assert done.returncode == 0, done.stderr
    return outcome(run_dir)


class Run:
    """A running `ensprune run` whose stderr lines are collected as they come."""

    def __init__(self, spec: Path, run_dir: Path, *extra: str) -> None:
        self.proc = start_run(spec, run_dir, *extra)
        self.lines: list[str] = []
        assert self.proc.stderr is not None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def wait_for(self, text: str) -> None:
        wait_for(lambda: self.saw(text) or self.proc.poll() is not None, what=text, timeout=300)
        assert self.saw(text), "\n".join(self.lines[-30:])

    def kill_when(self, text: str, delay: float = 0.0) -> None:
        """SIGKILL the main process ``delay`` s after ``text`` was logged (still running then)."""
        self.wait_for(text)
        time.sleep(delay)
        assert self.proc.poll() is None, f"the run finished before it could be killed after {text}"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.finish()

    def finish(self, timeout: float = 600) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def test_sigkill_at_every_stage_then_resume_equals_an_uninterrupted_run(
    spec_file: Path, uninterrupted: dict[str, object], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    log: list[str] = []

    # 1. during pool training: the first member is saved, the second is training
    run = Run(spec_file, run_dir)
    run.kill_when("[model_a-s0] trained")
    log += run.lines
    first_member = checksums(run_dir, "members/model_a-s0/*.pt")
    assert first_member and not (run_dir / "members/model_a-s1/dense.pt").exists()

    # 2. during a member study: trial 0 is done, trial 1 is running
    run = Run(spec_file, run_dir)
    run.kill_when("[model_a-s0] trial 0 (", delay=0.1)  # a later trial has started, not finished
    log += run.lines
    assert run.saw("[model_a-s0] dense model reused") and run.saw("[model_a-s1] trained")
    assert checksums(run_dir, "members/model_a-s0/*.pt") == first_member
    trials = trials_of(run_dir)
    running = [t for ts in trials.values() for t in ts if t.state == TrialState.RUNNING]
    assert len(running) == 1  # what the SIGKILL left; the next run marks it FAIL and redoes it
    # how many trials finished before the kill depends on the machine's speed
    (first_study,) = [ts for ts in trials.values() if running[0] in ts]
    done = sum(t.state == TrialState.COMPLETE for t in first_study)
    assert 1 <= done <= 2
    trial_files = checksums(run_dir, "members/*/trials/*.pt")
    pool = checksums(run_dir, "members/*/dense.pt")

    # 3. during prediction: the first member's chosen trial is being measured
    run = Run(spec_file, run_dir)
    run.kill_when("[model_a-s0] chosen trial")
    log += run.lines
    assert run.saw("was cut short: marked FAIL")
    assert run.saw(f"resuming: {done} trial(s) done, {3 - done} to run")
    assert not run.saw("] trained ")  # no member trained again
    after_search = checksums(run_dir, "members/*/trials/*.pt")
    assert {k: after_search[k] for k in trial_files} == trial_files  # finished trials untouched
    assert checksums(run_dir, "members/*/dense.pt") == pool

    # 4. during selection/report: the predictions are whole and recorded
    run = Run(spec_file, run_dir)
    wait_for(
        lambda: "evaluated" in (run_dir / "run.json").read_text() or run.proc.poll() is not None
    )
    if run.proc.poll() is None:
        os.kill(run.proc.pid, signal.SIGKILL)
    run.finish()
    log += run.lines
    assert not run.saw("] trial ")  # no trial ran again
    predictions = checksums(run_dir, "predictions/*.npz")

    # the same command finishes the run, reusing everything
    run = Run(spec_file, run_dir)
    assert run.finish() == 0, run.text
    assert run.saw("members.csv and predictions reused")
    assert checksums(run_dir, "predictions/*.npz") == predictions
    assert checksums(run_dir, "members/*/dense.pt") == pool
    log += run.lines
    assert sum("] trained " in line for line in log) == 2  # each member trained exactly once
    assert outcome(run_dir) == uninterrupted


def test_ctrl_c_and_a_killed_parent_with_two_workers(
    spec_file: Path, uninterrupted: dict[str, object], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"

    run = Run(spec_file, run_dir, "--workers", "2")
    # a second `ensprune run` on the same directory meanwhile: refused, nothing written
    run.wait_for("run directory: ")
    second = run_cli("run", str(spec_file), "--run-dir", str(run_dir), "--quiet")
    assert second.returncode == 2 and "is in use by another run" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1

    # Ctrl-C as a terminal sends it: SIGINT to the whole process group
    run.wait_for("] trial 0 (")
    workers = children_of(run.proc.pid)
    sent = time.monotonic()
    os.killpg(run.proc.pid, signal.SIGINT)
    assert run.finish(timeout=60) == 130
    assert time.monotonic() - sent < 30
    assert "Traceback" not in run.text, run.text
    last = run.lines[-1]
    assert last.startswith("ensprune run: interrupted: kept 2 trained member(s)")
    assert f"resume with `ensprune run {spec_file} --run-dir {run_dir.resolve()}`" in last
    assert not [
        t for ts in trials_of(run_dir).values() for t in ts if t.state == TrialState.RUNNING
    ]
    wait_for(lambda: not any(alive(p) for p in workers), timeout=20, what="workers to end")

    # SIGKILL of the parent alone: its workers end with it instead of living on as orphans
    run = Run(spec_file, run_dir, "--workers", "2")
    run.wait_for("] trial ")
    workers = children_of(run.proc.pid)
    assert workers
    os.kill(run.proc.pid, signal.SIGKILL)
    run.finish()
    wait_for(lambda: not any(alive(p) for p in workers), timeout=20, what="orphaned workers to end")

    # the same command resumes: the trials, chosen trials and team of the single-process,
    # uninterrupted run (probabilities differ in the last digits: one torch thread per worker)
    run = Run(spec_file, run_dir, "--workers", "2")
    assert run.finish() == 0, run.text
    resumed = outcome(run_dir)
    assert {k: v for k, v in resumed.items() if k != "val"} == {
        k: v for k, v in uninterrupted.items() if k != "val"
    }
    np.testing.assert_allclose(resumed["val"], uninterrupted["val"], atol=0.05)


def test_a_moved_and_damaged_run_directory_is_rebuilt_from_what_remains(
    spec_file: Path, uninterrupted: dict[str, object], tmp_path: Path
) -> None:
    first = tmp_path / "first"
    assert run_cli("run", str(spec_file), "--run-dir", str(first), "--quiet").returncode == 0
    moved = tmp_path / "moved"
    shutil.move(first, moved)
    trials = pd.read_csv(moved / "trials.csv")
    chosen_checkpoint = trials[trials.chosen & (trials.member == "model_a-s0")].checkpoint.iloc[0]
    (moved / chosen_checkpoint).write_bytes(b"truncated")  # a corrupt trial checkpoint
    (moved / "predictions" / "val.npz").write_bytes(b"PK\x03\x04")  # corrupt predictions
    shutil.rmtree(moved / "members" / "model_a-s1")  # a deleted member directory
    (moved / "run.json").write_text("[]")

    done = run_cli("run", str(spec_file), "--run-dir", str(moved))
    assert done.returncode == 0, done.stderr
    err = done.stderr
    print(err)  # shown when an assertion below fails
    assert "run.json is corrupt: rebuilding it" in err
    assert f"{moved / chosen_checkpoint} is corrupt: rebuilding it" in err
    assert "[model_a-s1] trained" in err and "[model_a-s0] dense model reused" in err
    assert "is missing: rebuilding it" in err  # model_a-s1's trial checkpoints
    assert "val.npz" in err and "recomputing" in err
    assert err.count("3 trial(s) done, 0 to run") == 2  # both studies resumed, no new trial
    assert not re.search(r"\] trial \d+ \(", err)
    assert "the dense member changed" not in err  # retraining reproduced the member exactly
    meta = json.loads((moved / "run.json").read_text())
    assert meta["storage_relative"] == "sqlite:///study.db"
    assert not first.exists()  # the old location was not recreated
    assert outcome(moved) == uninterrupted
