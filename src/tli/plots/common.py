"""What every plot shares: the headless matplotlib module, the atomic PNG write, tolerant number columns, and
the group and layer-role orders and colours."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tli.io import atomic_write_bytes

ARTIFACT_LABEL = "artefact layer: raw cosine high for any pair"
GROUP_ORDER = ("trained", "control")
ROLE_ORDER = ("target", "final")
_GROUP_COLOURS = {"trained": "C0", "control": "C1"}


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    _figure().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def _number(value: Any) -> float:
    """``value`` as a float, NaN when missing or not a number (matplotlib leaves NaN points out)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _finite(values) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _column(rows: Sequence[dict], key: str) -> list[float]:
    return [_number(row.get(key)) for row in rows]


def _runs(values: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive integers grouped into inclusive ``(first, last)`` runs: [2, 3, 4, 9] → [(2, 4), (9, 9)]."""
    runs: list[tuple[int, int]] = []
    for value in sorted(set(values)):
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _order(value: str, order: Sequence[str]) -> tuple[int, str]:
    return (order.index(value) if value in order else len(order), value)
