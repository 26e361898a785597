"""Where two workers lose time on this machine: the machine itself, loky, dask, dask's profiler.

The same CPU-bound task (a LeNet-300-100 trained ``--epochs`` epochs on 10,000 random images,
one torch thread) runs

- ``machine``: in one plain process alone, then in two plain processes at once: the machine's
  own two-process throughput (2 x alone / slower of the pair), with no framework at all;
- ``loky``: ``--tasks`` tasks on 2 loky workers;
- ``dask``: the same on a 2-worker ``LocalCluster`` (dask's defaults: stack sampling every 10 ms);
- ``dask-no-profiler``: the same with ``distributed.worker.profile.enabled`` off, which is what
  ensprune's own tasks do to their workers (``ensprune.parallel.stop_dask_profiler``).

Per task it reports wall seconds and the task thread's CPU seconds (``time.thread_time``): wall
above CPU is time the task waited for the CPU or the GIL. ``--repeats`` alternates the
configurations so that a slow spell of the machine hits all of them.

Example::

    OMP_NUM_THREADS=1 python benchmarks/probe_parallel_throughput.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import joblib

SAMPLES = 10_000


def train_task(seed: int, epochs: int) -> dict[str, float]:
    """Train a LeNet-300-100 on random data; wall and this thread's CPU seconds."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 300),
        torch.nn.ReLU(),
        torch.nn.Linear(300, 100),
        torch.nn.ReLU(),
        torch.nn.Linear(100, 10),
    )
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x, y = torch.randn(SAMPLES, 784), torch.randint(0, 10, (SAMPLES,))
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(epochs):
        for start in range(0, SAMPLES, 128):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(
                net(x[start : start + 128]), y[start : start + 128]
            ).backward()
            opt.step()
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.thread_time() - cpu}


def _in_worker(seed: int, epochs: int) -> dict[str, float]:
    from ensprune.parallel import restore_malloc_reuse

    restore_malloc_reuse()  # as ensprune's tasks do (a dask nanny's malloc setting)
    return train_task(seed, epochs)


def machine(epochs: int) -> dict[str, Any]:
    """One plain process alone, then two at once: the machine's two-process throughput."""
    here = str(Path(__file__).resolve().parent)
    code = (
        f"import json, sys; sys.path.insert(0, {here!r}); "
        "from probe_parallel_throughput import train_task; "
        f"print(json.dumps(train_task(0, {epochs})))"
    )

    def run(n: int) -> list[float]:
        procs = [
            subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
            for _ in range(n)
        ]
        return [json.loads(p.communicate()[0])["wall_s"] for p in procs]

    alone, pair = run(1)[0], run(2)
    return {"alone_s": alone, "pair_s": pair, "throughput_2": 2 * alone / max(pair)}


def pooled(label: str, tasks: int, epochs: int) -> dict[str, Any]:
    """``tasks`` tasks on two workers of ``label``'s kind; mean per-task wall and CPU seconds."""
    calls = [joblib.delayed(_in_worker)(seed, epochs) for seed in range(tasks)]
    if label == "loky":
        results = joblib.Parallel(n_jobs=2)(calls)
    else:
        import dask
        from dask.distributed import Client, LocalCluster

        config = {"distributed.worker.profile.enabled": label == "dask"}
        with (
            dask.config.set(config),
            LocalCluster(
                processes=True,
                host="127.0.0.1",
                n_workers=2,
                threads_per_worker=1,
                dashboard_address=None,
            ) as cluster,
            Client(cluster),
            joblib.parallel_config(backend="dask"),
        ):
            results = joblib.Parallel(n_jobs=2)(calls)
    return {
        "task_wall_s": statistics.mean(r["wall_s"] for r in results),
        "task_cpu_s": statistics.mean(r["cpu_s"] for r in results),
    }


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=8, help="tasks per pooled configuration")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per task")
    args = parser.parse_args()
    for repeat in range(args.repeats):
        row: dict[str, Any] = {"repeat": repeat, "machine": machine(args.epochs)}
        for label in ("loky", "dask", "dask-no-profiler"):
            row[label] = pooled(label, args.tasks, args.epochs)
        print(json.dumps(_rounded(row)), flush=True)


if __name__ == "__main__":
    main()
