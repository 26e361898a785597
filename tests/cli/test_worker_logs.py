"""``ensprune run --workers 2 --log-file``: the worker processes' per-trial lines reach the file."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ensprune.cli import main

SPEC = """
[study]
name = "wlogs"
seed = 3

[data]
dataset = "digits"
val_fraction = 0.2
test_fraction = 0.25
max_train = 400

[pool]
architectures = ["model_a"]
seeds = [0, 1]
epochs = 1

[search]
methods = ["magnitude"]
sparsity = [0.3, 0.8]
trials = 2
finetune_epochs = 1

[selection]
selector = "hq"
metric = "gd"
max_size = 2
"""
MEMBERS = ("model_a-s0", "model_a-s1")
TRIAL_LINE = re.compile(r"^\S+ \S+ INFO ensprune\.study: \[(model_a-s[01])\] trial (\d) \(\d/2")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    ours = logging.getLogger("ensprune")
    handlers, level = list(ours.handlers), ours.level
    yield
    for handler in ours.handlers[:]:
        if handler not in handlers:
            handler.close()
            ours.removeHandler(handler)
    ours.setLevel(level)
    from ensprune.cli._logging import set_options

    set_options()


def trial_lines(log: Path) -> set[tuple[str, int]]:
    lines = log.read_text().splitlines()
    assert all(line[:4].isdigit() for line in lines), lines  # whole lines, each with its timestamp
    return {(m[1], int(m[2])) for line in lines if (m := TRIAL_LINE.match(line))}


def run(tmp_path: Path, *extra: str) -> Path:
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    log = tmp_path / "run.log"
    args = ["run", str(spec), "--run-dir", str(tmp_path / "run"), "--workers", "2"]
    assert main([*args, "--log-file", str(log), *extra]) == 0
    return log


@pytest.mark.slow
def test_both_workers_trial_lines_reach_the_log_file_not_a_quiet_console(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = run(tmp_path, "--quiet")
    assert trial_lines(log) == {(m, n) for m in MEMBERS for n in (0, 1)}
    assert "trial" not in capsys.readouterr().err  # --quiet: the console shows warnings only


@pytest.mark.slow
def test_a_dask_clusters_trial_lines_reach_the_log_file(tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        processes=True, host="127.0.0.1", n_workers=2, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        log = run(tmp_path, "--quiet", "--scheduler", cluster.scheduler_address)
    assert trial_lines(log) == {(m, n) for m in MEMBERS for n in (0, 1)}
