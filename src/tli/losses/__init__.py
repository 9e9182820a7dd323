"""Training objectives on pooled target-layer embeddings (one small ``nn.Module`` per loss, a pure function each).

Pair losses take a batch of ``B`` anchors (source-language embeddings) and their positives (target-language
embeddings), plus a ``(B, B)`` boolean ``valid_negative`` mask: ``valid_negative[i, j]`` is False on the
diagonal and wherever pair ``j`` shares pair ``i``'s source word or target word — so when ``bahari`` →
ocean and ``bahari`` → sea are in one batch, neither is used as the other's negative.

Modules: :mod:`~tli.losses.triplet` (published), :mod:`~tli.losses.infonce` (in-batch),
:mod:`~tli.losses.lexicon_infonce` (negatives: every trained target), :mod:`~tli.losses.uniformity`,
:mod:`~tli.losses.preservation`, :mod:`~tli.losses.centred`; :mod:`~tli.losses.objective` composes them by name.
"""

from tli.losses.centred import Centred, centre_rows
from tli.losses.infonce import InfoNCELoss, symmetric_infonce_loss
from tli.losses.inputs import ObjectiveInputs
from tli.losses.lexicon_infonce import LexiconInfoNCELoss, lexicon_infonce_loss
from tli.losses.masks import candidate_mask, valid_negative_mask
from tli.losses.objective import LOSSES, REGULARIZERS, Objective, ObjectiveSpec, build_objective
from tli.losses.preservation import PreservationLoss, preservation_loss
from tli.losses.triplet import TripletLoss, triplet_hardest_negative_loss
from tli.losses.uniformity import UniformityLoss, uniformity_loss

__all__ = [
    "LOSSES",
    "REGULARIZERS",
    "Centred",
    "InfoNCELoss",
    "LexiconInfoNCELoss",
    "Objective",
    "ObjectiveInputs",
    "ObjectiveSpec",
    "PreservationLoss",
    "TripletLoss",
    "UniformityLoss",
    "build_objective",
    "candidate_mask",
    "centre_rows",
    "lexicon_infonce_loss",
    "preservation_loss",
    "symmetric_infonce_loss",
    "triplet_hardest_negative_loss",
    "uniformity_loss",
    "valid_negative_mask",
]
