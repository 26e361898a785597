"""``ensprune spec``: the generated spec reference and the annotated example spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from ensprune.cli import main
from ensprune.study import StudySpec
from ensprune.study.spec_reference import KEY_DOCS, render_example, render_reference, spec_keys

DOCS = Path(__file__).resolve().parents[2] / "docs" / "spec.md"


def test_every_spec_key_is_documented_and_no_entry_is_stale() -> None:
    keys = {(section, f.name) for section, f in spec_keys()}
    assert keys - set(KEY_DOCS) == set(), "document these keys in spec_reference.KEY_DOCS"
    assert set(KEY_DOCS) - keys == set(), "these KEY_DOCS entries name no spec key"
    assert ("pool", "architectures") in keys and ("study", "pool") not in keys


def test_docs_spec_md_is_the_generated_reference() -> None:
    assert DOCS.read_text() == render_reference(), (
        "docs/spec.md is stale; regenerate it with `ensprune spec --reference > docs/spec.md`"
    )


def test_the_example_loads_and_holds_every_default(tmp_path: Path) -> None:
    path = tmp_path / "example.toml"
    path.write_text(render_example())
    assert StudySpec.from_toml(path) == StudySpec().canonical()
    text = render_example()
    for section, f in spec_keys():
        assert f"[{section}]" in text
        assert f.name in text, f"[{section}] {f.name} missing from the example"


def test_the_cli_prints_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec", "--example"]) == 0
    assert capsys.readouterr().out == render_example()
    assert main(["spec", "--reference"]) == 0
    assert capsys.readouterr().out == render_reference()


def test_the_cli_needs_one_of_the_two(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["spec"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--example" in err[0]
