"""``tli ablate``: which training objective aligns unseen words instead of collapsing the space — with verdicts.

    from tli.ablate import ablate
    results = ablate(out="runs/ablate")            # the embedded SmolLM2-135M, every variant, seeds 0, 1, 2

Every variant (:data:`~tli.objectives.VARIANTS`) trains with the same data (the shipped lexicon's stored
trained/control split), steps, seeds, target layer and budget; only the objective differs. Each adapter is
evaluated like ``tli evaluate`` (lexical controls at the target and final layers), by per-query BLI of the unseen
control words (CSLS, against the base model and the Procrustes baseline), and downstream (Mr. TyDi and XQuAD
retrieval, XNLI accuracy) through the tasks ``tli compare`` scores. :mod:`tli.ablate.verdicts` says how the
questions are tested. Output: ``OUT/results.json`` and ``OUT/report.md`` (resumable: finished units are kept).
"""

from __future__ import annotations

from typing import Any

__all__ = ["VARIANTS", "ablate", "analyse", "report"]


def __getattr__(name: str) -> Any:
    """Lazy: ``tli --help`` imports this package's command without torch."""
    if name in ("ablate", "analyse", "report"):
        from tli.ablate import api

        return getattr(api, name)
    if name == "VARIANTS":
        from tli.objectives import VARIANTS

        return VARIANTS
    raise AttributeError(name)
