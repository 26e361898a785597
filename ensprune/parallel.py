"""Parallel execution through joblib: loky processes by default, any joblib backend on request.

Library code never picks a backend itself; it calls :func:`parallel_map`, which runs in the
current process when one job is asked for (no pickling, no start-up cost) and otherwise hands
the work to :class:`joblib.Parallel`. Which backend that uses is decided by the caller through
:func:`parallel_config`, a passthrough to :func:`joblib.parallel_config`, so the same code can
spread over a dask or ray cluster:

    >>> from dask.distributed import Client             # doctest: +SKIP
    >>> client = Client("tcp://scheduler:8786")         # doctest: +SKIP
    >>> with parallel_config(backend="dask"):           # doctest: +SKIP
    ...     selection = GeneticSelector(n_jobs=-1).select(preds)

:func:`dask_scheduler` does that connection and configuration in one step (``ensprune run
--scheduler tcp://HOST:8786``); it needs the ``dask`` extra (``pip install 'ensprune[dask]'``).

Results never depend on the number of jobs: work is split into an ordered list of tasks and the
results come back in that order.

Log messages of worker processes reach the caller's handlers (``--log-file``, the console at its
own level), whole records at a time: loky and multiprocessing workers put them on a queue that the
caller drains (:func:`forward_worker_logs`, :meth:`WorkerLogs.installed`); a dask cluster's workers
send them through the client (:func:`dask_scheduler` calls ``Client.forward_logging``).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import platform
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from logging.handlers import QueueHandler, QueueListener
from multiprocessing.managers import SyncManager
from typing import Any, TypeVar

import joblib
from joblib._parallel_backends import LokyBackend, MultiprocessingBackend

from ensprune.errors import SpecError

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_BACKEND = "loky"

__all__ = [
    "DEFAULT_BACKEND",
    "WorkerLogs",
    "dask_scheduler",
    "forward_worker_logs",
    "malloc_thresholds",
    "parallel_config",
    "parallel_map",
    "resolve_n_jobs",
    "restore_malloc_reuse",
    "stop_dask_profiler",
]
CONNECT_TIMEOUT_S = 10
logger = logging.getLogger("ensprune.parallel")
FORWARDED_LOGGER = "ensprune"


def resolve_n_jobs(n_jobs: int | None) -> int:
    """The number of workers ``n_jobs`` stands for, joblib style.

    ``None`` means the value set by an enclosing :func:`parallel_config` (1 when there is none),
    a positive number is taken as is, and ``-1`` means all CPUs, ``-2`` all but one, and so on.

    Raises:
        SpecError: for ``n_jobs == 0``.
    """
    if n_jobs is None:
        configured = joblib.parallel.get_active_backend()[1]
        return 1 if configured is None else resolve_n_jobs(int(configured))
    if n_jobs == 0:
        raise SpecError(
            "n_jobs must be a positive number of workers or negative (-1 = all CPUs); got 0"
        )
    if n_jobs > 0:
        return int(n_jobs)
    return max(1, (os.cpu_count() or 1) + 1 + int(n_jobs))


@contextmanager
def parallel_config(
    backend: str | None = None, *, n_jobs: int | None = None, **kwargs: Any
) -> Iterator[None]:
    """Set joblib's backend and default worker count for the code inside the block.

    A thin passthrough to :func:`joblib.parallel_config`: ``backend`` is any joblib backend
    (``"loky"``, ``"threading"``, ``"multiprocessing"``, or ``"dask"``/``"ray"`` once their
    joblib integration is registered), ``kwargs`` go to joblib unchanged.
    """
    # joblib marks "not given" with its own sentinel; pass only what the caller set
    if backend is not None:
        kwargs["backend"] = backend
    if n_jobs is not None:
        kwargs["n_jobs"] = n_jobs
    with joblib.parallel_config(**kwargs):
        yield


@contextmanager
def dask_scheduler(address: str) -> Iterator[None]:
    """Run the joblib work inside the block on the dask cluster whose scheduler is at ``address``.

    The cluster's workers must import the same ensprune and see the same files (run directory,
    data) at the same paths, e.g. on a shared file system.

    Raises:
        SpecError: dask's distributed scheduler is not installed, or the scheduler is unreachable
            within ten seconds (one line each, naming the fix).
    """
    try:
        from dask.distributed import Client
    except ImportError:
        raise SpecError(
            f"scheduler {address!r} needs dask's distributed scheduler, which is not installed; "
            "pip install 'ensprune[dask]'"
        ) from None
    try:
        client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError(
            f"cannot reach the dask scheduler at {address!r} ({reason}); start it with "
            f"`dask scheduler` and workers with `dask worker {address}`, or drop the scheduler"
        ) from None
    try:
        # the workers' "ensprune" records are handled by this process's loggers (log file, console)
        client.forward_logging(FORWARDED_LOGGER)
        with client.as_current(), joblib.parallel_config(backend="dask"):
            yield
    finally:
        client.close()


# glibc's mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc's own ceiling for its dynamic mmap threshold on 64-bit, and its trim rule (twice that)
REUSED_ALLOCATION_BYTES = 32 * 2**20
KEPT_FREE_BYTES = 2 * REUSED_ALLOCATION_BYTES


def restore_malloc_reuse() -> bool:
    """Let glibc reuse freed memory in this process again when the environment turned it off.

    A dask nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (its config
    ``distributed.nanny.pre-spawn-environ``), so that freed memory goes back to the system at
    once. Setting it also freezes glibc's mmap threshold at 128 KiB: every tensor larger than
    that (a LeNet-300-100 weight, a batch of activations) becomes a fresh ``mmap``, zeroed page
    by page, and is unmapped when freed. Training then spends a third of its CPU time in page
    faults (measured: 390,000 instead of 500 for two trials; benchmarks/RESULTS.md). This sets
    the thresholds glibc's dynamic rule would reach on its own (32 MiB blocks reused, 64 MiB
    kept free), so tensors come from the heap again.

    Acts only under glibc and only when ``MALLOC_TRIM_THRESHOLD_`` is set lower than that;
    returns whether it changed anything (then :func:`malloc_thresholds` says what it set).
    """
    trim = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    if trim is None or platform.libc_ver()[0] != "glibc":
        return False
    try:
        if int(trim) >= KEPT_FREE_BYTES:
            return False
    except ValueError:
        pass  # glibc reads a malformed value as some number; set ours
    libc = ctypes.CDLL(None)
    done = libc.mallopt(_M_MMAP_THRESHOLD, REUSED_ALLOCATION_BYTES) == 1
    done = libc.mallopt(_M_TRIM_THRESHOLD, KEPT_FREE_BYTES) == 1 and done
    if done:
        _malloc_set[:] = [REUSED_ALLOCATION_BYTES, KEPT_FREE_BYTES]
        logger.debug(
            "MALLOC_TRIM_THRESHOLD_=%s: malloc thresholds raised (mmap %d B, trim %d B)",
            trim,
            REUSED_ALLOCATION_BYTES,
            KEPT_FREE_BYTES,
        )
    return done


_malloc_set: list[int] = []  # what restore_malloc_reuse set in this process


def malloc_thresholds() -> tuple[int, int] | None:
    """(mmap threshold, trim threshold) that :func:`restore_malloc_reuse` set in this process,
    or ``None`` when it set nothing (glibc's own rule, or the environment's, applies)."""
    return (_malloc_set[0], _malloc_set[1]) if _malloc_set else None


KEEP_PROFILER_VARIABLE = "ENSPRUNE_KEEP_DASK_PROFILER"
_PROFILER_CALLBACKS = ("profile", "profile-cycle")


def stop_dask_profiler() -> bool:
    """Stop the statistical profiler of the dask worker this code runs in, if any.

    A dask worker samples the stacks of its threads every 10 ms from its event loop (config
    ``distributed.worker.profile``), for the dashboard's profile page. Each sample holds the GIL
    while it walks the stacks, and on a machine whose cores are all busy training it takes CPU
    time from the task: with two CPU-bound training tasks on two cores, a task waited 6-9 % of
    its time with it and 4-5 % without, and ran up to 12 % longer (benchmarks/RESULTS.md,
    "Study scale"). The stop is scheduled on the worker's event loop (thread-safe) and lasts
    for the worker process's life. Set the environment variable
    ``ENSPRUNE_KEEP_DASK_PROFILER=1`` in the workers to keep the profiler.

    Returns whether a running profiler was asked to stop (False outside a dask worker).
    """
    if "distributed" not in sys.modules or os.environ.get(KEEP_PROFILER_VARIABLE):
        return False  # not in a dask worker (never import dask here), or the user keeps it
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return False
    running = [
        callback
        for name in _PROFILER_CALLBACKS
        if (callback := worker.periodic_callbacks.get(name)) is not None and callback.is_running()
    ]
    if not running:
        return False

    def stop() -> None:
        for callback in running:
            callback.stop()

    worker.loop.add_callback(stop)
    logger.debug("stopped the dask worker's statistical profiler (%s)", worker.address)
    return True


def parallel_map(func: Callable[[T], R], items: Iterable[T], n_jobs: int | None = None) -> list[R]:
    """``[func(x) for x in items]``, in order, on ``n_jobs`` workers.

    With one worker the loop runs here; otherwise joblib runs it on the active backend
    (loky processes unless a :func:`parallel_config` block says otherwise). ``func`` and the
    items must then be picklable; large numpy arrays are memory-mapped by joblib, not copied.
    """
    jobs = resolve_n_jobs(n_jobs)
    tasks = list(items)
    if jobs == 1 or len(tasks) <= 1:
        return [func(x) for x in tasks]
    # backend=None: joblib uses the enclosing parallel_config's backend, else its default, loky
    runner = joblib.Parallel(n_jobs=jobs)
    return list(runner(joblib.delayed(func)(x) for x in tasks))


class _Redispatch(logging.Handler):
    """Hands a worker's record to the caller's logger of the same name (and so its handlers)."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


class _QuietQueueHandler(QueueHandler):
    """A QueueHandler that drops a record it cannot send instead of printing a traceback: the
    queue is gone only when the caller stops (Ctrl-C, killed), and then the line has no reader."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


@dataclass(frozen=True)
class WorkerLogs:
    """Where a worker process sends its log records; made by :func:`forward_worker_logs`.

    Picklable: pass it to the task, and run the task's body inside :meth:`installed`.
    """

    queue: Any  # a multiprocessing Manager's queue proxy, reachable from any local process
    level: int  # the caller's effective level: what the caller would not show is not sent
    caller_pid: int
    logger_name: str = FORWARDED_LOGGER

    @contextmanager
    def installed(self) -> Iterator[None]:
        """In the worker: for the block, the logger's records go to the caller, and only there.

        The handler is removed afterwards, since loky reuses a worker for the next call, whose
        queue is another one. In the caller's own process it changes nothing.
        """
        if os.getpid() == self.caller_pid:  # its records would go round the queue forever
            yield
            return
        logger = logging.getLogger(self.logger_name)
        saved = logger.handlers[:], logger.level, logger.propagate
        # QueueHandler formats the message into the record (no half lines, no unpicklable args)
        logger.handlers = [_QuietQueueHandler(self.queue)]
        logger.setLevel(self.level)
        logger.propagate = False  # the worker's own handlers would print it a second time
        try:
            yield
        finally:
            logger.handlers, logger.propagate = saved[0], saved[2]
            logger.setLevel(saved[1])


@contextmanager
def forward_worker_logs(
    n_jobs: int,
    logger_name: str = FORWARDED_LOGGER,
    *,
    server_init: Callable[[], None] | None = None,
) -> Iterator[WorkerLogs | None]:
    """For the block, records that workers of the active joblib backend log to ``logger_name``
    (and its children) are handled here, in order of arrival, one whole record at a time.

    Yields ``None`` where nothing needs forwarding: one job (it runs here), threads (they share
    this process's loggers), and any other backend (a dask cluster forwards through its client,
    see :func:`dask_scheduler`).

    Args:
        server_init: a picklable function run first in the queue's server process, e.g. one
            that ends it when this process is killed (it would otherwise outlive a SIGKILL).
    """
    backend = joblib.parallel.get_active_backend()[0]
    if n_jobs <= 1 or not isinstance(backend, LokyBackend | MultiprocessingBackend):
        yield None
        return
    # spawn: forking a process whose other threads may hold locks (torch, logging) can deadlock
    manager = SyncManager(ctx=multiprocessing.get_context("spawn"))
    manager.start(server_init)
    try:
        queue = manager.Queue()
        listener = QueueListener(queue, _Redispatch())
        listener.start()
        try:
            level = logging.getLogger(logger_name).getEffectiveLevel()
            yield WorkerLogs(queue, level, os.getpid(), logger_name)
        finally:
            listener.stop()  # handles every record the workers put before returning
    finally:
        manager.shutdown()
