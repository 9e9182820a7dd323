"""Working-memory measurement shared by the benchmarks (the scripts import it from their own directory)."""

from __future__ import annotations

import os
import threading
import time


class WorkingMemory:
    """Peak resident memory above the level at entry while the block runs (sampled every 2 ms)."""

    def __enter__(self):
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.002)

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    @property
    def mb(self) -> float:
        return (self.peak - self.start) / 2**20
