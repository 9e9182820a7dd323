"""Measured resources of a unit of work: wall time and peak memory (process RSS; CUDA peak on GPU).

Peak RSS is the kernel's high-water mark (``VmHWM`` in ``/proc/self/status``), reset at the start of the
unit by writing ``5`` to ``/proc/self/clear_refs`` (Linux ≥ 4.0), so each cell of a comparison gets its own
peak even though they run in one process. Where that is not possible the peak is the process's lifetime
peak, and the record says so.

In-function import: ``torch`` (its CUDA peak), so measuring a unit of work does not load it by itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path


def _vm_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass
class Measured:
    """Wall time and peak memory of a block of work (filled when the block ends)."""

    seconds: float = 0.0
    peak_rss_mb: float | None = None
    peak_cuda_mb: float | None = None
    rss_peak_scope: str = "unit"
    """``unit`` (reset at the start) or ``process`` (the reset was not possible)."""
    _start: float = field(default=0.0, repr=False)

    def __enter__(self) -> Measured:
        import torch

        self.rss_peak_scope = "unit" if _reset_peak_rss() else "process"
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        self.seconds = time.perf_counter() - self._start
        peak = _vm_kb("VmHWM")
        self.peak_rss_mb = peak / 1024 if peak is not None else None
        if torch.cuda.is_available():
            self.peak_cuda_mb = torch.cuda.max_memory_allocated() / 2**20

    def to_dict(self) -> dict[str, float | str | None]:
        return {
            "seconds": self.seconds,
            "peak_rss_mb": self.peak_rss_mb,
            "peak_cuda_mb": self.peak_cuda_mb,
            "rss_peak_scope": self.rss_peak_scope,
        }
