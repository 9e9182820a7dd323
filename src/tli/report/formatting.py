"""Markdown helpers the report pages share: number formats, runs of layers and the index of plots."""

from __future__ import annotations

import math
from typing import Any


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _pct(value: float) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.2f}"


def _ranges(values: list[int]) -> str:
    """``[1, 2, 3, 7]`` → ``"1–3, 7"``."""
    parts, start = [], None
    for i, value in enumerate(values):
        if start is None:
            start = value
        if i + 1 == len(values) or values[i + 1] != value + 1:
            parts.append(str(start) if start == value else f"{start}–{value}")
            start = None
    return ", ".join(parts)


def plot_index(seeds: list[int], stage_dir, plots: list[tuple[str, str, str]]) -> str:
    """A Markdown table linking every plot of every seed: one row per plot, one column per seed.

    Args:
        stage_dir: ``(stage, seed) -> relative directory`` (``evaluate/seed-1``, or ``evaluate`` with one seed).
        plots: ``(stage, file, what it shows)``; stage ``""`` = a plot shared by all seeds (linked once).
    """
    head = "| plot | " + " | ".join(f"seed {s}" for s in seeds) + " |"
    lines = [head, "|---|" + "---|" * len(seeds)]
    for stage, name, what in plots:
        if not stage:
            cells = [f"[{name}]({name})"] + [""] * (len(seeds) - 1)
        else:
            cells = [f"[{name}]({stage_dir(stage, s)}/{name})" for s in seeds]
        lines.append(f"| {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
