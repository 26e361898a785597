"""The README's Python API snippets run as they are: every ```python block right after a
``<!-- readme-test -->`` line, in order, in one namespace, in an empty directory."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARKED = re.compile(r"^<!-- readme-test -->\n```python\n(.*?)^```$", re.S | re.M)


def marked_blocks() -> list[str]:
    return MARKED.findall(README.read_text(encoding="utf-8"))


@pytest.fixture
def _restore_logging() -> Iterator[None]:
    ours, root = logging.getLogger("ensprune"), logging.getLogger()
    saved = ours.level, root.level, root.handlers[:]
    yield
    ours.setLevel(saved[0])
    root.setLevel(saved[1])
    root.handlers = saved[2]


def test_the_marked_blocks_cover_every_stage() -> None:
    text = "\n".join(marked_blocks())
    for call in (
        "load_dataset(",
        "train_model(",
        "make_method(",
        "PruningContext(",
        "StudySpec.from_dict(",
        "run_study(",
        "HQSelector(",
        "SELECTORS.get(",
        "focal_diversity(",
        "JointSelector(",
        "members_frame(",
        "trials_frame(",
        "comparison_frame(",
        "PrunedEnsembleClassifier(",
    ):
        assert call in text, call


@pytest.mark.slow
@pytest.mark.usefixtures("_restore_logging")
def test_readme_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the snippets write runs/api here
    namespace: dict[str, object] = {"__name__": "readme"}
    for number, block in enumerate(marked_blocks(), 1):
        exec(compile(block, f"README.md block {number}", "exec"), namespace)
    # what the snippets claim, checked on what they made
    assert (tmp_path / "runs" / "api" / "report" / "report.html").is_file()
    team = namespace["team"]
    assert 2 <= len(team.members) <= 3  # type: ignore[attr-defined]
    choice = namespace["choice"]
    assert choice.total_cost <= namespace["budget"]  # type: ignore[attr-defined, operator]
    assert 0.0 < namespace["facts"].sparsity < 1.0  # type: ignore[attr-defined]
    assert set(namespace["trials"]["member"]) == {"model_a-s0", "model_a-s1", "model_a-s2"}  # type: ignore[index]
