"""A training run's closing files: the loss curve from ``metrics.jsonl`` and ``results.json`` (last)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tli.io import atomic_write_json, read_json_lines
from tli.plots import plot_loss_curve
from tli.runs import mark_complete


def read_metrics(path: Path) -> list[dict]:
    """Records of a ``metrics.jsonl`` log ([] before the first step was logged)."""
    return read_json_lines(path) if path.is_file() else []


def write_train_run(out: Path, record: dict[str, Any], config=None) -> Path:
    """Loss curve (with validation points and the loss's tell-tale level) and ``results.json`` (last)."""
    records = read_metrics(out / "metrics.jsonl")
    steps = [r for r in records if "loss" in r]
    validation = [(r["step"], r["validation_loss"]) for r in records if "validation_loss" in r]
    reference = None
    if config is not None:
        reference = (
            (config.margin, "triplet margin: a loss stuck here = collapse")
            if config.loss == "triplet"
            else (math.log(config.batch_size), f"InfoNCE chance: ln({config.batch_size})")
        )
    if steps:
        plot_loss_curve(
            [r["step"] for r in steps],
            [r["loss"] for r in steps],
            out / "loss.png",
            validation=validation or None,
            reference=reference,
        )
    atomic_write_json(out / "results.json", record)
    mark_complete(out, "training")
    return out
