"""Symmetric in-batch InfoNCE (CLIP-style; van den Oord et al. 2018, Radford et al. 2021)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def symmetric_infonce_loss(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    valid_negative: torch.Tensor,
    temperature: float = 0.05,
) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP-style) over in-batch candidates, invalid negatives masked out.

    With ``s_ij = cos(a_i, p_j) / τ`` and candidates ``C_i = {i} ∪ {j : valid[i, j]}``:

    ``L = ½ [ mean_i −log softmax_{j∈C_i}(s_i·)_i + mean_j −log softmax_{i∈C'_j}(s_·j)_j ]``

    Args:
        anchors: ``(B, H)`` source-word embeddings.
        positives: ``(B, H)`` embeddings of their translations.
        valid_negative: ``(B, B)`` bool, see :func:`valid_negative_mask` (symmetric).
        temperature: τ; lower sharpens the distribution.
    """
    a = F.normalize(anchors.float(), dim=-1)
    p = F.normalize(positives.float(), dim=-1)
    logits = (a @ p.T) / temperature  # (B, B)
    keep = valid_negative | torch.eye(len(a), dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(~keep, float("-inf"))
    labels = torch.arange(len(a), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


class InfoNCELoss(nn.Module):
    """Module form of :func:`symmetric_infonce_loss`."""

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        self.temperature = temperature

    def forward(self, anchors, positives, valid_negative):
        return symmetric_infonce_loss(anchors, positives, valid_negative, self.temperature)
