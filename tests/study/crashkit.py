"""Helpers for the crash tests: a tiny spec, real `ensprune run` processes, kills, checksums."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from . import _specs
from ._specs import spec_toml

TINY_SPEC = spec_toml(
    study={"name": "crash", "seed": 5},
    pool={"epochs": 3, "batch_size": 64},
    # trials of ~0.5 s: a kill timed after one trial's line lands inside the next, on an idle
    # machine too (with 1 fine-tuning epoch a digits trial took 0.1 s, shorter than the delay)
    search={"finetune_epochs": 8},
    selection={"beta": 0.1},
)


def write_spec(folder: Path, text: str = TINY_SPEC) -> Path:
    return _specs.write_spec(folder, text)


def start_run(spec: Path, run_dir: Path, *extra: str) -> subprocess.Popen[str]:
    """`ensprune run SPEC --run-dir DIR` as a user types it, in its own process group."""
    return subprocess.Popen(
        [sys.executable, "-m", "ensprune", "run", str(spec), "--run-dir", str(run_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
        # a test started in the background inherits SIGINT ignored; a user's terminal does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ensprune", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def children_of(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def checksums(run_dir: Path, pattern: str) -> dict[str, str]:
    return {
        p.relative_to(run_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.glob(pattern))
    }


def trials_of(run_dir: Path) -> dict[str, list[optuna.trial.FrozenTrial]]:
    storage = f"sqlite:///{run_dir / 'study.db'}"
    return {
        s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).get_trials()
        for s in optuna.get_all_study_summaries(storage)
    }
