"""``--verbose`` and ``--log-file``, accepted by every subcommand."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from ensprune.cli import SUBCOMMANDS, build_parser, main
from ensprune.ensemble import make_pool


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


@pytest.fixture(scope="module")
def preds_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pool(6, 200, 4, seed=1).save(tmp_path_factory.mktemp("log") / "val.npz")


GA = ["--selector", "ga", "--population", "8", "--generations", "2", "--seed", "0"]


def test_every_subcommand_takes_them() -> None:
    parser = build_parser()
    for command in SUBCOMMANDS:
        help_text = parser._subparsers._group_actions[0].choices[command].format_help()  # type: ignore[union-attr]
        assert "--verbose" in help_text and "--log-file" in help_text, command


def test_log_file_gets_the_progress_lines_with_timestamps(
    preds_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "select.log"
    log.write_text("")  # appended to, never truncated
    assert main(["select", str(preds_file), *GA, "--log-file", str(log)]) == 0
    assert "[ga] gen 1" in capsys.readouterr().err
    lines = log.read_text().splitlines()
    assert any("INFO ensprune" in line and "[ga] gen 1" in line for line in lines)
    assert all(line[:4].isdigit() for line in lines)  # every line starts with its timestamp


def test_verbose_shows_debug_messages(preds_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", str(preds_file), *GA, "--verbose"]) == 0
    assert logging.getLogger("ensprune").isEnabledFor(logging.DEBUG)
    assert "[ga] gen 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "needle"), [("dir", "is a directory"), ("nofolder", "does not exist")]
)
def test_a_bad_log_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, needle: str
) -> None:
    path = tmp_path if target == "dir" else tmp_path / "missing" / "x.log"
    assert main(["list", "metrics", "--log-file", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "--log-file" in err[0]
