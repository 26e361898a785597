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

import functools
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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
from ensprune.parallel import parallel_map
from ensprune.storage import default_storage_url, open_storage
from ensprune.study.annotate import record_choices, record_joint_choices
from ensprune.study.build import make_study_sampler, train_config
from ensprune.study.callbacks import Callback, make_callbacks
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
    for knob, default in (("lr_schedule", "constant"), ("clean_epochs", 0), ("sampler_params", {})):
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
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            raise RunDirError(
                f"{meta_path} is corrupt; delete the run directory or choose another"
            ) from None
        if meta.get("compat") != spec.fingerprint(*_COMPAT_SECTIONS):
            raise RunDirError(
                f"run directory {run_dir} holds a run of a different spec (seed, data or pool differ); "
                "choose another --run-dir, or delete that directory to start over"
            )
        url = storage or meta["storage"]
        if storage and storage != meta["storage"]:
            raise RunDirError(
                f"run directory {run_dir} stores its studies in {meta['storage']}, not {storage}; "
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
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunDirError(
                f"{run_dir} exists and is not an ensprune run directory; choose another --run-dir"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        url = storage or default_storage_url(run_dir)
        suffix, searches = "", {"": fingerprint}
        meta = {
            "format": RUN_FORMAT,
            "name": spec.name,
            "storage": url,
            "dataset": spec.data.dataset,
            "ensprune_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "compat": spec.fingerprint(*_COMPAT_SECTIONS),
            "stages": {},
        }
    meta["searches"] = searches
    meta["search"] = fingerprint  # the current search
    meta["search_suffix"] = suffix
    meta["voting"] = spec.selection.voting
    if spec_file is not None:
        meta["spec_file"] = str(Path(spec_file).resolve())
    rd.write_json(meta_path, meta)
    rd.write_text(run_dir / rd.SPEC_TOML, spec_text)
    return run_dir, url, suffix


def _member_seed(spec: StudySpec, index: int) -> int:
    return spec.seed * 10_007 + index


def train_pool(
    spec: StudySpec, data: Dataset, run_dir: Path, progress: bool
) -> dict[str, TrainedMember]:
    """Train (or reload) every member, in pool order."""
    pool: dict[str, TrainedMember] = {}
    for member, arch, seed in spec.members:
        folder = run_dir / rd.MEMBERS_DIR / member
        # θ₀ is a pure function of (architecture, shape, seed), so it is rebuilt rather than stored.
        initial = build_named(arch, data.input_shape, data.num_classes, seed)
        initial_state = {k: v.clone() for k, v in initial.state_dict().items()}
        if (folder / "dense.pt").is_file():
            try:
                model, meta = load_model(folder / "dense.pt")
                early = _load_state(folder / "early.pt")
            except CheckpointError as exc:
                raise CheckpointError(f"{exc} (member {member})") from None
            pool[member] = TrainedMember(model, float(meta["val_accuracy"]), initial_state, early)
            logger.info(
                "[%s] dense model reused from %s/dense.pt", member, folder.relative_to(run_dir)
            )
            continue
        model = initial
        start = time.perf_counter()
        history = train_model(
            model,
            data.x_train,
            data.y_train,
            data.x_val,
            data.y_val,
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
        pool[member] = TrainedMember(model, val_acc, initial_state, history.snapshot)
        logger.info(
            "[%s] trained %d epochs in %.1fs: val_acc=%.4f",
            member,
            history.epochs_run,
            time.perf_counter() - start,
            val_acc,
        )
    return pool


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
        raise CheckpointError(f"{path} is corrupt; delete it and re-run to recreate it") from None
    return dict(state)


@dataclass(frozen=True)
class _Caller:
    """What a worker process mirrors from the caller: its pid and its logging levels."""

    pid: int
    level: int
    optuna_verbosity: int


def _mirror_caller(caller: _Caller, threads: int | None) -> None:
    """In a worker process: the caller's log levels and one torch thread (no oversubscription).

    A fresh worker starts with Python's and Optuna's defaults, not what the caller configured;
    in the caller's own process (one job, or a threading backend) nothing is changed.
    """
    if os.getpid() == caller.pid:
        return
    optuna.logging.set_verbosity(caller.optuna_verbosity)
    ours = logging.getLogger("ensprune")
    if not ours.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        ours.addHandler(handler)
    ours.setLevel(caller.level)
    if threads is not None:
        torch.set_num_threads(threads)


def _search_member(
    index: int,
    *,
    spec: StudySpec,
    pool: dict[str, TrainedMember],
    split: SplitData,
    run_dir: Path,
    storage_url: str,
    search_suffix: str,
    caller: _Caller,
    threads: int | None,
    callbacks: Sequence[Callback] = (),
) -> list[dict[str, Any]]:
    """Run (or resume) one member's study; returns its rows of trials.csv."""
    _mirror_caller(caller, threads)
    member = spec.members[index][0]
    trained = pool[member]
    seed = _member_seed(spec, index)
    name = study_name(spec, member, search_suffix)
    trial_dir = rd.trial_dir(run_dir, member, search_suffix)
    objective = MemberObjective(spec, member, trained, split, trial_dir, seed)
    study = run_member_study(
        open_storage(storage_url),
        name,
        objective,
        spec.search.trials,
        make_study_sampler(spec.search, seed),
        # the spec's factories are called here, in the process that runs this study
        [*make_callbacks(spec.callbacks), *callbacks],
    )
    study.set_user_attr("dense_val_accuracy", trained.val_accuracy)
    trials = study.get_trials(deepcopy=False)
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
) -> pd.DataFrame:
    """Run (or resume) every member's study; returns trials.csv's frame with the chosen trials marked.

    ``callbacks`` (Optuna callbacks) run after every trial of every member study, besides the
    spec's ``[study] callbacks``; with ``workers > 1`` they must be picklable.

    Args:
        workers: member studies run this many at once, all writing to the same storage, on the
            joblib backend of the caller's :func:`~ensprune.parallel.parallel_config` (loky
            processes by default); results do not depend on it.
        search_suffix: which search of the run (see :func:`prepare_run_dir`).
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
        threads=1 if n_jobs > 1 else None,
        callbacks=tuple(callbacks),
    )
    per_member = parallel_map(task, range(len(spec.members)), n_jobs=n_jobs)
    frame = pd.DataFrame([row for rows in per_member for row in rows])
    rd.write_csv(run_dir / rd.TRIALS_CSV, frame)
    return frame


def evaluate_members(
    spec: StudySpec,
    data: Dataset,
    pool: dict[str, TrainedMember],
    trials: pd.DataFrame,
    run_dir: Path,
) -> pd.DataFrame:
    """Measure dense and chosen pruned members; write members.csv and the prediction files."""
    rows = []
    proba: dict[str, list[np.ndarray]] = {"val": [], "test": [], "dense_val": [], "dense_test": []}
    pruned_macs = []
    shape = data.input_shape
    for member, arch, seed in spec.members:
        dense, dense_acc = pool[member].model, pool[member].val_accuracy
        chosen = trials[(trials.member == member) & trials.chosen].iloc[0]
        pruned, _ = load_model(run_dir / chosen.checkpoint)
        save_model(
            run_dir / rd.MEMBERS_DIR / member / "pruned.pt",
            pruned,
            {"member": member, "trial": int(chosen.number)},
        )
        _, pruned_val = evaluate(pruned, data.x_val, data.y_val, device=spec.device)
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
        # Test predictions are written for the report only; nothing upstream of it reads them.
        proba["val"].append(predict_proba(pruned, data.x_val, device=spec.device))
        proba["test"].append(predict_proba(pruned, data.x_test, device=spec.device))
        proba["dense_val"].append(predict_proba(dense, data.x_val, device=spec.device))
        proba["dense_test"].append(predict_proba(dense, data.x_test, device=spec.device))
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
    return frame


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
    """
    from ensprune.report import build_report, format_summary, summary

    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise SpecError(f"workers must be an integer >= 1; got {workers}")
    target = Path(run_dir or spec.run_dir or Path("runs") / spec.name)
    text = spec_text if spec_text is not None else json.dumps(spec.to_dict(), indent=2)
    run_path, url, suffix = prepare_run_dir(
        spec, text, target, storage or spec.storage, spec_file=spec_file
    )
    logger.info("run directory: %s", run_path)
    logger.info("storage: %s", url)

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
    logger.info(
        "data: %s train=%d val=%d test=%d classes=%d",
        spec.data.dataset,
        len(data.y_train),
        len(data.y_val),
        len(data.y_test),
        data.num_classes,
    )
    pool = train_pool(spec, data, run_path, progress)
    rd.mark_stage(run_path, "train")
    trials = search_pool(
        spec,
        data,
        pool,
        run_path,
        url,
        workers or spec.workers,
        search_suffix=suffix,
        callbacks=callbacks,
    )
    rd.mark_stage(run_path, "search")
    evaluate_members(spec, data, pool, trials, run_path)
    rd.mark_stage(run_path, "evaluate")
    build_menus(spec, data, pool, trials, run_path, suffix)
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
