"""A training objective by name: a contrastive loss, optionally centred, plus weighted regularisers.

``total = main(a, p) + w_u · L_uniform(a ∪ p) + w_p · L_preserve(adapted(W), base(W))``

where ``main`` is the triplet, in-batch InfoNCE or lexicon-bank InfoNCE loss (on centred embeddings with the
``centred`` regulariser), and ``W`` a sample of words outside the lexicon. Every part is a small module with a
pure tensor function (see the sibling modules); :class:`Objective` only adds them up and records the parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from tli.losses.centred import Centred
from tli.losses.infonce import InfoNCELoss
from tli.losses.lexicon_infonce import LexiconInfoNCELoss
from tli.losses.preservation import PreservationLoss
from tli.losses.triplet import TripletLoss
from tli.losses.uniformity import UniformityLoss

LOSSES = {"triplet": TripletLoss, "infonce": InfoNCELoss, "infonce-lexicon": LexiconInfoNCELoss}
"""Main losses by name (``--loss``); ``triplet`` is the published one."""

REGULARIZERS = ("uniformity", "preservation", "centred")
"""``--regularizers``: ``uniformity`` (Wang & Isola), ``preservation`` (out-of-lexicon words stay put),
``centred`` (the main loss on language-centred embeddings)."""


@dataclass
class ObjectiveSpec:
    """What an objective is made of (recorded in every result file through the training config)."""

    loss: str = "triplet"
    margin: float = 0.4
    temperature: float = 0.05
    regularizers: list[str] = field(default_factory=list)
    uniformity_weight: float = 1.0
    preservation_weight: float = 1.0

    @property
    def name(self) -> str:
        """``loss`` or ``loss+reg1+reg2`` (``triplet`` alone is the published objective)."""
        return "+".join([self.loss, *sorted(self.regularizers)])


class Objective(nn.Module):
    """The main loss (centred or not) plus weighted regularisers; ``parts`` holds the last call's terms."""

    def __init__(self, spec: ObjectiveSpec):
        super().__init__()
        self.spec = spec
        main = LOSSES[spec.loss](spec.margin if spec.loss == "triplet" else spec.temperature)
        self.main = Centred(main) if "centred" in spec.regularizers else main
        self.uses_bank = getattr(main, "uses_bank", False)
        self.uniformity = UniformityLoss() if "uniformity" in spec.regularizers else None
        self.preservation = PreservationLoss() if "preservation" in spec.regularizers else None
        self.parts: dict[str, float] = {}

    @property
    def uses_preservation(self) -> bool:
        return self.preservation is not None

    def forward(
        self,
        anchors: torch.Tensor,
        positives: torch.Tensor,
        valid_negative: torch.Tensor,
        *,
        bank: torch.Tensor | None = None,
        bank_valid: torch.Tensor | None = None,
        preserved: torch.Tensor | None = None,
        preserved_base: torch.Tensor | None = None,
    ) -> torch.Tensor:
        extra = {"bank": bank, "bank_valid": bank_valid} if self.uses_bank else {}
        total = self.main(anchors, positives, valid_negative, **extra)
        parts = {"main": float(total.detach())}
        if self.uniformity is not None:
            term = self.uniformity(anchors, positives)
            parts["uniformity"] = float(term.detach())
            total = total + self.spec.uniformity_weight * term
        if self.preservation is not None and preserved is not None:
            term = self.preservation(preserved, preserved_base)
            parts["preservation"] = float(term.detach())
            total = total + self.spec.preservation_weight * term
        self.parts = parts
        return total


def build_objective(config) -> Objective:
    """The :class:`Objective` a training config names (``loss``, ``regularizers`` and their weights)."""
    return Objective(
        ObjectiveSpec(
            loss=config.loss,
            margin=config.margin,
            temperature=config.temperature,
            regularizers=list(getattr(config, "regularizers", None) or []),
            uniformity_weight=getattr(config, "uniformity_weight", 1.0),
            preservation_weight=getattr(config, "preservation_weight", 1.0),
        )
    )
