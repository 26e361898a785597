"""The whole flow: spec -> data -> pool -> per-member searches -> predictions -> selection -> report.

Every stage writes its results into the run directory (through :mod:`ensprune.rundir`) before
the next one starts, so an interrupted run resumes where it stopped: trained members and
completed trials are reused. Changing the ``[search]`` section of the spec keeps the trained pool
and starts new member studies for the new search (their names carry the search's fingerprint);
the earlier studies and their checkpoints stay in the storage and the run directory.

Progress messages go through :mod:`logging` (logger ``ensprune.study``); the command line shows
them, a library caller configures logging as it likes. Member studies run on the joblib backend
the caller configured with :func:`ensprune.parallel.parallel_config` (loky processes by default).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import optuna
import pandas as pd
import torch

from ensprune import __version__
from ensprune import rundir as rd
from ensprune.data import Dataset, load_dataset
from ensprune.ensemble.predictions import PredictionSet
from ensprune.errors import CheckpointError, RunDirError, SpecError
from ensprune.models import (
    evaluate,
    load_model,
    measure,
    predict_proba,
    save_model,
    train_model,
)
from ensprune.models.named import build_named
from ensprune.parallel import (
    WorkerLogs,
    forward_worker_logs,
    parallel_map,
    restore_malloc_reuse,
    stop_dask_profiler,
)
from ensprune.storage import (
    absolute_storage_url,
    default_storage_url,
    is_shared,
    open_storage,
    same_storage,
)
from ensprune.study import guard
from ensprune.study.annotate import record_choices, record_joint_choices
from ensprune.study.bagging import check_bag, member_split
from ensprune.study.build import (
    check_layer_patterns,
    make_study_pruner,
    slot_sampler,
    train_config,
)
from ensprune.study.callbacks import Callback, make_callbacks
from ensprune.study.checkpoints import repair_trial_checkpoints
from ensprune.study.claims import SURPLUS_ATTR
from ensprune.study.constraints import is_feasible
from ensprune.study.guard import default_run_dir, follow_parent, guarded
from ensprune.study.menus import build_menus
from ensprune.study.search import (
    MemberObjective,
    SplitData,
    TrainedMember,
    choose_operating_point,
    pareto_front,
    run_member_study,
)
from ensprune.study.selection import (
    select_joint,
    select_team,
    write_joint_selection,
    write_selection,
)
from ensprune.study.spec import StudySpec

logger = logging.getLogger("ensprune.study")
T = TypeVar("T")
R = TypeVar("R")

RUN_FORMAT = rd.FORMAT
# Sections that decide what the stored checkpoints mean; a change there makes the run directory
# incompatible. A changed [search] starts new studies on the same pool; trial counts, the
# accuracy tolerance and selection settings may change freely between resumes.
_COMPAT_SECTIONS = ("seed", "data", "pool")
LATENCY_BATCH = 256
LATENCY_REPEATS = 10  # timed blocks per latency: the median and IQR are over them
EARLY_EPOCH = 1  # the early checkpoint kept for lottery-ticket rewinding


@dataclass(frozen=True)
class RunResult:
    """Where a finished run put its results, and its terminal summary."""

    run_dir: Path
    storage_url: str
    report_path: Path
    summary: dict[str, Any]
    summary_text: str


def _search_fingerprint(spec: StudySpec) -> str:
    import dataclasses

    search = dataclasses.asdict(spec.search)
    search.pop("trials")
    search.pop("accuracy_tolerance")
    if search["distill"] == 0:  # no distillation: T is unused, and run dirs from before it match
        search.pop("distill")
        search.pop("temperature")
    for knob, default in (
        ("lr_schedule", "constant"),
        ("clean_epochs", 0),
        ("sampler_params", {}),
        ("pruner", "none"),
        ("pruner_params", {}),
        ("min_accuracy", None),
        ("min_sparsity", None),
        ("include", ()),
        ("exclude", ()),
    ):
        if search[knob] == default:  # unset: run dirs from before the knob still match
            search.pop(knob)
    return json.dumps(search, sort_keys=True)


def _search_suffix(fingerprint: str) -> str:
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:8]


def study_name(spec: StudySpec, member: str, search_suffix: str = "") -> str:
    """The Optuna study of ``member`` under one search of the run (the first has no suffix)."""
    base = f"{spec.name}.{member}"
    return f"{base}.{search_suffix}" if search_suffix else base


def prepare_run_dir(
    spec: StudySpec,
    spec_text: str,
    run_dir: Path,
    storage: str | None,
    spec_file: str | Path | None = None,
) -> tuple[Path, str, str]:
    """Create the run directory, or check that an existing one belongs to this spec.

    Returns:
        (run_dir, storage URL, search suffix). An existing run directory is reused (resume) when
        its seed, data and pool settings match; otherwise it is refused, never overwritten. A
        changed ``[search]`` gets its own suffix (the first search's is ``""``), so its studies
        and trial checkpoints sit beside the earlier ones.
    """
    run_dir = run_dir.resolve()
    meta_path = run_dir / rd.RUN_JSON
    fingerprint = _search_fingerprint(spec)
    meta = _read_run_json(meta_path, spec, storage) if meta_path.is_file() else None
    if meta is None and (run_dir / rd.SPEC_TOML).is_file():
        meta = _rebuild_run_json(run_dir, spec, storage, fingerprint)
    if meta is not None:
        if meta.get("name", spec.name) != spec.name:
            # the studies and their trial checkpoints are named after the run: never mix two names
            raise RunDirError(
                f"run directory {run_dir} holds the run {meta['name']!r}, the spec names it "
                f"{spec.name!r}; set [study] name = {meta['name']!r} to resume it, or choose "
                "another --run-dir"
            )
        if meta.get("compat") != spec.fingerprint(*_COMPAT_SECTIONS):
            raise RunDirError(
                f"run directory {run_dir} holds a run of a different spec (seed, data or pool differ); "
                "choose another --run-dir, or delete that directory to start over"
            )
        url = rd.storage_url(run_dir, meta)
        if storage and not same_storage(storage, url):
            raise RunDirError(
                f"run directory {run_dir} stores its studies in {url}, not {storage}; "
                "drop --storage to resume it, or choose another --run-dir"
            )
        # suffix -> search fingerprint; run directories from before this map hold one search
        searches: dict[str, str] = meta.get("searches") or {"": meta.get("search", fingerprint)}
        suffix = next((k for k, v in searches.items() if v == fingerprint), None)
        if suffix is None:
            suffix = _search_suffix(fingerprint)
            searches[suffix] = fingerprint
            logger.info(
                "[search] changed: the trained pool is reused, new member studies carry the "
                "suffix .%s (the earlier studies stay in the storage)",
                suffix,
            )
    else:
        if run_dir.exists() and any(p.name != rd.LOCK_FILE for p in run_dir.iterdir()):
            raise RunDirError(
                f"{run_dir} exists and is not an ensprune run directory; choose another --run-dir"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        # a relative file storage recorded absolute: a resume from elsewhere finds the same file
        url = absolute_storage_url(storage) if storage else default_storage_url(run_dir)
        suffix, searches = "", {"": fingerprint}
        meta = _new_run_json(spec, url, fingerprint)
    meta.update(rd.storage_entry(run_dir, url))
    meta.setdefault("run_id", uuid.uuid4().hex)  # run directories from before ids get one now
    # this run's studies, for the interrupt handler and the identity check
    meta["studies"] = [study_name(spec, member, suffix) for member, _, _ in spec.members]
    meta["searches"] = searches
    meta["search"] = fingerprint  # the current search
    meta["search_suffix"] = suffix
    meta["voting"] = spec.selection.voting
    if spec_file is not None:
        meta["spec_file"] = str(Path(spec_file).resolve())
    # before run.json records the storage: a refused one must not stick to the run directory
    claim_studies(spec, url, run_dir, suffix, meta["run_id"])
    rd.write_json(meta_path, meta)
    rd.write_text(run_dir / rd.SPEC_TOML, spec_text)
    return run_dir, url, suffix


def _read_run_json(path: Path, spec: StudySpec, storage: str | None) -> dict[str, Any] | None:
    """run.json as a dict, or None (logged) when it is corrupt and is to be rebuilt."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        meta = None
    if isinstance(meta, dict) and isinstance(meta.get("storage"), str):
        return meta
    logger.warning("%s is corrupt: rebuilding it from spec.toml and the storage", path)
    return None


def _new_run_json(spec: StudySpec, url: str, fingerprint: str) -> dict[str, Any]:
    """run.json of a new run directory (its run id and storage entry are added by the caller)."""
    return {
        "format": RUN_FORMAT,
        "name": spec.name,
        "storage": url,
        "dataset": spec.data.dataset,
        "ensprune_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "compat": spec.fingerprint(*_COMPAT_SECTIONS),
        "stages": {},
        # the first search has no suffix; a later one is found by its fingerprint's suffix
        "searches": {"": fingerprint},
    }


def _rebuild_run_json(
    run_dir: Path, spec: StudySpec, storage: str | None, fingerprint: str
) -> dict[str, Any]:
    """A run.json for a run directory that lost its own (corrupt, or deleted): from its spec.toml,
    the storage (given, else the default one inside it) and the run id its studies carry."""
    from ensprune.study.guard import RUN_ID_ATTR

    try:
        kept = StudySpec.from_toml(run_dir / rd.SPEC_TOML)
    except Exception:  # any failure to read it: it cannot vouch for the directory
        kept = None
    if kept is None or kept.fingerprint(*_COMPAT_SECTIONS) != spec.fingerprint(*_COMPAT_SECTIONS):
        raise RunDirError(
            f"{run_dir / rd.RUN_JSON} is missing or corrupt and {run_dir / rd.SPEC_TOML} does not "
            "match this spec (seed, data or pool); run the spec in that file, or choose another "
            "--run-dir"
        )
    url = absolute_storage_url(storage) if storage else default_storage_url(run_dir)
    opened = open_storage(url)
    ids = set()
    for name in optuna.get_all_study_names(opened):
        if name.startswith(f"{spec.name}."):
            study = optuna.load_study(study_name=name, storage=opened)
            ids.add(study.user_attrs.get(RUN_ID_ATTR))
    ids.discard(None)
    meta = _new_run_json(spec, url, fingerprint)
    if len(ids) == 1:
        meta["run_id"] = ids.pop()
    logger.warning("%s rebuilt (storage %s)", run_dir / rd.RUN_JSON, url)
    return meta


def claim_studies(spec: StudySpec, url: str, run_dir: Path, suffix: str, run_id: str) -> None:
    """Tie this run's studies to its run id, and fail the trials a killed run left RUNNING.

    A study from before run ids is adopted when its complete trials' checkpoints are here.
    """
    members = {study_name(spec, m, suffix): m for m, _, _ in spec.members}

    def owns(name: str, trial: optuna.trial.FrozenTrial) -> bool:
        checkpoint = trial.user_attrs.get("checkpoint")
        folder = rd.trial_dir(run_dir, members[name], suffix)
        return isinstance(checkpoint, str) and (folder / checkpoint).is_file()

    guard.claim_studies(url, list(members), run_id, owns)


def load_spec_data(
    spec: StudySpec, data_dir: str | Path | None, download: bool, progress: bool
) -> Dataset:
    """The spec's dataset, split as its ``[data]`` section and seed say (the same in every
    process of a run: the lead, its ``--join`` workers)."""
    data = load_dataset(
        spec.data.dataset,
        data_dir=data_dir,
        seed=spec.seed,
        val_fraction=spec.data.val_fraction,
        test_fraction=spec.data.test_fraction,
        max_train=spec.data.max_train,
        max_test=spec.data.max_test,
        download=download,
        progress=progress,
    )
    check_bag(spec, len(data.y_train))
    return data


def _member_seed(spec: StudySpec, index: int) -> int:
    return spec.seed * 10_007 + index


def train_pool(
    spec: StudySpec,
    data: Dataset,
    run_dir: Path,
    progress: bool,
    workers: int = 1,
    threads: int | None = None,
) -> dict[str, TrainedMember]:
    """Train (or reload) every member, in pool order.

    Members are independent: with ``workers > 1`` the ones not trained yet train at once on the
    caller's joblib backend (as the member studies do), each worker on ``threads`` torch threads
    (default 1); the checkpoints equal a serial run's on the same thread count.
    """
    pool: dict[str, TrainedMember | None] = {}
    for member, arch, seed in spec.members:
        folder = run_dir / rd.MEMBERS_DIR / member
        pool[member] = _reuse_member(folder, member, _initial_state(arch, data, seed))
        if pool[member] is not None:
            logger.info(
                "[%s] dense model reused from %s/dense.pt", member, folder.relative_to(run_dir)
            )
    missing = [(i, m) for i, m in enumerate(spec.members) if pool[m[0]] is None]
    jobs = max(1, min(workers, len(missing)))
    task = functools.partial(
        _train_member, spec=spec, data=data, run_dir=run_dir, progress=progress and jobs == 1
    )
    for (_, (member, _, _)), trained in zip(
        missing, _member_map(task, [i for i, _ in missing], jobs, threads), strict=True
    ):
        pool[member] = trained
    return {member: trained for member, trained in pool.items() if trained is not None}


def _initial_state(arch: str, data: Dataset, seed: int) -> dict[str, torch.Tensor]:
    # θ₀ is a pure function of (architecture, shape, seed), so it is rebuilt rather than stored.
    initial = build_named(arch, data.input_shape, data.num_classes, seed)
    return {k: v.clone() for k, v in initial.state_dict().items()}


def _train_member(
    index: int, *, spec: StudySpec, data: Dataset, run_dir: Path, progress: bool
) -> TrainedMember:
    """Train one member, write its checkpoints and say so (a worker's line reaches the caller's
    log through the forwarding of :func:`_member_map`, as soon as the member is saved)."""
    member, arch, seed = spec.members[index]
    folder = run_dir / rd.MEMBERS_DIR / member
    model = build_named(arch, data.input_shape, data.num_classes, seed)
    initial_state = {k: v.clone() for k, v in model.state_dict().items()}
    start = time.perf_counter()
    split = member_split(
        spec, member, SplitData(data.x_train, data.y_train, data.x_val, data.y_val)
    )
    history = train_model(
        model,
        split.x_train,
        split.y_train,
        split.x_val,
        split.y_val,
        train_config(spec.pool, device=spec.device, seed=seed),
        progress=progress,
        desc=f"train {member}",
        snapshot_epoch=EARLY_EPOCH,
    )
    _, val_acc = evaluate(model, data.x_val, data.y_val, device=spec.device)
    if history.snapshot is not None:
        _save_state(folder / "early.pt", history.snapshot)
    save_model(
        folder / "dense.pt",
        model,
        {
            "member": member,
            "architecture": arch,
            "seed": seed,
            "val_accuracy": val_acc,
            "epochs": history.epochs_run,
        },
    )
    logger.info(
        "[%s] trained %d epochs in %.1fs: val_acc=%.4f",
        member,
        history.epochs_run,
        time.perf_counter() - start,
        val_acc,
    )
    return TrainedMember(model, val_acc, initial_state, history.snapshot)


def _reuse_member(
    folder: Path, member: str, initial_state: dict[str, torch.Tensor]
) -> TrainedMember | None:
    """The member trained earlier, or None (logged) when it must be trained again: its
    checkpoint is missing, corrupt, or records another member (a copied dense.pt)."""
    if not (folder / "dense.pt").is_file():
        return None
    try:
        model, meta = load_model(folder / "dense.pt")
        early = _load_state(folder / "early.pt")
        if meta.get("member", member) != member:
            raise CheckpointError(f"{folder / 'dense.pt'} holds member {meta['member']!r}")
        accuracy = float(meta["val_accuracy"])
    except (CheckpointError, KeyError, TypeError, ValueError) as exc:
        logger.warning("[%s] %s: training the member again", member, exc)
        return None
    return TrainedMember(model, accuracy, initial_state, early)


def _save_state(path: Path, state: dict[str, torch.Tensor]) -> None:
    import io

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buffer)
    rd.write_bytes(path, buffer.getvalue())


def _load_state(path: Path) -> dict[str, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises several types for a damaged file
        raise CheckpointError(f"{path} is corrupt") from None
    return dict(state)


@dataclass(frozen=True)
class _Caller:
    """What a worker process mirrors from the caller: its pid and its logging levels, and where
    its log records go (``None``: nowhere to send them, e.g. one job or a dask cluster's client)."""

    pid: int
    level: int
    optuna_verbosity: int
    logs: WorkerLogs | None = None


def _mirror_caller(caller: _Caller, threads: int | None) -> None:
    """In a worker process: the caller's log levels, one torch thread (no oversubscription),
    glibc's memory reuse where a dask nanny turned it off (see :func:`restore_malloc_reuse`) and
    no dask profiler sampling the task's stack (see :func:`stop_dask_profiler`).

    A fresh worker starts with Python's and Optuna's defaults, not what the caller configured;
    in the caller's own process (one job, or a threading backend) nothing is changed.
    """
    if os.getpid() == caller.pid:
        return
    follow_parent()  # ignore Ctrl-C (the caller handles it), exit when the caller is gone
    restore_malloc_reuse()  # a dask worker's MALLOC_TRIM_THRESHOLD_ made every tensor an mmap
    stop_dask_profiler()  # its 10 ms stack sampling slows a CPU-bound trial
    optuna.logging.set_verbosity(caller.optuna_verbosity)
    ours = logging.getLogger("ensprune")
    if caller.logs is None and not ours.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        ours.addHandler(handler)
    ours.setLevel(caller.level)
    if threads is not None:
        torch.set_num_threads(threads)


def _member_map(
    func: Callable[[T], R], items: Sequence[T], workers: int, threads: int | None = None
) -> list[R]:
    """``[func(x) for x in items]`` on up to ``workers`` workers of the caller's joblib backend.

    Each worker process mirrors this process's log levels (see :func:`_mirror_caller`) and runs
    ``threads`` torch threads (default: one when several run at once, so they do not fight over
    cores); with one worker everything runs here, on this process's threads.
    """
    jobs = max(1, min(workers, len(items)))
    # the workers' log lines reach our handlers; the queue's server ends if we are killed
    with forward_worker_logs(jobs, server_init=follow_parent) as logs:
        task = functools.partial(
            _in_worker,
            func=func,
            caller=_Caller(
                os.getpid(),
                logging.getLogger("ensprune").getEffectiveLevel(),
                optuna.logging.get_verbosity(),
                logs,
            ),
            threads=threads or (1 if jobs > 1 else None),
        )
        return parallel_map(task, items, n_jobs=jobs)


def _in_worker(item: T, *, func: Callable[[T], R], caller: _Caller, threads: int | None) -> R:
    _mirror_caller(caller, threads)
    with caller.logs.installed() if caller.logs is not None else contextlib.nullcontext():
        return func(item)


def _search_member(
    index: int, *, caller: _Caller, threads: int | None, **study: Any
) -> list[dict[str, Any]]:
    """:func:`_run_member_study` in a worker: the caller's settings, its log records sent back."""
    _mirror_caller(caller, threads)
    with caller.logs.installed() if caller.logs is not None else contextlib.nullcontext():
        return _run_member_study(index, **study)


def _run_member_study(
    index: int,
    *,
    spec: StudySpec,
    pool: dict[str, TrainedMember],
    split: SplitData,
    run_dir: Path,
    storage_url: str,
    search_suffix: str,
    callbacks: Sequence[Callback] = (),
    joining: bool = False,
) -> list[dict[str, Any]]:
    """Run (or resume) one member's study; returns its rows of trials.csv (none when
    ``joining``: a joining worker adds trials and leaves the rest to the run that leads)."""
    member = spec.members[index][0]
    trained = pool[member]
    seed = _member_seed(spec, index)
    name = study_name(spec, member, search_suffix)
    trial_dir = rd.trial_dir(run_dir, member, search_suffix)
    objective = MemberObjective(
        spec, member, trained, member_split(spec, member, split), trial_dir, seed
    )
    study = run_member_study(
        open_storage(storage_url),
        name,
        objective,
        spec.search.trials,
        functools.partial(slot_sampler, spec.search, seed),  # fresh per trial: see the docstring
        # the spec's factories are called here, in the process that runs this study
        [*make_callbacks(spec.callbacks), *callbacks],
        pruner=make_study_pruner(spec.search),
        shared=is_shared(storage_url),
        wait_for_others=not joining,
    )
    if joining:
        return []
    repair_trial_checkpoints(study, objective)  # missing, corrupt or foreign: rebuilt
    study.set_user_attr("dense_val_accuracy", trained.val_accuracy)
    # a surplus trial raced another worker for the last slot and ran nothing
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS_ATTR)]
    chosen = choose_operating_point(trials, trained.val_accuracy, spec.search.accuracy_tolerance)
    front = {t.number for t in pareto_front(trials)}
    checkpoints = trial_dir.relative_to(run_dir)
    return [
        {
            "member": member,
            "study_name": name,
            "number": t.number,
            "state": t.state.name,
            "method": t.params.get("method"),
            "target_sparsity": t.params.get("sparsity", spec.search.sparsity[0]),
            "params": json.dumps(t.user_attrs.get("method_params", {}), sort_keys=True),
            "val_accuracy": t.values[0] if t.values else np.nan,
            "sparsity": t.values[1] if t.values else np.nan,
            "duration_s": t.duration.total_seconds() if t.duration else np.nan,
            "feasible": is_feasible(t),
            "pareto": t.number in front,
            "chosen": t.number == chosen.number,
            "checkpoint": (
                (checkpoints / t.user_attrs["checkpoint"]).as_posix()
                if t.user_attrs.get("checkpoint")
                else ""
            ),
        }
        for t in trials
    ]


def search_pool(
    spec: StudySpec,
    data: Dataset,
    pool: dict[str, TrainedMember],
    run_dir: Path,
    storage_url: str,
    workers: int = 1,
    search_suffix: str = "",
    callbacks: Sequence[Callback] = (),
    joining: bool = False,
    threads: int | None = None,
) -> pd.DataFrame:
    """Run (or resume) every member's study; returns trials.csv's frame with the chosen trials marked.

    With ``joining`` (``ensprune run --join``) this process only adds trials to studies that
    the leading run owns: it writes no trials.csv and returns an empty frame.

    ``callbacks`` (Optuna callbacks) run after every trial of every member study, besides the
    spec's ``[study] callbacks``; with ``workers > 1`` they must be picklable.

    Args:
        workers: member studies run this many at once, all writing to the same storage, on the
            joblib backend of the caller's :func:`~ensprune.parallel.parallel_config` (loky
            processes by default); results do not depend on it.
        search_suffix: which search of the run (see :func:`prepare_run_dir`).
        threads: torch threads of each worker process (default: one when several run at once).
    """
    split = SplitData(data.x_train, data.y_train, data.x_val, data.y_val)
    # Create the storage's schema here, once: worker processes that open a fresh SQLite/RDB storage
    # at the same moment race on Optuna's schema tables (UNIQUE constraint on alembic_version).
    open_storage(storage_url)
    caller = _Caller(
        os.getpid(),
        logging.getLogger("ensprune").getEffectiveLevel(),
        optuna.logging.get_verbosity(),
    )
    n_jobs = max(1, min(workers, len(spec.members)))
    task = functools.partial(
        _search_member,
        spec=spec,
        pool=pool,
        split=split,
        run_dir=run_dir,
        storage_url=storage_url,
        search_suffix=search_suffix,
        caller=caller,
        threads=threads or (1 if n_jobs > 1 else None),
        callbacks=tuple(callbacks),
        joining=joining,
    )
    # the workers' trial lines reach our log file; the queue's server ends if we are killed
    with forward_worker_logs(n_jobs, server_init=follow_parent) as logs:
        forwarding = functools.partial(task, caller=replace(caller, logs=logs))
        per_member = parallel_map(forwarding, range(len(spec.members)), n_jobs=n_jobs)
    if joining:
        return pd.DataFrame()
    frame = pd.DataFrame([row for rows in per_member for row in rows])
    rd.write_csv(run_dir / rd.TRIALS_CSV, frame)
    return frame


def evaluate_members(
    spec: StudySpec,
    data: Dataset,
    pool: dict[str, TrainedMember],
    trials: pd.DataFrame,
    run_dir: Path,
    workers: int = 1,
    threads: int | None = None,
) -> pd.DataFrame:
    """Measure dense and chosen pruned members; write members.csv and the prediction files.

    A resumed run whose chosen trials did not change reuses what an earlier run wrote (a missing
    or corrupt file is recomputed). The predictions are computed on up to ``workers`` workers of
    the caller's joblib backend (results do not depend on it); the latency measurements run
    here, one network at a time, so that no other work shares their cores.
    """
    chosen_trials = trials[trials.chosen.astype(bool)]
    signature = json.dumps(
        sorted(zip(chosen_trials.study_name, chosen_trials.number.astype(int), strict=True))
    )
    reused = _reuse_evaluation(run_dir, signature)
    if reused is not None:
        logger.info("members.csv and predictions reused: the chosen trials did not change")
        return reused
    rows = []
    proba: dict[str, list[np.ndarray]] = {"val": [], "test": [], "dense_val": [], "dense_test": []}
    pruned_macs = []
    shape = data.input_shape
    chosen_rows = {
        m: trials[(trials.member == m) & trials.chosen].iloc[0] for m, _, _ in spec.members
    }
    predicted = _member_map(
        functools.partial(
            _predict_member,
            x_val=data.x_val,
            y_val=data.y_val,
            x_test=data.x_test,
            device=spec.device,
        ),
        [(pool[m].model, run_dir / chosen_rows[m].checkpoint) for m, _, _ in spec.members],
        workers,
        threads,
    )
    for (member, arch, seed), (pruned_val, probabilities) in zip(
        spec.members, predicted, strict=True
    ):
        dense, dense_acc = pool[member].model, pool[member].val_accuracy
        chosen = chosen_rows[member]
        pruned, _ = load_model(run_dir / chosen.checkpoint)
        save_model(
            run_dir / rd.MEMBERS_DIR / member / "pruned.pt",
            pruned,
            {"member": member, "trial": int(chosen.number)},
        )
        # measure() is the one measurement: latency as median, IQR, repeats and thread count.
        dense_m = measure(dense, shape, batch_sizes=(LATENCY_BATCH,), repeats=LATENCY_REPEATS)
        pruned_m = measure(
            pruned, shape, reference=dense, batch_sizes=(LATENCY_BATCH,), repeats=LATENCY_REPEATS
        )
        dense_t, pruned_t = dense_m.latency[0], pruned_m.latency[0]
        pruned_macs.append(pruned_m.macs_effective)
        rows.append(
            {
                "member": member,
                "architecture": arch,
                "seed": seed,
                "dense_val_accuracy": dense_acc,
                "dense_params": dense_m.prunable_nonzero,
                "dense_macs": dense_m.macs_dense,
                "dense_latency_ms": dense_t.median_ms,
                "dense_latency_iqr_ms": dense_t.iqr_ms,
                "method": chosen.method,
                "method_params": chosen.params,
                "target_sparsity": chosen.target_sparsity,
                "sparsity": pruned_m.sparsity,
                "pruned_val_accuracy": pruned_val,
                "pruned_params": pruned_m.prunable_nonzero,
                "pruned_macs": pruned_m.macs_effective,
                "pruned_latency_ms": pruned_t.median_ms,
                "pruned_latency_iqr_ms": pruned_t.iqr_ms,
                "latency_batch": LATENCY_BATCH,
                "latency_repeats": pruned_t.repeats,
                "latency_threads": pruned_t.threads,
                "study_name": chosen.study_name,
                "n_trials": int(((trials.member == member) & (trials.state == "COMPLETE")).sum()),
                "chosen_trial": int(chosen.number),
            }
        )
        for key, array in probabilities.items():
            proba[key].append(array)
        logger.info(
            "[%s] chosen trial %d: %s sparsity=%.3f val_acc %.4f -> %.4f",
            member,
            int(chosen.number),
            chosen.method,
            rows[-1]["sparsity"],
            dense_acc,
            pruned_val,
        )
    names = tuple(m for m, _, _ in spec.members)
    for key, arrays in proba.items():
        y = data.y_val if key.endswith("val") else data.y_test
        cost = np.asarray(pruned_macs, dtype=float) if not key.startswith("dense") else None
        predictions = PredictionSet(np.stack(arrays), y, names=names, cost=cost)
        rd.write_predictions(run_dir, key, predictions)
    frame = pd.DataFrame(rows)
    rd.write_csv(run_dir / rd.MEMBERS_CSV, frame)
    meta = rd.read_json(run_dir / rd.RUN_JSON)
    meta["evaluated"] = signature  # written last: the files above are whole when it is set
    rd.write_json(run_dir / rd.RUN_JSON, meta)
    return frame


def _predict_member(
    item: tuple[torch.nn.Module, Path],
    *,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_test: np.ndarray,
    device: str,
) -> tuple[float, dict[str, np.ndarray]]:
    """One member's prediction work: (dense network, chosen checkpoint) -> the pruned network's
    validation accuracy and the four probability arrays of the prediction files."""
    dense, checkpoint = item
    pruned, _ = load_model(checkpoint)
    _, pruned_val = evaluate(pruned, x_val, y_val, device=device)
    # Test predictions are written for the report only; nothing upstream of it reads them.
    return pruned_val, {
        "val": predict_proba(pruned, x_val, device=device),
        "test": predict_proba(pruned, x_test, device=device),
        "dense_val": predict_proba(dense, x_val, device=device),
        "dense_test": predict_proba(dense, x_test, device=device),
    }


def _record_threads(run_dir: Path, threads: int | None, workers: int) -> None:
    """run.json's ``threads``: torch threads of the main process and of each worker process."""
    main = torch.get_num_threads()
    worker = threads or (1 if workers > 1 else main)
    logger.info("torch threads: %d here, %d per worker (%d workers)", main, worker, workers)
    meta = rd.read_json(run_dir / rd.RUN_JSON)
    meta["threads"] = {"main": main, "worker": worker, "workers": workers}
    rd.write_json(run_dir / rd.RUN_JSON, meta)


def _select_joint_stage(spec: StudySpec, run_path: Path, trials: pd.DataFrame, url: str) -> None:
    """The joint mode's selection stage: menus/val.npz -> selection.json (validation only)."""
    choice = select_joint(run_path, spec.selection, spec.seed)
    operating_points = write_joint_selection(choice, spec.selection, run_path)
    record_joint_choices(open_storage(url), trials, operating_points, choice.search)
    budget = choice.selection.params.get("budget")
    logger.info(
        "joint choice (%s, budget %s = %s %s): %s; total %s %.4g",
        choice.search,
        spec.selection.options.get("budget", "none"),
        "none" if budget is None else f"{budget:.4g}",
        choice.cost_name,
        ", ".join(choice.selection.names),
        choice.cost_name,
        choice.total_cost,
    )


def _reuse_evaluation(run_dir: Path, signature: str) -> pd.DataFrame | None:
    """members.csv when the evaluate stage ran on the same chosen trials and its files are whole;
    a damaged file is named (the stage is then recomputed)."""
    members: pd.DataFrame | None = None
    try:
        for path in rd.PREDICTIONS.values():
            if (run_dir / path).exists():
                PredictionSet.load(run_dir / path)
        if (run_dir / rd.MEMBERS_CSV).exists():
            members = pd.read_csv(run_dir / rd.MEMBERS_CSV)
    except Exception as exc:  # any damage: the stage is cheap to redo
        logger.warning("%s: recomputing the members' measurements and predictions", exc)
        return None
    whole = all((run_dir / path).exists() for path in rd.PREDICTIONS.values())
    if rd.read_json(run_dir / rd.RUN_JSON).get("evaluated") != signature or not whole:
        return None
    return members


def run_study(
    spec: StudySpec,
    *,
    spec_text: str | None = None,
    spec_file: str | Path | None = None,
    run_dir: str | Path | None = None,
    storage: str | None = None,
    data_dir: str | Path | None = None,
    download: bool = True,
    progress: bool = True,
    workers: int | None = None,
    callbacks: Sequence[Callback] = (),
    scheduler: str | None = None,
    threads: int | None = None,
) -> RunResult:
    """Run the whole flow of ``spec`` (resuming whatever an earlier run of it finished).

    Args:
        spec_text: the spec file's text, copied into the run directory (defaults to a rendering).
        spec_file: the spec file's path, named in the hint of a report of an unfinished run.
        run_dir: where results go; defaults to the spec's ``run_dir`` or ``runs/<name>``.
        storage: Optuna storage URL; defaults to the spec's, else SQLite inside the run directory.
        data_dir: dataset directory (else ``ENSPRUNE_DATA_DIR``, else ``./data``).
        download: download missing dataset files (MD5-verified) into the data directory.
        progress: progress bars for training. Per-stage and per-trial messages go to the
            ``ensprune.study`` logger (INFO); configure :mod:`logging` to see them.
        callbacks: Optuna callbacks ``(study, frozen_trial)`` run after every trial of every
            member study (e.g. a tracker), besides the spec's ``[study] callbacks``; picklable
            when member studies run in worker processes.
        workers: member studies searched at once (default: the spec's); see :func:`search_pool`.
        scheduler: a dask scheduler address (default: the spec's ``[study] scheduler``); member
            studies, and selectors' parallel scoring, then run on that cluster's workers, which
            must see the run directory at the same path. Without one: the caller's
            :func:`~ensprune.parallel.parallel_config` backend (loky processes by default).
        threads: torch threads of this process (pool training) and of every worker process
            (search, training, predictions); default: this process keeps its setting and each
            worker runs one. Small networks train fastest on one thread (``ensprune run``
            passes ``--threads``, default 1).
    """
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise SpecError(f"workers must be an integer >= 1; got {workers}")
    if threads is not None and (isinstance(threads, bool) or threads < 1):
        raise SpecError(f"threads must be an integer >= 1; got {threads}")
    address = scheduler or spec.scheduler
    if address is not None:
        from ensprune.parallel import dask_scheduler
    # connected before any training: a bad address fails now
    cluster = contextlib.nullcontext() if address is None else dask_scheduler(address)
    previous = torch.get_num_threads()
    with cluster, contextlib.ExitStack() as restore:
        if threads is not None:
            torch.set_num_threads(threads)
            restore.callback(torch.set_num_threads, previous)  # the caller keeps its setting
        return _run_study(
            spec,
            spec_text=spec_text,
            spec_file=spec_file,
            run_dir=run_dir,
            storage=storage,
            data_dir=data_dir,
            download=download,
            progress=progress,
            workers=workers,
            callbacks=callbacks,
            threads=threads,
        )


@guarded  # holds the run directory's lock; Ctrl-C -> RunInterrupted (what was kept, how to resume)
def _run_study(
    spec: StudySpec,
    *,
    spec_text: str | None,
    spec_file: str | Path | None,
    run_dir: str | Path | None,
    storage: str | None,
    data_dir: str | Path | None,
    download: bool,
    progress: bool,
    workers: int | None,
    callbacks: Sequence[Callback],
    threads: int | None,
) -> RunResult:
    from ensprune.report import build_report, format_summary, summary

    target = default_run_dir(spec, run_dir)
    text = spec_text if spec_text is not None else json.dumps(spec.to_dict(), indent=2)
    run_path, url, suffix = prepare_run_dir(
        spec, text, target, storage or spec.storage, spec_file=spec_file
    )
    logger.info("run directory: %s", run_path)
    logger.info("storage: %s", url)
    jobs = workers or spec.workers
    _record_threads(run_path, threads, jobs)

    data = load_spec_data(spec, data_dir, download, progress)
    logger.info(
        "data: %s train=%d val=%d test=%d classes=%d",
        spec.data.dataset,
        len(data.y_train),
        len(data.y_val),
        len(data.y_test),
        data.num_classes,
    )
    check_layer_patterns(spec, data.input_shape, data.num_classes)  # a typo fails before training
    pool = train_pool(spec, data, run_path, progress, jobs, threads)
    rd.mark_stage(run_path, "train")
    trials = search_pool(
        spec,
        data,
        pool,
        run_path,
        url,
        jobs,
        search_suffix=suffix,
        callbacks=callbacks,
        threads=threads,
    )
    rd.mark_stage(run_path, "search")
    evaluate_members(spec, data, pool, trials, run_path, jobs, threads)
    rd.mark_stage(run_path, "evaluate")
    mapper = functools.partial(_member_map, workers=jobs, threads=threads)
    build_menus(spec, data, pool, trials, run_path, suffix, mapper=mapper)
    rd.mark_stage(run_path, "menu")
    if spec.selection.mode == "joint":
        _select_joint_stage(spec, run_path, trials, url)
    else:
        selection = select_team(
            PredictionSet.load(run_path / rd.PREDICTIONS["val"]), spec.selection, spec.seed
        )
        write_selection(selection, spec.selection, run_path)
        record_choices(open_storage(url), trials, selection.names, spec.selection.selector)
        logger.info(
            "selected team (%s, %s): %s",
            spec.selection.selector,
            spec.selection.metric,
            ", ".join(selection.names),
        )
    rd.mark_stage(run_path, "select")
    report_path = build_report(run_path)
    rd.mark_stage(run_path, "report")
    facts = summary(run_path)
    return RunResult(run_path, url, report_path, facts, format_summary(facts))
