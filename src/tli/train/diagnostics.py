"""What a run's numbers mean: a warm-up that would outlast the run, a final loss at a tell-tale value, and a
loss that is no longer finite."""

from __future__ import annotations

import math
from pathlib import Path

from tli.config import TrainConfig
from tli.errors import TrainingError

WARMUP_SHARE_WHEN_TOO_LONG = 0.1
"""Warm-up as a share of the run's steps when ``--warmup-steps`` would outlast the run."""


def warmup_for(warmup_steps: int, total_steps: int, lr: float) -> tuple[int, str | None]:
    """The warm-up steps to schedule, and a warning when the asked ones would outlast the run.

    With linear warm-up the learning rate after step ``t`` is ``lr · t / warmup``: with ``warmup ≥ total`` it would
    never reach ``lr`` (50 warm-up steps in a 5-step run peak at a tenth of it). The warm-up is then scaled to
    ``WARMUP_SHARE_WHEN_TOO_LONG`` of the steps, and the warning says so.
    """
    if warmup_steps < total_steps or warmup_steps == 0:
        return warmup_steps, None
    scaled = int(WARMUP_SHARE_WHEN_TOO_LONG * total_steps)
    peak = lr * min(1.0, total_steps / warmup_steps)
    return scaled, (
        f"--warmup-steps {warmup_steps} is not shorter than the run's {total_steps} optimiser steps: the learning "
        f"rate would peak at {peak:.3g} instead of --lr {lr:g}; warm-up scaled to {scaled} step(s) "
        f"({WARMUP_SHARE_WHEN_TOO_LONG:.0%} of the run); pass a smaller --warmup-steps to choose it"
    )


def loss_warnings(config: TrainConfig, epoch_losses: list[float]) -> list[str]:
    """What a final loss at a tell-tale value means.

    - Triplet loss settled at its margin: the hardest negative ends as close as the positive — the space
      collapsed (everything pulled together) rather than aligned.
    - InfoNCE loss at ``ln(batch)``: the loss of uniform guessing among the batch — nothing learned.
    """
    if not epoch_losses:
        return []
    final = epoch_losses[-1]
    if config.loss == "triplet" and abs(final - config.margin) <= 0.02 * config.margin:
        return [
            f"the triplet loss settled at {final:.4f}, the margin ({config.margin}): the hardest in-batch "
            "negative ends as similar as the positive, so training pulled all words together rather than "
            "translations apart from non-translations (check the gap and retrieval claims)"
        ]
    chance = math.log(config.batch_size)
    if config.loss == "infonce" and final >= 0.98 * chance:
        return [
            f"the InfoNCE loss ended at {final:.4f}, the chance level ln({config.batch_size}) = "
            f"{chance:.4f}: the model does not tell a batch's translations apart"
        ]
    return []


def check_finite(batch_loss: float, where: str, checkpoints: Path) -> None:
    """Stop on a NaN or infinite loss (every process together: ``batch_loss`` is already averaged)."""
    if not math.isfinite(batch_loss):
        raise TrainingError(
            f"training loss is {batch_loss} at {where}: lower --lr or check the lexicon; "
            f"the last complete checkpoint is in {checkpoints}"
        )
