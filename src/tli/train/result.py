"""What a TLI training run returns: :class:`TrainResult` (also the record ``results.json`` is built from)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainResult:
    """Where the adapter is, and what training did."""

    out: str
    adapter: str
    target_layer: int
    epoch_losses: list[float]
    timing: dict[str, float]
    n_train_pairs: int
    seed: int = 0
    n_validation_pairs: int = 0
    validation: list[dict[str, float]] = field(default_factory=list)
    """Per epoch: ``epoch``, validation ``loss`` and ``mrr`` (retrieval among the validation targets)."""
    best_epoch: int | None = None
    stopped_early: bool = False
    warnings: list[str] = field(default_factory=list)
    skipped_pairs: list[dict[str, str]] = field(default_factory=list)
    trainable_parameters: int = 0
    tokens_seen: int = 0
    """Non-padding tokens of the training forwards of this run, over all processes (validation excluded)."""
    distributed: dict[str, Any] = field(default_factory=lambda: {"kind": "single", "world_size": 1})
    """How training was spread: ``kind`` (single, ddp, fsdp, deepspeed) and ``world_size``."""
    warmup_steps: int | None = None
    """Warm-up steps scheduled (``--warmup-steps``, or fewer when those would outlast the run)."""
