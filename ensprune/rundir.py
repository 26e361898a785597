"""The run directory's format, in one place: file names, format version, writing and reading.

A run directory holds everything one study run produced::

    run.json                 format version, run id, storage URL, fingerprints, finished stages
    .lock                    held (flock) by the one run writing the directory
    spec.toml                the spec the run was started with
    members/<member>/        dense.pt, early.pt, pruned.pt, trials[-<search>]/trial-NNNN.pt
    trials.csv               every Optuna trial of the current search (search stage)
    members.csv              dense vs chosen pruned member, measured (evaluate stage)
    predictions/*.npz        member probabilities on val/test, pruned and dense (evaluate stage)
    members/<member>/menu[-<search>]/  each operating point's costs and predictions, cached (menu stage)
    menus/val.npz, menus/test.npz, menu.csv  every member's operating points, as a Menu (menu stage)
    menu_candidates.csv  the costs of every measured checkpoint, on the menu or not (menu stage)
    selection.json, teams.csv  the chosen team and the selector's table (select stage)
    report/                  the report (report stage)

The study pipeline writes through the functions here (every write is atomic: a temporary file
renamed into place, so an interrupted run never leaves half a file), and the report reads through
:class:`RunDir`, which parses each file at most once however many frames need it.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ensprune.errors import RunDirError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from torch import nn

    from ensprune.ensemble.menu import Menu
    from ensprune.ensemble.predictions import PredictionSet

FORMAT = "ensprune-run/1"

RUN_JSON = "run.json"
LOCK_FILE = ".lock"
SPEC_TOML = "spec.toml"
MEMBERS_DIR = "members"
MEMBER_CHECKPOINTS = {"dense": "train", "pruned": "evaluate"}  # kind -> the stage writing it
TRIALS_CSV = "trials.csv"
MEMBERS_CSV = "members.csv"
TEAMS_CSV = "teams.csv"
SELECTION_JSON = "selection.json"
REPORT_DIR = "report"
PREDICTIONS = {
    "val": "predictions/val.npz",
    "test": "predictions/test.npz",
    "dense_val": "predictions/dense_val.npz",
    "dense_test": "predictions/dense_test.npz",
}
MENUS = {"val": "menus/val.npz", "test": "menus/test.npz"}
MENU_CSV = "menu.csv"
MENU_CANDIDATES_CSV = "menu_candidates.csv"
# Pipeline stages in order, as recorded in run.json "stages".
STAGES = ("train", "search", "evaluate", "menu", "select", "report")
# The stage that writes each file the report reads, so a missing file says what to run.
STAGE_OF = {
    TRIALS_CSV: "search",
    MEMBERS_CSV: "evaluate",
    SELECTION_JSON: "select",
    **{path: "evaluate" for path in PREDICTIONS.values()},
    MENU_CSV: "menu",
    MENU_CANDIDATES_CSV: "menu",
    **{path: "menu" for path in MENUS.values()},
}
REPORT_INPUTS = (TRIALS_CSV, MEMBERS_CSV, *PREDICTIONS.values(), SELECTION_JSON)

__all__ = [
    "FORMAT",
    "MEMBERS_CSV",
    "MENUS",
    "MENU_CANDIDATES_CSV",
    "MENU_CSV",
    "PREDICTIONS",
    "RUN_JSON",
    "SELECTION_JSON",
    "STAGES",
    "TEAMS_CSV",
    "TRIALS_CSV",
    "RunDir",
    "lock_run_dir",
    "mark_stage",
    "menu_dir",
    "missing",
    "open_run",
    "read_json",
    "storage_entry",
    "storage_or_none",
    "storage_url",
    "trial_dir",
    "write_bytes",
    "write_csv",
    "write_json",
    "write_menu",
    "write_npz",
    "write_predictions",
    "write_text",
]


# ---------------------------------------------------------------------------------------- locking


@contextmanager
def lock_run_dir(run_dir: Path, command: str = "ensprune run") -> Iterator[Path]:
    """Hold the run directory's lock for the block: one writer at a time.

    The lock is ``flock`` on ``<run_dir>/.lock``, so the kernel drops it when its holder ends in
    any way (even SIGKILL): a crashed run never leaves a stuck lock, and the file itself may
    stay. The holder's pid is written into the file for the refusal message.

    Raises:
        RunDirError: another process holds the lock.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise RunDirError(
                f"run directory {run_dir} is in use by another run (pid {holder}); wait for it "
                f"to finish, or give `{command}` another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield run_dir
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# ---------------------------------------------------------------------------------------- writing


def _atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """Write through ``write(tmp)`` into a temporary file beside ``path``, then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the temporary name keeps the suffix: writers such as numpy add ".npz" when it is missing
    fd, name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return _atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return _atomic(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON atomically (non-JSON values as their ``str``)."""
    return write_text(path, json.dumps(payload, indent=2, default=str))


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    """Write a DataFrame as CSV (no index) atomically."""
    return _atomic(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_predictions(run_dir: Path, split: str, predictions: PredictionSet) -> Path:
    """Write one of the run's prediction files (``val``, ``test``, ``dense_val``, ``dense_test``)."""
    return _atomic(Path(run_dir) / PREDICTIONS[split], lambda tmp: predictions.save(tmp))


def write_menu(run_dir: Path, split: str, menu: Menu) -> Path:
    """Write one of the run's menu files (``val`` or ``test``)."""
    return _atomic(Path(run_dir) / MENUS[split], lambda tmp: menu.save(tmp))


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    """Write arrays as a compressed npz file atomically (plain arrays only: read without pickles)."""
    import numpy as np

    return _atomic(path, lambda tmp: np.savez_compressed(tmp, allow_pickle=False, **arrays))


def menu_dir(run_dir: Path, member: str, search_suffix: str = "") -> Path:
    """Where a member's operating-point cache of one search goes (``menu`` or ``menu-<suffix>``)."""
    name = f"menu-{search_suffix}" if search_suffix else "menu"
    return Path(run_dir) / MEMBERS_DIR / member / name


def trial_dir(run_dir: Path, member: str, search_suffix: str = "") -> Path:
    """Where a member's trial checkpoints of one search go (``trials`` or ``trials-<suffix>``)."""
    name = f"trials-{search_suffix}" if search_suffix else "trials"
    return Path(run_dir) / MEMBERS_DIR / member / name


def mark_stage(run_dir: Path, stage: str) -> None:
    """Record in run.json that ``stage`` finished."""
    path = Path(run_dir) / RUN_JSON
    meta = read_json(path)
    meta.setdefault("stages", {})[stage] = "done"
    write_json(path, meta)


# ---------------------------------------------------------------------------------------- storage

_FILE_SCHEMES = ("sqlite:///", "journal://")


def storage_entry(run_dir: Path, url: str) -> dict[str, str]:
    """run.json's storage keys for ``url``: ``storage`` (absolute, as given) and, when the storage
    is a file inside ``run_dir``, ``storage_relative`` (its path relative to the run directory),
    so a moved or copied run directory keeps working on its own storage."""
    entry = {"storage": url}
    for scheme in _FILE_SCHEMES:
        if url.startswith(scheme):
            path = Path(url.removeprefix(scheme)).resolve()
            if path.is_relative_to(Path(run_dir).resolve()):
                entry["storage_relative"] = (
                    scheme + path.relative_to(Path(run_dir).resolve()).as_posix()
                )
    return entry


def storage_or_none(run_dir: Path, meta: dict[str, Any]) -> str | None:
    """:func:`storage_url`, or None when run.json names no storage."""
    try:
        return storage_url(run_dir, meta)
    except RunDirError:
        return None


def storage_url(run_dir: Path, meta: dict[str, Any]) -> str:
    """The storage URL of the run in ``run_dir`` (where it lies now, for a storage inside it)."""
    relative = meta.get("storage_relative")
    if isinstance(relative, str):
        for scheme in _FILE_SCHEMES:
            if relative.startswith(scheme):
                return scheme + str(Path(run_dir).resolve() / relative.removeprefix(scheme))
    url = meta.get("storage")
    if not isinstance(url, str) or not url:
        raise RunDirError(
            f"{Path(run_dir) / RUN_JSON} names no storage; re-run `ensprune run SPEC.toml "
            f"--run-dir {run_dir} --storage URL` with the storage that holds its studies"
        )
    return url


# ---------------------------------------------------------------------------------------- reading


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file as a dict; unreadable or non-object content raises :class:`RunDirError`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(
            f"cannot read {path} as JSON ({exc}); re-run the stage that wrote it"
        ) from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path} must hold a JSON object; re-run the stage that wrote it")
    return data


def _read_csv(path: Path, required: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RunDirError(
            f"cannot read {path} as CSV ({exc}); re-run the stage that wrote it"
        ) from None
    missing_columns = [c for c in required if c not in frame.columns]
    if missing_columns:
        raise RunDirError(
            f"{path} lacks the column(s) {', '.join(missing_columns)}; re-run the stage that wrote it"
        )
    return frame


def missing(run_dir: str | Path) -> list[str]:
    """The files the report needs that ``run_dir`` lacks (relative names, in stage order)."""
    root = Path(run_dir)
    return [name for name in REPORT_INPUTS if not (root / name).is_file()]


def resume_hint(run_dir: Path, info: dict[str, Any] | None = None) -> str:
    """The command that finishes an interrupted run (the spec the user ran, if it still exists)."""
    spec = (info or {}).get("spec_file")
    if not (isinstance(spec, str) and Path(spec).is_file()):
        spec = "SPEC.toml"  # the spec the run was made from (a copy is in RUN_DIR/spec.toml)
    return (
        f"`ensprune run {spec} --run-dir {run_dir}` (it resumes; fix the spec first if it failed)"
    )


class RunDir:
    """A run directory opened for reading; each file is parsed at most once.

    Frames and summaries take a :class:`RunDir` (or a path, opened on the spot), so one report
    reads ``selection.json``, the CSV files and the prediction files once each.

    Raises:
        RunDirError: the directory does not exist or holds no ``run.json``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise RunDirError(
                f"run directory {self.path} does not exist; create it with `ensprune run SPEC.toml`"
            )
        if not (self.path / RUN_JSON).is_file():
            raise RunDirError(
                f"{self.path} is not an ensprune run directory (it has no {RUN_JSON}); give the "
                "directory that `ensprune run SPEC.toml` created"
            )
        self._json: dict[str, dict[str, Any]] = {}
        self._csv: dict[str, pd.DataFrame] = {}
        self._predictions: dict[str, PredictionSet] = {}
        self._menus: dict[str, Menu] = {}

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def require(self, name: str) -> Path:
        """The path of ``name`` inside the run; a missing file says which stage writes it."""
        path = self.path / name
        if not path.is_file():
            stage = STAGE_OF.get(name, "?")
            info = self.info if name != RUN_JSON else None
            raise RunDirError(
                f"{path} is missing: the '{stage}' stage writes it; finish the run with "
                f"{resume_hint(self.path, info)}, then report again"
            )
        return path

    def has(self, name: str) -> bool:
        """Whether the run holds the file ``name``."""
        return (self.path / name).is_file()

    def json(self, name: str) -> dict[str, Any]:
        """A JSON file of the run as a dict (parsed once; treat it as read-only)."""
        if name not in self._json:
            self._json[name] = read_json(self.require(name))
        return self._json[name]

    def csv(self, name: str, required: Sequence[str] = ()) -> pd.DataFrame:
        """A CSV file of the run as a fresh DataFrame copy (parsed once), with required columns."""
        if name not in self._csv:
            self._csv[name] = _read_csv(self.require(name), [])
        frame = self._csv[name]
        absent = [c for c in required if c not in frame.columns]
        if absent:
            raise RunDirError(
                f"{self.path / name} lacks the column(s) {', '.join(absent)}; re-run the stage "
                "that wrote it"
            )
        return frame.copy()

    @property
    def info(self) -> dict[str, Any]:
        """``run.json``."""
        return self.json(RUN_JSON)

    @property
    def storage(self) -> str:
        """The run's storage URL (a storage inside the directory is found where it lies now)."""
        return storage_url(self.path, self.info)

    @property
    def selection(self) -> dict[str, Any]:
        """``selection.json``, with its member indices checked."""
        selection = self.json(SELECTION_JSON)
        members = selection.get("members")
        if (
            not isinstance(members, list)
            or not members
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in members)
        ):
            raise RunDirError(
                f"{self.path / SELECTION_JSON} must hold 'members', a non-empty list of member "
                "indices into the pool; re-run the selection stage"
            )
        return selection

    def predictions(self, split: str) -> PredictionSet:
        """One prediction file: ``val``, ``test``, ``dense_val`` or ``dense_test`` (loaded once)."""
        from ensprune.ensemble.predictions import PredictionSet

        if split not in PREDICTIONS:
            raise RunDirError(
                f"unknown prediction split {split!r}; valid splits: {', '.join(PREDICTIONS)}"
            )
        if split not in self._predictions:
            self._predictions[split] = PredictionSet.load(self.require(PREDICTIONS[split]))
        return self._predictions[split]

    def menu(self, split: str) -> Menu:
        """One split of the run's menu (``val`` or ``test``), loaded once."""
        from ensprune.ensemble.menu import Menu

        if split not in MENUS:
            raise RunDirError(f"unknown menu split {split!r}; valid splits: {', '.join(MENUS)}")
        if split not in self._menus:
            self._menus[split] = Menu.load(self.require(MENUS[split]))
        return self._menus[split]

    def member_model(self, member: str, kind: str = "pruned") -> nn.Module:
        """A member's checkpoint, ``members/<member>/<kind>.pt`` (``dense`` or ``pruned``), loaded
        with ``weights_only=True``; a missing one says which stage writes it.

        Raises:
            RunDirError: unknown ``kind`` or missing checkpoint.
            CheckpointError: the checkpoint is corrupt.
        """
        from ensprune.models.checkpoint import load_model

        if kind not in MEMBER_CHECKPOINTS:
            raise RunDirError(
                f"unknown member checkpoint {kind!r}; valid kinds: {', '.join(MEMBER_CHECKPOINTS)}"
            )
        path = self.path / MEMBERS_DIR / member / f"{kind}.pt"
        if not path.is_file():
            raise RunDirError(
                f"{path} is missing: the '{MEMBER_CHECKPOINTS[kind]}' stage writes it; finish the "
                f"run with {resume_hint(self.path, self.info)}, then report again"
            )
        model, _ = load_model(path)
        return model

    @property
    def voting(self) -> str:
        """The run's voting rule (canonical name): selection.json's, else run.json's, else the
        library default :data:`ensprune.ensemble.voting.DEFAULT_VOTING` (soft voting)."""
        from ensprune.ensemble.voting import DEFAULT_VOTING, VOTING

        for name in (SELECTION_JSON, RUN_JSON):
            if self.has(name):
                voting = self.json(name).get("voting")
                if voting:
                    return VOTING.canonical(str(voting))  # unknown: fails listing the known ones
        return DEFAULT_VOTING


def open_run(run_dir: str | Path | RunDir) -> RunDir:
    """``run_dir`` as a :class:`RunDir` (an open one is returned as is, keeping its cache)."""
    return run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
