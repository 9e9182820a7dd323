"""Contrastive losses on pooled target-layer embeddings (one ``nn.Module`` each, a pure function below).

Both take a batch of ``B`` anchors (source-language embeddings) and their positives (target-language
embeddings), plus a ``(B, B)`` boolean ``valid_negative`` mask: ``valid_negative[i, j]`` is False on the
diagonal and wherever pair ``j`` shares pair ``i``'s source word or target word — so when ``bahari`` →
ocean and ``bahari`` → sea are in one batch, neither is used as the other's negative.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def valid_negative_mask(
    sources: Sequence[str],
    targets: Sequence[str],
    translations: Collection[tuple[str, str]] | None = None,
) -> torch.Tensor:
    """``(B, B)`` bool: ``True`` where target ``j`` may serve as a negative for anchor ``i``.

    Pair ``j`` is excluded for anchor ``i`` when ``j == i``, ``source_j == source_i`` (another sense of
    the same word), ``target_j == target_i`` (a synonym on the source side, e.g. two Swahili words
    for ``car``), or ``(source_i, target_j)`` is a translation anywhere in ``translations`` (the whole
    lexicon's senses: with ``bahari`` → sea in the batch, ``ocean`` is no negative for ``bahari`` even when
    the batch holds ``ocean`` only as the translation of another word).
    """
    src = list(sources)
    tgt = list(targets)
    known = set(translations or ())
    invalid = [
        [a == b or t_a == t_b or (a, t_b) in known for b, t_b in zip(src, tgt, strict=True)]
        for a, t_a in zip(src, tgt, strict=True)
    ]
    return ~torch.tensor(invalid)


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


class TripletLoss(nn.Module):
    """Module form of :func:`triplet_hardest_negative_loss` (published: margin 0.4)."""

    def __init__(self, margin: float = 0.4):
        super().__init__()
        self.margin = margin

    def forward(self, anchors, positives, valid_negative):
        return triplet_hardest_negative_loss(anchors, positives, valid_negative, self.margin)


class InfoNCELoss(nn.Module):
    """Module form of :func:`symmetric_infonce_loss`."""

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        self.temperature = temperature

    def forward(self, anchors, positives, valid_negative):
        return symmetric_infonce_loss(anchors, positives, valid_negative, self.temperature)


LOSSES = {"triplet": TripletLoss, "infonce": InfoNCELoss}
