"""Progress of long work: a tqdm bar with ETA on a terminal, log lines with ETA otherwise.

Output redirected to a file or a job log gets a line every ``LOG_EVERY_SECONDS`` (and one at the end) through
``logging`` on stderr, so a 27-minute training run never looks dead; results stay on stdout and in files. The
lines come from a heartbeat thread, so a single unit of work longer than the interval (one slow batch, a
bootstrap) still gets its line on time. :func:`stage` does the same for work without countable units.

In-function import: ``tqdm``, only when a bar is drawn on a terminal.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("tli.progress")

LOG_EVERY_SECONDS = 30.0
_last_line = [0.0]
"""When any progress line was last logged: a heartbeat stays quiet while nested work (an embedding pass inside
an evaluation) keeps the log moving."""


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """A progress bar or, off a terminal, periodic log lines ``desc: 120/905 steps (13%), loss 0.39, 12 s
    elapsed, ETA 80 s``.

    Args:
        total: number of units of work.
        desc: what is being done.
        unit: name of a unit (``step``, ``batch``).
        initial: units already done (a resumed run).
        enabled: None = bar on a terminal, log lines otherwise; False = silent; True = bar.
    """

    def __init__(
        self, total: int, desc: str, *, unit: str = "step", initial: int = 0, enabled: bool | None = None
    ) -> None:
        self.total, self.desc, self.unit, self.done = total, desc, unit, initial
        self.start = self.last_log = time.monotonic()
        self.initial = initial
        self.postfix: dict[str, Any] = {}
        self.bar = None
        self.silent = enabled is False
        self._logged: tuple | None = None  # the state of the last line logged: no line is repeated
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        terminal = sys.stderr.isatty()
        if not self.silent and (enabled or terminal):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
        elif not self.silent:
            self._heartbeat = threading.Thread(target=self._beat, name=f"progress: {desc}", daemon=True)
            self._heartbeat.start()

    def update(self, n: int = 1, **postfix: Any) -> None:
        """``n`` more units done; ``postfix`` values (loss, epoch) are shown beside the count."""
        with self._lock:
            self.done += n
            self.postfix.update(postfix)
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix({k: _short(v) for k, v in self.postfix.items()}, refresh=False)
        elif not self.silent and time.monotonic() - self.last_log >= LOG_EVERY_SECONDS:
            self._log()

    def _beat(self) -> None:
        """Off a terminal: a line whenever ``LOG_EVERY_SECONDS`` pass without one, however long a unit takes."""
        while not self._stop.wait(max(0.05, self._quiet_since() + LOG_EVERY_SECONDS - time.monotonic())):
            if time.monotonic() - self._quiet_since() >= LOG_EVERY_SECONDS:
                self._log(force=True)

    def _quiet_since(self) -> float:
        return max(self.last_log, _last_line[0])

    def line(self) -> str:
        """The current progress as one line."""
        elapsed = time.monotonic() - self.start
        done_here = self.done - self.initial
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        extra = "".join(f", {k} {_short(v)}" for k, v in self.postfix.items())
        eta = ""
        if 0 < done_here and self.done < self.total:
            eta = f", ETA {_format_seconds(elapsed / done_here * (self.total - self.done))}"
        counts = f"{self.done}/{self.total} {_plural(self.unit)}{share}{extra}"
        return f"{self.desc}: {counts}, {_format_seconds(elapsed)} elapsed{eta}"

    def _log(self, *, force: bool = False) -> None:
        """Log the current line, unless it would repeat the last one (``force``: the heartbeat's elapsed time is
        news even when the count has not moved)."""
        with self._lock:
            self.last_log = time.monotonic()
            state = (self.done, tuple(self.postfix.items()))
            if state == self._logged and not force:
                return
            self._logged = state
            line = self.line()
            _last_line[0] = self.last_log
        log.info("%s", line)

    def close(self) -> None:
        """Stop the heartbeat; a last line with the final count (when it is not the line just logged)."""
        self._stop.set()
        if self._heartbeat is not None and self._heartbeat is not threading.current_thread():
            self._heartbeat.join()
            self._heartbeat = None
        if self.bar is not None:
            self.bar.close()
        elif not self.silent:
            self._log()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _plural(unit: str) -> str:
    """``step`` → ``steps``, ``batch`` → ``batches``."""
    return unit + ("es" if unit.endswith(("ch", "sh", "s", "x")) else "s")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@contextlib.contextmanager
def stage(desc: str, *, enabled: bool | None = None) -> Iterator[Progress]:
    """A stage of work without countable units (statistics, a report): off a terminal, a line every
    ``LOG_EVERY_SECONDS`` while it runs and one when it ends; on a terminal, a one-step bar.

    Yields the :class:`Progress` (``update(0, step="BLI")`` names the part in progress).
    """
    with Progress(1, desc, unit="stage", enabled=enabled) as bar:
        yield bar
        bar.update(1)
