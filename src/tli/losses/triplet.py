"""The published TLI loss: triplet with the hardest valid in-batch negative (arXiv 2506.15415)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def triplet_hardest_negative_loss(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    valid_negative: torch.Tensor,
    margin: float = 0.4,
) -> torch.Tensor:
    """Triplet loss with the hardest valid in-batch negative (the published TLI loss).

    ``L = mean_i relu(margin + max_{j: valid[i, j]} cos(a_i, p_j) − cos(a_i, p_i))``

    Anchors with no valid negative in the batch contribute nothing (they are left out of the mean).

    Args:
        anchors: ``(B, H)`` source-word embeddings.
        positives: ``(B, H)`` embeddings of their translations.
        valid_negative: ``(B, B)`` bool, see :func:`valid_negative_mask`.
        margin: required gap between the positive and the hardest negative similarity.
    """
    a = F.normalize(anchors.float(), dim=-1)
    p = F.normalize(positives.float(), dim=-1)
    sim = a @ p.T  # (B, B)
    pos = sim.diagonal()
    hardest = sim.masked_fill(~valid_negative, float("-inf")).max(dim=1).values
    has_negative = valid_negative.any(dim=1)
    losses = F.relu(margin + hardest[has_negative] - pos[has_negative])
    if losses.numel() == 0:
        return sim.sum() * 0.0  # keeps the graph; nothing to learn from this batch
    return losses.mean()


class TripletLoss(nn.Module):
    """Module form of :func:`triplet_hardest_negative_loss` (published: margin 0.4)."""

    def __init__(self, margin: float = 0.4):
        super().__init__()
        self.margin = margin

    def forward(self, anchors, positives, valid_negative):
        return triplet_hardest_negative_loss(anchors, positives, valid_negative, self.margin)
