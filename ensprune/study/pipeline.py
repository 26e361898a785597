"""The whole flow: spec -> data -> pool -> per-member searches -> predictions -> selection -> report.

Every stage writes its results into the run directory before the next one starts, so an
interrupted run resumes where it stopped: trained members and completed trials are reused.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch
from joblib import Parallel, delayed

from ensprune import __version__
from ensprune.data import Dataset, load_dataset
from ensprune.ensemble import PredictionSet
from ensprune.errors import CheckpointError, RunDirError, SpecError
from ensprune.models import (
    TrainConfig,
    build_seeded,
    count_macs,
    count_parameters,
    evaluate,
    load_model,
    measure_latency_ms,
    predict_proba,
    save_model,
    train_model,
)
from ensprune.study.search import (
    MemberObjective,
    SplitData,
    TrainedMember,
    choose_operating_point,
    make_sampler,
    pareto_front,
    run_member_study,
)
from ensprune.study.selection import select_team, write_selection
from ensprune.study.spec import StudySpec
from ensprune.study.storage import default_storage_url, open_storage

Log = Callable[[str], None]
RUN_FORMAT = "ensprune-run/1"
# Sections that decide what the stored checkpoints and trials mean; a change there makes the run
# directory incompatible. Trial counts and selection settings may change between resumes.
_COMPAT_SECTIONS = ("seed", "data", "pool")
LATENCY_BATCH = 256
EARLY_EPOCH = 1  # the early checkpoint kept for lottery-ticket rewinding


@dataclass(frozen=True)
class RunResult:
    """Where a finished run put its results, and its terminal summary."""

    run_dir: Path
    storage_url: str
    report_path: Path
    summary: dict[str, Any]
    summary_text: str


def _quiet(_: str) -> None:
    pass


def _search_fingerprint(spec: StudySpec) -> str:
    search = dataclasses.asdict(spec.search)
    search.pop("trials")
    search.pop("accuracy_tolerance")
    if search["distill"] == 0:  # no distillation: T is unused, and run dirs from before it match
        search.pop("distill")
        search.pop("temperature")
    for knob, default in (("lr_schedule", "constant"), ("clean_epochs", 0)):
        if search[knob] == default:  # unset: run dirs from before the knob still match
            search.pop(knob)
    return json.dumps(search, sort_keys=True)


def prepare_run_dir(
    spec: StudySpec, spec_text: str, run_dir: Path, storage: str | None
) -> tuple[Path, str]:
    """Create the run directory, or check that an existing one belongs to this spec.

    Returns:
        (run_dir, storage URL). An existing run directory is reused (resume) when its data and
        pool settings match; otherwise it is refused, never overwritten.
    """
    run_dir = run_dir.resolve()
    meta_path = run_dir / "run.json"
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
        if meta.get("search") != _search_fingerprint(spec):
            raise RunDirError(
                f"run directory {run_dir} holds searches over a different search space; "
                "choose another --run-dir (only [search] trials and accuracy_tolerance may change on resume)"
            )
        url = storage or meta["storage"]
        if storage and storage != meta["storage"]:
            raise RunDirError(
                f"run directory {run_dir} stores its studies in {meta['storage']}, not {storage}; "
                "drop --storage to resume it, or choose another --run-dir"
            )
    else:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunDirError(
                f"{run_dir} exists and is not an ensprune run directory; choose another --run-dir"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        url = storage or default_storage_url(run_dir)
        meta = {
            "format": RUN_FORMAT,
            "name": spec.name,
            "storage": url,
            "dataset": spec.data.dataset,
            "ensprune_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "compat": spec.fingerprint(*_COMPAT_SECTIONS),
            "search": _search_fingerprint(spec),
            "stages": {},
        }
    meta["voting"] = spec.selection.voting
    _write_json(meta_path, meta)
    (run_dir / "spec.toml").write_text(spec_text, encoding="utf-8")
    return run_dir, url


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


def _mark_stage(run_dir: Path, stage: str) -> None:
    meta_path = run_dir / "run.json"
    meta = json.loads(meta_path.read_text())
    meta.setdefault("stages", {})[stage] = "done"
    _write_json(meta_path, meta)


def _member_seed(spec: StudySpec, index: int) -> int:
    return spec.seed * 10_007 + index


def _pool_config(spec: StudySpec, seed: int) -> TrainConfig:
    pool = spec.pool
    return TrainConfig(
        epochs=pool.epochs,
        batch_size=pool.batch_size,
        lr=pool.lr,
        weight_decay=pool.weight_decay,
        optimizer=pool.optimizer,
        patience=pool.patience,
        device=spec.device,
        seed=seed,
        augment=pool.augment,
    )


def train_pool(
    spec: StudySpec, data: Dataset, run_dir: Path, log: Log, progress: bool
) -> dict[str, TrainedMember]:
    """Train (or reload) every member, in pool order."""
    pool: dict[str, TrainedMember] = {}
    for member, arch, seed in spec.members:
        folder = run_dir / "members" / member
        # θ₀ is a pure function of (architecture, shape, seed), so it is rebuilt rather than stored.
        initial = build_seeded(arch, data.input_shape, data.num_classes, seed)
        initial_state = {k: v.clone() for k, v in initial.state_dict().items()}
        if (folder / "dense.pt").is_file():
            try:
                model, meta = load_model(folder / "dense.pt")
                early = _load_state(folder / "early.pt")
            except CheckpointError as exc:
                raise CheckpointError(f"{exc} (member {member})") from None
            pool[member] = TrainedMember(model, float(meta["val_accuracy"]), initial_state, early)
            log(f"[{member}] dense model reused from {folder.relative_to(run_dir)}/dense.pt")
            continue
        model = initial
        start = time.perf_counter()
        history = train_model(
            model,
            data.x_train,
            data.y_train,
            data.x_val,
            data.y_val,
            _pool_config(spec, seed),
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
        log(
            f"[{member}] trained {history.epochs_run} epochs in {time.perf_counter() - start:.1f}s: "
            f"val_acc={val_acc:.4f}"
        )
    return pool


def _save_state(path: Path, state: dict[str, torch.Tensor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp)
    tmp.replace(path)


def _load_state(path: Path) -> dict[str, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises several types for a damaged file
        raise CheckpointError(f"{path} is corrupt; delete it and re-run to recreate it") from None
    return dict(state)


def _search_member(
    spec: StudySpec,
    index: int,
    trained: TrainedMember,
    split: SplitData,
    run_dir: Path,
    storage_url: str,
    log: Log,
    threads: int | None,
) -> list[dict[str, Any]]:
    """Run (or resume) one member's study; returns its rows of trials.csv."""
    # Worker processes start with Optuna's INFO logging; our own per-trial lines are enough.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if threads is not None:
        torch.set_num_threads(
            threads
        )  # one intra-op thread per worker process: no oversubscription
    member = spec.members[index][0]
    seed = _member_seed(spec, index)
    study_name = f"{spec.name}.{member}"
    objective = MemberObjective(
        spec, member, trained, split, run_dir / "members" / member / "trials", seed
    )
    study = run_member_study(
        open_storage(storage_url),
        study_name,
        objective,
        spec.search.trials,
        make_sampler(spec.search.sampler, seed),
        log,
    )
    study.set_user_attr("dense_val_accuracy", trained.val_accuracy)
    trials = study.get_trials(deepcopy=False)
    chosen = choose_operating_point(trials, trained.val_accuracy, spec.search.accuracy_tolerance)
    front = {t.number for t in pareto_front(trials)}
    return [
        {
            "member": member,
            "study_name": study_name,
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
            "checkpoint": t.user_attrs.get("checkpoint", ""),
        }
        for t in trials
    ]


def search_pool(
    spec: StudySpec,
    data: Dataset,
    pool: dict[str, TrainedMember],
    run_dir: Path,
    storage_url: str,
    log: Log,
    workers: int = 1,
) -> pd.DataFrame:
    """Run (or resume) every member's study; returns trials.csv's frame with the chosen trials marked.

    Args:
        workers: member studies run in this many processes at once (joblib/loky), all writing
            to the same storage; results do not depend on it.
    """
    split = SplitData(data.x_train, data.y_train, data.x_val, data.y_val)
    # Create the storage's schema here, once: worker processes that open a fresh SQLite/RDB storage
    # at the same moment race on Optuna's schema tables (UNIQUE constraint on alembic_version).
    open_storage(storage_url)
    jobs = [
        delayed(_search_member)(
            spec, index, pool[member], split, run_dir, storage_url, log, 1 if workers > 1 else None
        )
        for index, (member, _, _) in enumerate(spec.members)
    ]
    per_member = Parallel(n_jobs=min(workers, len(jobs)), backend="loky")(jobs)
    frame = pd.DataFrame([row for rows in per_member for row in rows])
    frame.to_csv(run_dir / "trials.csv", index=False)
    return frame


def evaluate_members(
    spec: StudySpec,
    data: Dataset,
    pool: dict[str, TrainedMember],
    trials: pd.DataFrame,
    run_dir: Path,
    log: Log,
) -> pd.DataFrame:
    """Measure dense and chosen pruned members; write members.csv and the prediction files."""
    rows = []
    proba: dict[str, list[np.ndarray]] = {"val": [], "test": [], "dense_val": [], "dense_test": []}
    pruned_macs = []
    shape = data.input_shape
    for member, arch, seed in spec.members:
        dense, dense_acc = pool[member].model, pool[member].val_accuracy
        chosen = trials[(trials.member == member) & trials.chosen].iloc[0]
        pruned, _ = load_model(run_dir / "members" / member / "trials" / chosen.checkpoint)
        save_model(
            run_dir / "members" / member / "pruned.pt",
            pruned,
            {"member": member, "trial": int(chosen.number)},
        )
        _, pruned_val = evaluate(pruned, data.x_val, data.y_val, device=spec.device)
        dense_counts, pruned_counts = count_parameters(dense), count_parameters(pruned)
        macs = count_macs(pruned, shape, effective=True)
        pruned_macs.append(macs)
        rows.append(
            {
                "member": member,
                "architecture": arch,
                "seed": seed,
                "dense_val_accuracy": dense_acc,
                "dense_params": dense_counts.prunable_nonzero,
                "dense_macs": count_macs(dense, shape),
                "dense_latency_ms": measure_latency_ms(
                    dense, shape, batch_size=LATENCY_BATCH, repeats=10
                ),
                "method": chosen.method,
                "method_params": chosen.params,
                "target_sparsity": chosen.target_sparsity,
                "sparsity": 1.0 - pruned_counts.prunable_nonzero / dense_counts.prunable,
                "pruned_val_accuracy": pruned_val,
                "pruned_params": pruned_counts.prunable_nonzero,
                "pruned_macs": macs,
                "pruned_latency_ms": measure_latency_ms(
                    pruned, shape, batch_size=LATENCY_BATCH, repeats=10
                ),
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
        log(
            f"[{member}] chosen trial {int(chosen.number)}: {chosen.method} "
            f"sparsity={rows[-1]['sparsity']:.3f} val_acc {dense_acc:.4f} -> {pruned_val:.4f}"
        )
    names = tuple(m for m, _, _ in spec.members)
    pred_dir = run_dir / "predictions"
    for key, arrays in proba.items():
        y = data.y_val if key.endswith("val") else data.y_test
        cost = np.asarray(pruned_macs, dtype=float) if not key.startswith("dense") else None
        PredictionSet(np.stack(arrays), y, names=names, cost=cost).save(pred_dir / f"{key}.npz")
    frame = pd.DataFrame(rows)
    frame.to_csv(run_dir / "members.csv", index=False)
    return frame


def run_study(
    spec: StudySpec,
    *,
    spec_text: str | None = None,
    run_dir: str | Path | None = None,
    storage: str | None = None,
    data_dir: str | Path | None = None,
    download: bool = True,
    progress: bool = True,
    log: Log | None = print,
    workers: int | None = None,
) -> RunResult:
    """Run the whole flow of ``spec`` (resuming whatever an earlier run of it finished).

    Args:
        spec_text: the spec file's text, copied into the run directory (defaults to a rendering).
        run_dir: where results go; defaults to the spec's ``run_dir`` or ``runs/<name>``.
        storage: Optuna storage URL; defaults to the spec's, else SQLite inside the run directory.
        data_dir: dataset directory (else ``ENSPRUNE_DATA_DIR``, else ``./data``).
        download: download missing dataset files (MD5-verified) into the data directory.
        progress: progress bars for training; ``log=None`` silences the per-trial lines too.
        workers: member studies searched in parallel processes (default: the spec's).
    """
    from ensprune.report import build_report, format_summary, summary

    emit: Log = log or _quiet
    if workers is not None and workers < 1:
        raise SpecError(f"workers must be an integer >= 1; got {workers}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    target = Path(run_dir or spec.run_dir or Path("runs") / spec.name)
    text = spec_text if spec_text is not None else json.dumps(spec.to_dict(), indent=2)
    run_path, url = prepare_run_dir(spec, text, target, storage or spec.storage)
    emit(f"run directory: {run_path}\nstorage: {url}")

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
    emit(
        f"data: {spec.data.dataset} train={len(data.y_train)} val={len(data.y_val)} "
        f"test={len(data.y_test)} classes={data.num_classes}"
    )
    pool = train_pool(spec, data, run_path, emit, progress)
    _mark_stage(run_path, "train")
    trials = search_pool(spec, data, pool, run_path, url, emit, workers or spec.workers)
    _mark_stage(run_path, "search")
    evaluate_members(spec, data, pool, trials, run_path, emit)
    _mark_stage(run_path, "evaluate")
    selection = select_team(
        PredictionSet.load(run_path / "predictions" / "val.npz"), spec.selection, spec.seed
    )
    write_selection(selection, spec.selection, run_path)
    emit(
        f"selected team ({spec.selection.selector}, {spec.selection.metric}): {', '.join(selection.names)}"
    )
    _mark_stage(run_path, "select")
    report_path = build_report(run_path)
    _mark_stage(run_path, "report")
    facts = summary(run_path)
    return RunResult(run_path, url, report_path, facts, format_summary(facts))
