"""Member-study throughput: trials per minute with 1 and 2 local workers and a 2-worker dask
LocalCluster, the framework's overhead per trial, and trial pruning on against off.

One pool of MNIST members is trained once; every configuration then searches it from scratch
(fresh SQLite storage, same seed, same number of trials per member):

- ``local-1``, ``local-2``: ``workers`` member studies at once in loky processes;
- ``dask-2``: the same on a ``dask.distributed.LocalCluster`` of 2 worker processes;
- ``pruning-median``: ``local-1`` with ``[search] pruner = "median"``.

Overhead per trial = (wall time of the ``local-1`` search / trials) - (time the trials spent
pruning, fine-tuning and evaluating, from each trial's ``work_s`` record), as a share of the
wall time per trial: sampling, storage writes, checkpoint saving, logging and dispatch.

Full run (the numbers in RESULTS.md)::

    OMP_NUM_THREADS=1 python benchmarks/bench_study_scale.py --data-dir $ENSPRUNE_DATA_DIR --write

Proof at a reduced setting (about 3 minutes)::

    python benchmarks/bench_study_scale.py --data-dir $ENSPRUNE_DATA_DIR --max-train 2000 \\
        --trials 3 --epochs 1 --finetune-epochs 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import _results


def make_spec(args: argparse.Namespace) -> Any:
    from ensprune.study import StudySpec

    return StudySpec.from_dict(
        {
            "study": {"name": "scale", "seed": 0},
            "data": {"dataset": "mnist", "max_train": args.max_train, "max_test": 2000},
            "pool": {
                "architectures": ["lenet300", "model_a"],
                "seeds": list(range(args.members // 2)),
                "epochs": args.epochs,
                "batch_size": 128,
            },
            "search": {
                "methods": ["magnitude", "lamp", "random"],
                "sparsity": [0.5, 0.98],
                "trials": args.trials,
                "finetune_epochs": args.finetune_epochs,
            },
            "selection": {"selector": "hq", "metric": "gd", "max_size": 3},
        }
    )


STORAGE = "sqlite"  # or "journal" (--storage): which storage every configuration searches on


def storage_url(run_dir: Path) -> str:
    from ensprune.storage import default_storage_url

    return str(run_dir / "study.log") if STORAGE == "journal" else default_storage_url(run_dir)


def search(spec: Any, data: Any, pool: Any, workers: int, scheduler: str | None) -> dict:
    """One search of the whole pool on a fresh storage; its wall time and trial records."""
    from contextlib import nullcontext

    from ensprune.parallel import dask_scheduler
    from ensprune.study.pipeline import search_pool

    run_dir = Path(tempfile.mkdtemp(prefix="ensprune-scale-"))
    context = dask_scheduler(scheduler) if scheduler else nullcontext()
    with context:
        start = time.perf_counter()
        frame = search_pool(spec, data, pool, run_dir, storage_url(run_dir), workers)
        wall = time.perf_counter() - start
    return {"wall": wall, "frame": frame, "run_dir": run_dir}


def work_seconds(run_dir: Path, frame: Any) -> float:
    """Seconds the trials spent pruning, fine-tuning and evaluating (their ``work_s`` records)."""
    import optuna

    from ensprune.storage import open_storage

    storage = open_storage(storage_url(run_dir))
    total = 0.0
    for name in frame.study_name.unique():
        for t in optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False):
            total += sum(t.user_attrs.get("work_s", {}).values())
    return total


def chosen_summary(frame: Any) -> dict:
    chosen = frame[frame.chosen]
    return {
        "mean_chosen_sparsity": round(float(chosen.sparsity.mean()), 4),
        "mean_chosen_val_accuracy": round(float(chosen.val_accuracy.mean()), 4),
        "pruned_trials": int((frame.state == "PRUNED").sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--members", type=int, default=6, help="pool size (even)")
    parser.add_argument("--trials", type=int, default=12, help="trials per member study")
    parser.add_argument("--max-train", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=4, help="pool training epochs")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--storage", choices=["sqlite", "journal"], default="sqlite")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    global STORAGE
    STORAGE = args.storage
    logging.basicConfig(level=logging.WARNING)

    import dask
    import optuna
    from dask.distributed import LocalCluster

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # workers mirror it

    from ensprune.data import load_dataset
    from ensprune.study.pipeline import train_pool

    spec = make_spec(args)
    data = load_dataset(
        "mnist",
        data_dir=args.data_dir,
        seed=0,
        max_train=args.max_train,
        max_test=2000,
        download=False,
        progress=False,
    )
    pool_dir = Path(tempfile.mkdtemp(prefix="ensprune-scale-pool-"))
    started = time.perf_counter()
    pool = train_pool(spec, data, pool_dir, progress=False)
    print(f"pool of {len(pool)} trained in {time.perf_counter() - started:.0f} s", flush=True)

    n_trials = args.trials * len(pool)
    rows: list[dict] = []

    def record(label: str, result: dict) -> None:
        row = {
            "config": label,
            "trials": n_trials,
            "wall_s": round(result["wall"], 1),
            "trials_per_min": round(n_trials / result["wall"] * 60, 2),
            **chosen_summary(result["frame"]),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    serial = search(spec, data, pool, 1, None)
    record("local-1", serial)
    work = work_seconds(serial["run_dir"], serial["frame"])
    per_trial = serial["wall"] / n_trials
    overhead = max(per_trial - work / n_trials, 0.0)
    record("local-2", search(spec, data, pool, 2, None))
    # a worker busy training on a loaded machine can miss heartbeats; do not restart it for that
    with (
        dask.config.set({"distributed.scheduler.worker-ttl": "30 minutes"}),
        LocalCluster(
            processes=True,
            host="127.0.0.1",
            n_workers=2,
            threads_per_worker=1,
            dashboard_address=None,
        ) as cluster,
    ):
        record("dask-2", search(spec, data, pool, 2, cluster.scheduler_address))
    pruned_spec = dataclasses.replace(
        spec, search=dataclasses.replace(spec.search, pruner="median")
    )
    record("pruning-median (local-1)", search(pruned_spec, data, pool, 1, None))

    base = rows[0]["trials_per_min"]
    summary = {
        "speedup_local_2": round(rows[1]["trials_per_min"] / base, 2),
        "speedup_dask_2": round(rows[2]["trials_per_min"] / base, 2),
        "overhead_s_per_trial": round(overhead, 3),
        "overhead_share": round(overhead / per_trial, 4),
    }
    print(json.dumps(summary), flush=True)
    if args.write:
        write(args, rows, summary)


def write(args: argparse.Namespace, rows: list[dict], summary: dict) -> None:
    header = "| config | trials | wall (s) | trials/min | pruned trials | mean chosen sparsity | mean chosen val acc |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['trials']} | {r['wall_s']} | {r['trials_per_min']} | "
            f"{r['pruned_trials']} | {r['mean_chosen_sparsity']} | {r['mean_chosen_val_accuracy']} |"
        )
    body = "\n".join(
        [
            f"`{_results.command_line()}` ({_results.today()}; {_results.machine_info()})",
            "",
            f"A pool of {args.members} MNIST members (LeNet-300-100 and model_a), "
            f"{args.max_train} training images, {args.trials} trials per member, "
            f"{args.finetune_epochs} fine-tuning epochs per trial; every configuration "
            f"searches the same trained pool from a fresh {args.storage} storage with the same "
            "seed.",
            "",
            *lines,
            "",
            f"Speed-up with 2 local workers: {summary['speedup_local_2']}x; with a 2-worker dask "
            f"LocalCluster: {summary['speedup_dask_2']}x. Framework overhead per trial "
            f"(everything but pruning, fine-tuning and evaluation): "
            f"{summary['overhead_s_per_trial']} s, {summary['overhead_share']:.1%} of a trial.",
        ]
    )
    _results.update_section("## Study scale: workers, dask and trial pruning (issue 15)", body)


if __name__ == "__main__":
    main()
