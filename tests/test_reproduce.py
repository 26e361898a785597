"""benchmarks/reproduce.py: the regression verdict, and the specs its quick runs use."""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ensprune.cli import build_parser
from ensprune.study.spec import StudySpec

REPO = Path(__file__).resolve().parents[1]


def _reproduce():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("reproduce", REPO / "benchmarks" / "reproduce.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module
    spec.loader.exec_module(module)
    return module


reproduce = _reproduce()


@pytest.mark.parametrize(
    ("value", "better", "verdict"),
    [
        (1.6, "lower", "ok"),  # worse, within the spread
        (1.8, "lower", "REGRESSION"),  # worse beyond it
        (1.2, "lower", "better"),
        (1.2, "higher", "REGRESSION"),
        (1.8, "higher", "better"),
    ],
)
def test_a_figure_worse_than_the_record_beyond_its_spread_is_a_regression(
    value: float, better: str, verdict: str
) -> None:
    assert reproduce.compare(value, {"value": 1.5, "spread": 0.2, "better": better}) == verdict


def test_every_headline_has_a_full_command_and_records_match_their_quick_command() -> None:
    names = [h.name for h in reproduce.HEADLINES]
    assert len(names) == len(set(names))
    for headline in reproduce.HEADLINES:
        assert headline.full and "/work/" not in headline.full  # copyable: relative paths
        record = reproduce.RECORDS / f"{headline.name}.json"
        if record.is_file():
            assert json.loads(record.read_text())["quick"] == headline.quick


def test_fashion_team_spec_and_its_quick_copy_are_valid(tmp_path: Path) -> None:
    spec = StudySpec.from_toml(REPO / "studies" / "fashion_team.toml")
    assert spec.data.dataset == "fashion_mnist" and len(spec.pool.architectures) == 4
    reproduce.reduced_spec(REPO / "studies" / "fashion_team.toml", tmp_path / "quick.toml")
    quick = StudySpec.from_toml(tmp_path / "quick.toml")
    assert quick.data.max_train == 3000 and quick.pool.seeds == (0, 1)
    assert quick.search.method_params == spec.search.method_params
    assert quick.selection.max_size == 4


def test_an_unknown_headline_is_refused_with_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/reproduce.py", "--quick", "--only", "nope"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "unknown headline(s) nope" in proc.stderr


def _commands(line: str) -> list[list[str]]:
    """The commands of a shell line: split at ``&&``, without ``nice``, ``VAR=value`` prefixes
    and output redirections."""
    commands: list[list[str]] = [[]]
    for word in shlex.split(line.format(tmp="/tmp/scratch")):
        if word == "&&":
            commands.append([])
        elif not word.startswith(">") and not (
            not commands[-1] and ("=" in word or word == "nice")
        ):
            commands[-1].append(word)
    return commands


def _script_options(script: Path) -> set[str]:
    """Every ``--option`` a benchmark script's argparse parser declares (read, not run), with
    those of the benchmarks' shared helper modules it imports."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    options: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            options |= {
                a.value
                for a in node.args
                if isinstance(a, ast.Constant) and str(a.value)[:2] == "--"
            }
        names = (
            [a.name for a in node.names] if isinstance(node, ast.Import | ast.ImportFrom) else []
        )
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        for name in names:
            helper = script.parent / f"{name}.py"
            if name.startswith("_") and helper.is_file() and helper != script:
                options |= _script_options(helper)
    return options


_cli_parser = functools.cache(build_parser)


def _check_command(words: list[str]) -> None:
    if words[0] == "rm":  # a quick check may clear its own benchmark cache, nothing else
        assert words[1] == "-rf" and all(w.startswith("benchmarks/_cache/") for w in words[2:])
        return
    if words[0] == "ensprune":
        _cli_parser().parse_args(words[1:])  # argparse exits 2 on an unknown option or value
        return
    assert words[0] == "python" and words[1].startswith("benchmarks/"), words
    script = REPO / words[1]
    assert script.is_file(), f"{words[1]} does not exist"
    declared = _script_options(script)
    used = {w.split("=", 1)[0] for w in words[2:] if w.startswith("--")}
    assert used <= declared, f"{words[1]} has no option(s) {sorted(used - declared)}"


@pytest.mark.parametrize("headline", reproduce.HEADLINES, ids=lambda h: h.name)
def test_every_headline_has_a_quick_command_naming_existing_scripts_and_options(
    headline: Any,
) -> None:
    assert headline.quick is not None and headline.extract is not None and headline.metric
    assert headline.better in ("lower", "higher")
    for line in (headline.full, headline.quick):
        for words in _commands(line):
            _check_command(words)


def test_the_command_check_catches_a_misspelt_option_and_a_missing_script() -> None:
    with pytest.raises(AssertionError, match="no option"):
        _check_command(_commands("python benchmarks/bench_dropnet.py --max-trian-a 10")[0])
    with pytest.raises(AssertionError, match="does not exist"):
        _check_command(["python", "benchmarks/bench_nothing.py"])
    with pytest.raises(SystemExit):
        _check_command(["ensprune", "prune", "--no-such-option"])


def test_figures_are_read_from_the_json_lines_of_a_benchmark_output() -> None:
    stdout = "\n".join(
        [
            "model_a seed 0: dense test 0.95",
            '  min_global round 1: {"units_remaining": 0.8}',  # a progress line, not a row
            json.dumps(
                {"part": "model_a", "points": [{"test_accuracy": 0.95}, {"test_accuracy": 0.93}]}
            ),
            "| table | row |",
        ]
    )
    assert reproduce.dropnet_points_lost("model_a")(stdout, Path(".")) == pytest.approx(2.0)
    with pytest.raises(ValueError, match=re.escape("no JSON line with {'part': 'model_b'}")):
        reproduce.dropnet_points_lost("model_b")(stdout, Path("."))


def test_record_missing_records_only_headlines_without_a_record_of_their_quick_command(
    tmp_path: Path,
) -> None:
    headline = next(h for h in reproduce.HEADLINES if h.quick)
    path = tmp_path / f"{headline.name}.json"
    assert not reproduce._has_record(path, headline)  # no file
    path.write_text(json.dumps({"quick": headline.quick, "value": 1.0, "spread": 0.1}))
    assert reproduce._has_record(path, headline)
    path.write_text(json.dumps({"quick": "an older quick command", "value": 1.0}))
    assert not reproduce._has_record(path, headline)  # recorded for another command
    path.write_text("{not json")
    assert not reproduce._has_record(path, headline)
