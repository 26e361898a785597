"""``[search] include`` / ``exclude``: every trial prunes only the selected layers; a pattern that
matches no layer of an architecture is refused before the pool is trained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ensprune.cli import main
from ensprune.models import load_model

SPEC = """
[study]
name = "layers"
seed = 1

[data]
dataset = "digits"
max_train = 300

[pool]
architectures = ["model_a"]
seeds = [0, 1]
epochs = 2

[search]
methods = ["magnitude"]
sparsity = [0.5, 0.5]
trials = 1
finetune_epochs = 1
{patterns}

[selection]
max_size = 2
"""


def _spec(tmp_path: Path, patterns: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(patterns=patterns))
    return path


@pytest.mark.parametrize(
    ("patterns", "fragment"),
    [
        (
            'include = ["Fc*"]',
            "[pool] architecture 'model_a': [search] include pattern 'Fc*' matches no prunable "
            "layer of this SequentialNet; fix the pattern",
        ),
        (
            'exclude = ["1", "head"]',
            "[search] exclude pattern 'head' matches no prunable layer",
        ),
        (
            'exclude = ["*"]',
            "leave no layer of this SequentialNet to prune; narrow [search] exclude",
        ),
    ],
)
def test_a_pattern_matching_no_layer_fails_before_training(
    patterns: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    argv = ["run", str(_spec(tmp_path, patterns)), "--run-dir", str(run_dir), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert fragment in err
    assert "prunable layers: 1, 3, 5" in err  # model_a: Flatten, Linear, ReLU, Linear, ReLU, Linear
    assert not (run_dir / "members").exists()  # nothing was trained


@pytest.mark.slow
def test_trials_prune_only_the_included_layers(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    spec = _spec(tmp_path, 'include = ["1", "3.weight"]')
    assert main(["run", str(spec), "--run-dir", str(run_dir), "--quiet"]) == 0
    trials = sorted(run_dir.rglob("trial-*.pt"))
    assert len(trials) == 2  # one trial per member
    for path in trials:
        pruned, _ = load_model(path)
        state = pruned.state_dict()
        assert bool(state["5.weight"].ne(0).all())  # the head is not included
        kept = [state[n].ne(0) for n in ("1.weight", "3.weight")]
        share = sum(int(k.sum()) for k in kept) / sum(k.numel() for k in kept)
        assert share == pytest.approx(0.5, abs=0.01)
        assert torch.isfinite(state["1.weight"]).all()


def test_patterns_change_the_search_only_when_set(tmp_path: Path) -> None:
    from ensprune.study import StudySpec
    from ensprune.study.pipeline import _search_fingerprint

    plain = StudySpec.from_toml(_spec(tmp_path, ""))
    narrowed = StudySpec.from_toml(_spec(tmp_path, 'exclude = ["5"]'))
    # run directories from before the keys keep their search; a narrowed search is a new one
    assert "exclude" not in _search_fingerprint(plain)
    assert _search_fingerprint(narrowed) != _search_fingerprint(plain)
    assert narrowed.search.exclude == ("5",)
