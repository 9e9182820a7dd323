"""Progress of long work: a tqdm bar with ETA on a terminal, log lines with ETA otherwise.

Output redirected to a file or a job log gets a line every ``LOG_EVERY_SECONDS`` (and at the end) through
``logging`` on stderr, so a 27-minute training run never looks dead; results stay on stdout and in files.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("tli.progress")

LOG_EVERY_SECONDS = 30.0


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
        terminal = sys.stderr.isatty()
        if not self.silent and (enabled or terminal):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)

    def update(self, n: int = 1, **postfix: Any) -> None:
        """``n`` more units done; ``postfix`` values (loss, epoch) are shown beside the count."""
        self.done += n
        self.postfix.update(postfix)
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix({k: _short(v) for k, v in self.postfix.items()}, refresh=False)
        elif not self.silent and time.monotonic() - self.last_log >= LOG_EVERY_SECONDS:
            self._log()

    def line(self) -> str:
        """The current progress as one line."""
        elapsed = time.monotonic() - self.start
        done_here = self.done - self.initial
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        extra = "".join(f", {k} {_short(v)}" for k, v in self.postfix.items())
        eta = ""
        if 0 < done_here and self.done < self.total:
            eta = f", ETA {_format_seconds(elapsed / done_here * (self.total - self.done))}"
        counts = f"{self.done}/{self.total} {self.unit}s{share}{extra}"
        return f"{self.desc}: {counts}, {_format_seconds(elapsed)} elapsed{eta}"

    def _log(self) -> None:
        self.last_log = time.monotonic()
        log.info("%s", self.line())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif not self.silent:
            self._log()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
