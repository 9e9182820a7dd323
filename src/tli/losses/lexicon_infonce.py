"""InfoNCE with negatives beyond the batch: every target word of the trained lexicon (a per-epoch memory bank).

In-batch negatives are few (7 with the published batch of 8) and mostly easy; the hardest in-batch negative of
the triplet loss is one word. Contrasting each anchor with *all* trained targets asks the model to rank its
translation first among the whole lexicon — the retrieval (BLI) question itself. The bank holds the targets'
embeddings from the start of the epoch (no gradient; He et al. 2020, "Momentum Contrast"); the positive keeps
its gradient. Reference: van den Oord et al. 2018 (InfoNCE); Wu et al. 2018 (memory bank).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def lexicon_infonce_loss(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    candidates: torch.Tensor,
    valid_candidate: torch.Tensor,
    temperature: float = 0.05,
) -> torch.Tensor:
    """One-directional InfoNCE of each anchor's positive against a set of candidate targets.

    With ``s⁺_i = cos(a_i, p_i) / τ`` and ``s_ij = cos(a_i, c_j) / τ``:

    ``L = mean_i [ −s⁺_i + log( exp(s⁺_i) + Σ_{j: valid[i, j]} exp(s_ij) ) ]``

    Candidates that translate anchor ``i`` (its own target included) must be masked out in ``valid_candidate``
    (the polysemy mask, :func:`tli.losses.masks.candidate_mask`). With ``candidates = positives`` and the in-batch
    ``valid_negative`` mask this is the source→target half of :func:`~tli.losses.infonce.symmetric_infonce_loss`.

    Args:
        anchors: ``(B, H)`` source-word embeddings.
        positives: ``(B, H)`` embeddings of their translations.
        candidates: ``(N, H)`` candidate target embeddings (the bank; usually detached).
        valid_candidate: ``(B, N)`` bool, True where ``c_j`` is a negative for anchor ``i``.
        temperature: τ.
    """
    a = F.normalize(anchors.float(), dim=-1)
    p = F.normalize(positives.float(), dim=-1)
    c = F.normalize(candidates.float(), dim=-1)
    positive = (a * p).sum(-1, keepdim=True) / temperature  # (B, 1)
    negative = (a @ c.T / temperature).masked_fill(~valid_candidate, float("-inf"))  # (B, N)
    logits = torch.cat([positive, negative], dim=1)
    return (torch.logsumexp(logits, dim=1) - positive.squeeze(1)).mean()


class LexiconInfoNCELoss(nn.Module):
    """Module form of :func:`lexicon_infonce_loss`; without a bank it falls back to the batch's targets."""

    uses_bank = True

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        self.temperature = temperature

    def forward(self, anchors, positives, valid_negative, *, bank=None, bank_valid=None):
        if bank is None:
            return lexicon_infonce_loss(anchors, positives, positives, valid_negative, self.temperature)
        return lexicon_infonce_loss(anchors, positives, bank, bank_valid, self.temperature)
