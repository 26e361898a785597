"""Small digits specs for the study tests (one base, each test changing what it needs) and the
check that an error is one line without a traceback.

Imported as ``from ._specs import ...`` (pytest's importlib mode keeps relative imports).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

# Two model_a members on digits, a few trials each: seconds per run on 2 cores.
BASE: dict[str, dict[str, Any]] = {
    "study": {"name": "tiny", "seed": 0},
    "data": {"dataset": "digits", "val_fraction": 0.2, "test_fraction": 0.25},
    "pool": {"architectures": ["model_a"], "seeds": [0, 1], "epochs": 2, "lr": 0.003},
    "search": {
        "methods": ["magnitude", "random"],
        "sparsity": [0.3, 0.9],
        "trials": 3,
        "finetune_epochs": 1,
    },
    "selection": {"selector": "hq", "metric": "gd", "max_size": 2},
}


def spec_dict(**sections: dict[str, Any]) -> dict[str, Any]:
    """:data:`BASE` with each given section updated (a key set to None is removed)."""
    raw = copy.deepcopy(BASE)
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
        raw[section] = {k: v for k, v in raw[section].items() if v is not None}
    return raw


def spec_toml(**sections: dict[str, Any]) -> str:
    """:func:`spec_dict` as the TOML a user writes (flat sections of strings, numbers, lists)."""
    lines = []
    for section, values in spec_dict(**sections).items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


def write_spec(folder: Path, text: str | None = None, **sections: dict[str, Any]) -> Path:
    """``folder/spec.toml`` holding ``text``, else :func:`spec_toml` of ``sections``."""
    path = folder / "spec.toml"
    path.write_text(text if text is not None else spec_toml(**sections))
    return path


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The captured stderr, asserted to be one line and no traceback."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err
