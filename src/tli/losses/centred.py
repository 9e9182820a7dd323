"""Centred objectives: the contrastive loss on language-centred embeddings, so a shared shift earns nothing.

Adding one vector ``v`` to every embedding of a language (the shift that raised *all* similarities under the
published loss) leaves ``x − mean(x)`` unchanged, so a loss on centred embeddings cannot be lowered by it.
Centring before the cosine is the standard BLI preprocessing (Artetxe et al. 2018, "A robust self-learning
method for fully unsupervised cross-lingual mappings"; tli's centred gap measures the same thing).
"""

from __future__ import annotations

import torch
from torch import nn


def centre_rows(embeddings: torch.Tensor) -> torch.Tensor:
    """``x_i − mean_j x_j`` over the rows of ``(N, H)`` embeddings (the mean keeps its gradient)."""
    x = embeddings.float()
    return x - x.mean(dim=0, keepdim=True)


class Centred(nn.Module):
    """Wrap a pair loss so it sees centred embeddings: anchors by the batch's source mean, positives by the batch's
    target mean, a bank of targets by its own mean."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.uses_bank = getattr(inner, "uses_bank", False)

    def forward(self, anchors, positives, valid_negative, **bank):
        if bank.get("bank") is not None:
            bank = {**bank, "bank": centre_rows(bank["bank"])}
        return self.inner(centre_rows(anchors), centre_rows(positives), valid_negative, **bank)
