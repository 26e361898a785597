"""Where ``ensprune select`` takes its settings from: a run's ``[selection]`` or a spec's defaults.

``ensprune select RUN_DIR`` reads the run's own spec (``RUN_DIR/spec.toml``) so that it repeats
the run's team without the settings being typed again; ``ensprune select PREDS.npz`` starts from
the defaults a spec has. Either way each flag given overrides one setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ensprune import rundir as rd
from ensprune.errors import RunDirError, SpecError
from ensprune.study.spec import SelectionSpec, StudySpec

#: flags that set a shared [selection] key rather than one of the selector's own options
_SHARED_FLAGS = {"metric": "metric", "max_size": "max_size", "voting": "voting"}
#: the keys of a spec's [study] section (top-level keys of StudySpec.to_dict())
_STUDY_KEYS = ("name", "seed", "storage", "run_dir", "device", "workers", "callbacks")


@dataclass(frozen=True)
class SelectSource:
    """What ``ensprune select`` runs on and with which settings (before the flags).

    Attributes:
        preds: the prediction (team mode) or menu (joint mode) file to select from.
        selection: the ``[selection]`` settings: the run's own, or a spec's defaults.
        seed: the run's seed (the pipeline seeds its selector with it), else 0.
        run: the run directory, when one was given (to compare with its team).
    """

    preds: Path
    selection: SelectionSpec
    seed: int
    run: Path | None = None


def resolve_source(path: str | Path, mode: str | None) -> SelectSource:
    """The prediction file and base settings for ``ensprune select PATH``.

    Raises:
        RunDirError: ``path`` is a directory that is not a run, or lacks what selection reads.
        SpecError: the run's ``spec.toml`` is no longer a valid spec.
    """
    from ensprune.cli._checks import npz_file

    path = Path(path)
    if not path.is_dir():
        npz_file(path, "PREDS.npz")  # an .npy, a PNG or a missing file fails here, in one line
        base = SelectionSpec(mode="joint" if mode == "joint" else "two_stage")  # a spec's defaults
        return SelectSource(path, base, seed=0)
    if not (path / rd.RUN_JSON).is_file():
        raise RunDirError(
            f"{path} is a directory but not an ensprune run directory (it has no {rd.RUN_JSON}); "
            "give a prediction file (PREDS.npz) or a directory that `ensprune run` created"
        )
    run = rd.RunDir(path)
    spec_path = run.path / rd.SPEC_TOML
    if not spec_path.is_file():
        raise RunDirError(
            f"{spec_path} is missing, so the run's [selection] settings are unknown; select "
            f"from {run.path / rd.PREDICTIONS['val']} with the settings as flags"
        )
    spec = run_spec(spec_path)
    selection = spec.selection
    if mode is not None and (mode == "joint") != (selection.mode == "joint"):
        # another mode than the run's: its options belong to the other kind of selector
        selection = dataclasses.replace(
            selection, mode="joint" if mode == "joint" else "two_stage", options={}
        )
    relative = rd.MENUS["val"] if selection.mode == "joint" else rd.PREDICTIONS["val"]
    preds = run.path / relative
    if not preds.is_file():
        raise RunDirError(
            f"{preds} is missing: the '{rd.STAGE_OF[relative]}' stage writes it; finish the run with "
            f"{rd.resume_hint(run.path, run.info)}, then select again"
        )
    return SelectSource(preds, selection, seed=spec.seed, run=run.path)


def run_spec(path: Path) -> StudySpec:
    """The spec a run was made from: ``spec.toml`` as the user wrote it (``ensprune run``), or
    the JSON rendering that ``run_study`` writes when it is given a :class:`StudySpec` object.

    Raises:
        SpecError: neither form parses into a valid spec.
    """
    try:
        return StudySpec.from_toml(path)
    except SpecError as toml_error:
        try:
            rendered = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise toml_error from None
        if not isinstance(rendered, dict):
            raise toml_error from None
    # StudySpec.to_dict(): the [study] keys at the top level, None for keys left out
    study = {key: rendered.pop(key) for key in _STUDY_KEYS if key in rendered}
    return StudySpec.from_dict(_without_none({"study": study, **rendered}), source=str(path))


def _without_none(section: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _without_none(value) if isinstance(value, dict) else value
        for key, value in section.items()
        if value is not None
    }


def team_settings(
    args: argparse.Namespace, source: SelectSource, options: dict[str, str]
) -> tuple[str, dict[str, Any]]:
    """The team selector's name and keyword arguments: the source's settings, then the flags.

    ``options`` maps CLI flags to selector settings. A ``--selector`` other than the run's drops
    the run's own selector options (another selector's knobs) but keeps the shared settings.

    Raises:
        SpecError: a flag the selector does not take, or a bad value.
    """
    from ensprune.ensemble.selection import SELECTORS
    from ensprune.study.build import SHARED_SELECTOR_SETTINGS, selector_kwargs

    base = source.selection
    selector = SELECTORS.canonical(args.selector or base.selector)
    knobs = SELECTORS.knobs(selector) or ()
    same = selector == SELECTORS.canonical(base.selector)
    shared: dict[str, Any] = {
        "metrics": base.metric,
        "max_size": base.max_size,
        # the run's own voting for its own selector; otherwise a spec's default for this one
        "voting": base.voting if source.run and same else _default_voting(selector, base.voting),
        "seed": source.seed,
    }
    own = dict(base.options) if same else {}
    for flag, setting in options.items():
        value = vars(args).get(flag)
        if value is None:
            continue
        if setting not in knobs:
            raise SpecError(f"--{flag.replace('_', '-')} does not apply to selector {selector!r}")
        target = shared if setting in SHARED_SELECTOR_SETTINGS else own
        target[setting] = value
    kwargs = selector_kwargs(selector, {**shared, **own}, optional=SHARED_SELECTOR_SETTINGS)
    kwargs["progress"] = not args.quiet
    return selector, kwargs


def _default_voting(selector: str, spec_default: str) -> str:
    """A spec's default voting, unless the selector builds another kind of ensemble (caruana's
    weighted one), whose own default then holds."""
    from ensprune.ensemble.selection import SELECTORS
    from ensprune.ensemble.voting import VOTING

    cls = SELECTORS.get(selector)
    fields = (
        {f.name: f.default for f in dataclasses.fields(cls)}
        if dataclasses.is_dataclass(cls)
        else {}
    )
    own = fields.get("voting")
    if isinstance(own, str) and VOTING.get(own).weighted:
        return own
    return spec_default


def joint_selection(
    args: argparse.Namespace,
    source: SelectSource,
    options: dict[str, str],
    not_joint: tuple[str, ...],
) -> tuple[SelectionSpec, int]:
    """The ``[selection]`` settings (mode joint) and seed: the source's, then the flags.

    ``--selector`` names the joint search; ``not_joint`` are the team-selector flags that
    have no meaning here.

    Raises:
        SpecError: a flag the joint search does not take.
    """
    from ensprune.ensemble.selection.joint import JOINT_SEARCHES, JointSelector

    fields = {f.name for f in dataclasses.fields(JointSelector)}
    base = source.selection
    shared: dict[str, Any] = {
        "metric": base.metric,
        "max_size": base.max_size,
        "voting": base.voting,
    }
    own = dict(base.options)
    seed = source.seed
    if args.selector is not None:
        own["search"] = JOINT_SEARCHES.canonical(args.selector)
    for flag, setting in options.items():
        value = vars(args).get(flag)
        if value is None:
            continue
        if flag in not_joint or (setting not in fields and flag != "budget"):
            raise SpecError(f"--{flag.replace('_', '-')} does not apply to --mode joint")
        if flag == "seed":
            seed = value
        elif flag in _SHARED_FLAGS:
            shared[_SHARED_FLAGS[flag]] = value
        else:
            own[setting] = value
    return dataclasses.replace(base, mode="joint", options=own, **shared), seed
