"""Preservation: words *outside* the lexicon keep their base-model embeddings at the target layer.

A LoRA update that moves every word (a shared shift, a collapse) also moves words it was never shown; one that
aligns translations need not. Penalising how far the adapted embeddings of out-of-lexicon words drift from the
base model's keeps what the base model already separates (cf. Li & Hoiem 2017, "Learning without Forgetting":
distillation of the old model's outputs on other inputs; here of its hidden states).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def preservation_loss(adapted: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """``L = mean_i (1 − cos(adapted_i, base_i))``: 0 when every word keeps its base direction, at most 2.

    Args:
        adapted: ``(M, H)`` adapted-model embeddings of out-of-lexicon words (with gradient).
        base: ``(M, H)`` the base model's embeddings of the same words (fixed).
    """
    return (1.0 - F.cosine_similarity(adapted.float(), base.float(), dim=-1)).mean()


class PreservationLoss(nn.Module):
    """Module form of :func:`preservation_loss`."""

    def forward(self, adapted: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        return preservation_loss(adapted, base)
