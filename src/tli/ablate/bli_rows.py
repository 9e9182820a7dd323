"""Per-query BLI of the unseen control words (reciprocal ranks), the unit the ablation's tests pair on.

Queries: the control pairs' source words; candidates: every lexicon target (as ``tli evaluate``'s BLI figures,
:func:`tli.bli.control_retrieval`). Systems: the base model, the adapted model (cosine and CSLS), and the
Procrustes map fitted on the trained pairs' base embeddings (MUSE preprocessing).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tli.bli import VocabularyRetrieval, fit_procrustes
from tli.metrics import PairIndex


def control_query_ranks(base, adapted, index, groups, layer: int) -> dict[str, list[float]]:
    """Reciprocal rank per control query at ``layer`` for ``base``, ``base_csls``, ``adapted``, ``adapted_csls``,
    ``procrustes`` (``base`` / ``adapted``: :class:`tli.evaluate.Side`)."""
    groups = np.asarray(groups)
    control, trained = np.flatnonzero(groups == "control"), np.flatnonzero(groups == "trained")
    queries = torch.unique(index.src[control])
    position = {int(q): i for i, q in enumerate(queries)}
    gold = PairIndex(
        src=torch.tensor([position[int(s)] for s in index.src[control]]),
        tgt=index.tgt[control],
        n_src=len(queries),
        n_tgt=index.n_tgt,
    )
    out: dict[str, list[float]] = {}
    for state, side in (("base", base), ("adapted", adapted)):
        retrieval = VocabularyRetrieval(side.src[layer][queries], side.tgt[layer], gold)
        out[state] = (1.0 / retrieval.ranks("cosine").float()).tolist()
        out[f"{state}_csls"] = (1.0 / retrieval.ranks("csls").float()).tolist()
    mapping = fit_procrustes(
        base.src[layer][index.src[trained]], base.tgt[layer][index.tgt[trained]], center=True
    )
    retrieval = VocabularyRetrieval(
        mapping.map_source(base.src[layer][queries]), mapping.prepare_target(base.tgt[layer]), gold
    )
    out["procrustes"] = (1.0 / retrieval.ranks("cosine").float()).tolist()
    out["procrustes_csls"] = (1.0 / retrieval.ranks("csls").float()).tolist()
    out["queries"] = [int(q) for q in queries]
    return out


def query_words(index_sources: list[str], ranks: dict[str, Any]) -> list[str]:
    """The source word of each control query (row ids of ``ranks["queries"]``)."""
    return [index_sources[q] for q in ranks["queries"]]
