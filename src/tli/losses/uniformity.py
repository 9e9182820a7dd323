"""Uniformity on the hypersphere (Wang & Isola 2020, "Understanding Contrastive Representation Learning through
Alignment and Uniformity on the Hypersphere", ICML): keeps random pairs apart, so pulling translations together
cannot be bought by pulling *every* word together (the collapse the published triplet loss shows)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

UNIFORMITY_T = 2.0
"""``t`` of the Gaussian potential (Wang & Isola's default)."""


def uniformity_loss(embeddings: torch.Tensor, t: float = UNIFORMITY_T) -> torch.Tensor:
    """``L_uniform = log mean_{i<j} exp(−t ‖x_i − x_j‖²)`` over the L2-normalised rows ``x`` of ``embeddings``.

    0 when every row is the same point (collapse); about ``−2t`` when rows are orthogonal (``‖x − y‖² = 2``);
    lower is more uniform.

    Args:
        embeddings: ``(N, H)`` with ``N >= 2`` (the batch's source and target embeddings together).
        t: the potential's scale.
    """
    x = F.normalize(embeddings.float(), dim=-1)
    squared = torch.pdist(x, p=2).pow(2)  # (N (N−1) / 2,)
    return torch.logsumexp(-t * squared, dim=0) - torch.log(torch.tensor(float(squared.numel())))


class UniformityLoss(nn.Module):
    """Module form of :func:`uniformity_loss` over the batch's anchors and positives together."""

    def __init__(self, t: float = UNIFORMITY_T):
        super().__init__()
        self.t = t

    def forward(self, anchors: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        return uniformity_loss(torch.cat([anchors, positives]), self.t)
