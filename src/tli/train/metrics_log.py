"""The step metrics of a run: ``metrics.jsonl`` (and TensorBoard when installed), trimmed on resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tli.io import atomic_write_text, read_json_lines
from tli.tracking import tensorboard_writer


class MetricsLog:
    """Step metrics as JSON lines (and TensorBoard when installed)."""

    def __init__(self, path: Path, keep_until_step: int = 0, enabled: bool = True):
        self.path, self.enabled, self.writer = path, enabled, None
        if not enabled:  # not the main process: another process writes the log
            return
        # On resume, drop lines from the interrupted (un-checkpointed) part of the run.
        kept = []
        if path.exists() and keep_until_step > 0:
            kept = [record for record in read_json_lines(path) if record.get("step", 0) <= keep_until_step]
        atomic_write_text(path, "".join(json.dumps(record) + "\n" for record in kept))
        # Without TensorBoard installed, no writer: the JSONL log is complete on its own.
        self.writer = tensorboard_writer(path.parent / "tensorboard", required=False)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key in ("loss", "lr", "validation_loss", "validation_mrr"):
                if key in record:
                    self.writer.add_scalar(f"train/{key}", record[key], record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
