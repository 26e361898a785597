"""Progress: bars only on a TTY, plain log lines when piped, nothing when quiet, TQDM_DISABLE."""

from __future__ import annotations

import io
import logging

import pytest

from ensprune.progress import Progress, format_duration, track, use_bar


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_piped_output_logs_periodic_lines_without_carriage_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, pipe = FakeClock(), io.StringIO()
    caplog.set_level(logging.INFO, logger="ensprune.progress")
    with Progress(10, desc="train m0", unit="epoch", interval=5, stream=pipe, clock=clock) as bar:
        for _ in range(10):
            clock.now += 2.0
            bar.update(1, val_acc="0.9")
    assert pipe.getvalue() == ""  # nothing drawn on the pipe
    lines = [r.getMessage() for r in caplog.records]
    # a line every 5 s (at 6, 12, 18 s) and the final one
    assert len(lines) == 4
    assert lines[0] == "train m0: 3/10 epoch (30%) 6s, ~14s left val_acc=0.9"
    assert lines[-1].startswith("train m0: 10/10 epoch (100%) 20s, ~0s left")
    assert all("\r" not in line for line in lines)


def test_quiet_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    with Progress(3, desc="x", enabled=False, interval=0, stream=Tty(), clock=clock) as bar:
        for _ in range(3):
            clock.now += 1
            bar.update()
    assert caplog.records == []


def test_bar_on_a_tty_and_tqdm_disable_honoured(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    tty = Tty()
    assert use_bar(tty) and not use_bar(io.StringIO())
    caplog.set_level(logging.INFO, logger="ensprune.progress")
    with Progress(4, desc="bar", stream=tty) as bar:
        for _ in range(4):
            bar.update()
    assert "bar" in tty.getvalue() and "\r" in tty.getvalue()
    assert caplog.records == []  # the bar replaces the log lines
    for value, bars in [("1", False), ("True", False), ("0", True), ("", True)]:
        monkeypatch.setenv("TQDM_DISABLE", value)
        assert use_bar(tty) is bars, value
    monkeypatch.setenv("TQDM_DISABLE", "1")
    caplog.set_level(logging.DEBUG, logger="ensprune.progress")
    tty = Tty()
    with Progress(2, desc="no bar", stream=tty) as bar:
        bar.update(2)
    assert tty.getvalue() == ""
    assert caplog.records[-1].getMessage().startswith("no bar: 2/2")


def test_unknown_total_and_bytes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ensprune.progress")
    clock = FakeClock()
    with Progress(None, desc="mnist.gz", unit="B", stream=io.StringIO(), clock=clock) as bar:
        clock.now = 3
        bar.update(3 * 1024 * 1024)
    assert caplog.records[-1].getMessage() == "mnist.gz: 3.0 MiB 3s"
    assert caplog.records[-1].levelno == logging.DEBUG  # shorter than one interval: no INFO noise


def test_track_counts_items(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ensprune.progress")
    assert list(track(range(5), desc="members", unit="member")) == [0, 1, 2, 3, 4]
    assert caplog.records[-1].getMessage().startswith("members: 5/5 member (100%)")


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0s"), (42, "42s"), (185, "3m05s"), (3720, "1h02m"), (-1, "?")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
