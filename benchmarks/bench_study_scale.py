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
                "architectures": args.architectures,
                "seeds": list(range(args.members // len(args.architectures))),
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


def work_seconds(run_dir: Path, frame: Any) -> list[float]:
    """Per member study, in the pool's order: seconds its trials spent pruning, fine-tuning and
    evaluating (their ``work_s`` records)."""
    import optuna

    from ensprune.storage import open_storage

    storage = open_storage(storage_url(run_dir))
    per_study = []
    for name in frame.study_name.unique():
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        per_study.append(sum(sum(t.user_attrs.get("work_s", {}).values()) for t in trials))
    return per_study


def ideal_speedup(work: list[float], workers: int) -> float:
    """The best speed-up of whole member studies on ``workers`` workers: total work over the
    longest-processing-time-first schedule's makespan (a study is never split)."""
    loads = [0.0] * workers
    for w in sorted(work, reverse=True):
        loads[loads.index(min(loads))] += w
    return sum(work) / max(loads)


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
    parser.add_argument(
        "--architectures",
        nargs="+",
        default=["lenet300", "model_a"],
        help="the pool's architectures (members = seeds x architectures)",
    )
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=["local-2", "dask-2", "pruning-median"],
        default=["local-2", "dask-2", "pruning-median"],
        help="configurations to run after local-1 (the baseline, always run)",
    )
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
            # the trials' own work (pruning, fine-tuning, evaluation) wherever they ran: equal
            # across configurations unless the workers themselves are slower (dask: issue 15)
            "work_s": round(sum(work_seconds(result["run_dir"], result["frame"])), 1),
            **chosen_summary(result["frame"]),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    serial = search(spec, data, pool, 1, None)
    record("local-1", serial)
    member_work = work_seconds(serial["run_dir"], serial["frame"])
    per_trial = serial["wall"] / n_trials
    overhead = max(per_trial - sum(member_work) / n_trials, 0.0)
    if "local-2" in args.configs:
        record("local-2", search(spec, data, pool, 2, None))
    if "dask-2" in args.configs:
        # a worker busy training on a loaded machine can miss heartbeats; do not restart it
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
    if "pruning-median" in args.configs:
        pruned_spec = dataclasses.replace(
            spec, search=dataclasses.replace(spec.search, pruner="median")
        )
        record("pruning-median (local-1)", search(pruned_spec, data, pool, 1, None))

    base = rows[0]["trials_per_min"]
    speedups = {r["config"]: r["trials_per_min"] / base for r in rows}
    summary = {
        "speedup_local_2": round(speedups.get("local-2", float("nan")), 2),
        "speedup_dask_2": round(speedups.get("dask-2", float("nan")), 2),
        "ideal_speedup_2": round(ideal_speedup(member_work, 2), 2),
        "member_work_s": [round(w, 1) for w in member_work],
        "overhead_s_per_trial": round(overhead, 3),
        "overhead_share": round(overhead / per_trial, 4),
    }
    print(json.dumps(summary), flush=True)
    if args.write:
        write(args, rows, summary)


def write(args: argparse.Namespace, rows: list[dict], summary: dict) -> None:
    header = "| config | trials | wall (s) | trials/min | trial work (s) | pruned trials | mean chosen sparsity | mean chosen val acc |"
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['trials']} | {r['wall_s']} | {r['trials_per_min']} | "
            f"{r['work_s']} | "
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
            "seed. Trial work: the seconds all trials spent pruning, fine-tuning and "
            "evaluating (their `work_s`), wherever they ran.",
            "",
            *lines,
            "",
            f"Speed-up with 2 local workers: {summary['speedup_local_2']}x; with a 2-worker dask "
            f"LocalCluster: {summary['speedup_dask_2']}x; the most whole member studies allow on "
            f"2 workers (total work over the best schedule's makespan, from each study's measured "
            f"work {summary['member_work_s']} s): {summary['ideal_speedup_2']}x. "
            f"Framework overhead per trial "
            f"(everything but pruning, fine-tuning and evaluation): "
            f"{summary['overhead_s_per_trial']} s, {summary['overhead_share']:.1%} of a trial.",
        ]
    )
    _results.update_section("## Study scale: workers, dask and trial pruning (issue 15)", body)


if __name__ == "__main__":
    main()
