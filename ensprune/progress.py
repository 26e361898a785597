"""Progress of long steps: a bar on a terminal, plain periodic log lines anywhere else.

One helper for every long loop (training epochs, downloads, trials, selection steps), so that:

* on an interactive terminal (stderr is a TTY) a tqdm bar is drawn;
* when stderr is piped or redirected (CI logs, ``nohup``, ``| tee``), no carriage returns are
  written: instead one ``logging`` line at INFO every ``interval`` seconds (and one at the end),
  with the counter, the percentage, the elapsed time and an estimate of the time left, and a
  closing line (INFO after a long step, DEBUG after one shorter than ``interval``);
* ``enabled=False`` (the CLI's ``--quiet``) draws and logs nothing;
* the ``TQDM_DISABLE`` environment variable (any value but ``""``, ``0``, ``false``) turns bars
  off as tqdm documents; the log lines remain, at INFO, for the log configuration to keep or drop.

Example:
    >>> with Progress(total=10, desc="train m0", unit="epoch") as bar:
    ...     for epoch in range(10):
    ...         bar.update(1, val_acc=f"{acc:.4f}")
    >>> for item in track(items, desc="members"):
    ...     ...
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, TextIO, TypeVar

logger = logging.getLogger("ensprune.progress")

T = TypeVar("T")
DEFAULT_INTERVAL_S = 10.0
_FALSE = {"", "0", "false", "no", "off"}


def bars_disabled_by_env() -> bool:
    """Whether ``TQDM_DISABLE`` asks for no bars."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in _FALSE


def use_bar(stream: TextIO | None = None) -> bool:
    """Whether a bar may be drawn on ``stream`` (stderr by default): a TTY and no TQDM_DISABLE."""
    target = sys.stderr if stream is None else stream
    isatty = getattr(target, "isatty", None)
    return bool(isatty and isatty()) and not bars_disabled_by_env()


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``; ``?`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _format_count(n: float, unit: str) -> str:
    if unit == "B":
        for prefix in ("", "Ki", "Mi", "Gi"):
            if abs(n) < 1024 or prefix == "Gi":
                return f"{n:.0f} {prefix}B" if prefix == "" else f"{n:.1f} {prefix}B"
            n /= 1024
    return f"{n:g}"


class Progress:
    """Counter of one step with a known (or unknown) total; see the module docstring.

    Args:
        total: number of units expected (None when unknown, e.g. a download without a length).
        desc: what is being done, e.g. ``"train m0"`` or ``"search m1 trials"``.
        unit: the unit counted (``"epoch"``, ``"trial"``, ``"B"`` for bytes).
        enabled: False draws and logs nothing (``--quiet``).
        interval: seconds between log lines when no bar is drawn.
        log: the logger receiving the lines (default ``ensprune.progress``).
        stream: where a bar would go (stderr by default); only its ``isatty`` is consulted here.
        clock: a monotonic clock (for tests).
    """

    def __init__(
        self,
        total: int | None = None,
        *,
        desc: str = "",
        unit: str = "it",
        enabled: bool = True,
        interval: float = DEFAULT_INTERVAL_S,
        log: logging.Logger | None = None,
        stream: TextIO | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.enabled = enabled
        self.interval = interval
        self.log = log or logger
        self.clock = clock
        self.count = 0.0
        self.postfix: dict[str, Any] = {}
        self._start = clock()
        self._last_line = self._start
        self._closed = False
        self._lines = 0
        self._bar: Any = None
        if enabled and use_bar(stream):
            from tqdm.auto import tqdm  # imported only when a bar is drawn

            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=False, file=stream)
            if unit == "B":
                self._bar.unit_scale, self._bar.unit_divisor = True, 1024

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return float(self.clock() - self._start)

    def eta(self) -> float:
        """Estimated seconds left (NaN without a total or before the first unit)."""
        if self.total is None or self.count <= 0:
            return math.nan
        return self.elapsed / self.count * max(self.total - self.count, 0)

    def line(self) -> str:
        """The text of one log line, e.g. ``train m0: 3/10 epoch (30%) 12s, ~28s left``."""
        done = _format_count(self.count, self.unit)
        if self.total is not None and self.total > 0:
            share = 100.0 * self.count / self.total
            counter = f"{done}/{_format_count(self.total, self.unit)} {self.unit} ({share:.0f}%)"
            timing = f"{format_duration(self.elapsed)}, ~{format_duration(self.eta())} left"
        else:
            counter = f"{done} {self.unit}" if self.unit != "B" else done
            timing = format_duration(self.elapsed)
        extra = " ".join(f"{k}={v}" for k, v in self.postfix.items())
        head = f"{self.desc}: " if self.desc else ""
        return f"{head}{counter} {timing}" + (f" {extra}" if extra else "")

    def update(self, n: float = 1, **postfix: Any) -> None:
        """Count ``n`` more units; keyword arguments are shown after the counter."""
        if not self.enabled or self._closed:
            return
        self.count += n
        if postfix:
            self.postfix.update(postfix)
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(self.postfix, refresh=False)
            self._bar.update(n)
            return
        now = self.clock()
        if now - self._last_line >= self.interval:
            self._last_line = now
            self._lines += 1
            self.log.info(self.line())

    def close(self) -> None:
        """Finish: close the bar, or log the final line (once)."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            return
        # the closing line is INFO after periodic lines; a quick step (no line yet) logs it at
        # DEBUG, so many short loops (e.g. fine-tuning inside trials) do not flood the log
        level = logging.INFO if self._lines else logging.DEBUG
        self.log.log(level, self.line())

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def track(
    items: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
    interval: float = DEFAULT_INTERVAL_S,
    log: logging.Logger | None = None,
) -> Iterator[T]:
    """Yield ``items`` while counting them with a :class:`Progress`."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc=desc, unit=unit, enabled=enabled, interval=interval, log=log) as bar:
        for item in items:
            yield item
            bar.update(1)
