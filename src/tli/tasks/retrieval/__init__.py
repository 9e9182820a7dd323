"""Retrieval tasks of ``tli compare``: XQuAD (cross-lingual), TyDi QA GoldP and Mr. TyDi / MIRACL (Swahili).

- ``xquad``: :mod:`tli.tasks.retrieval.xquad` (``xquad.<lang>.json`` files; ``languages: [de-en]``);
- ``tydi``: :mod:`tli.tasks.retrieval.tydi` (``tydiqa-goldp-v1.1-dev.json``; ``languages: [sw]``);
- ``mrtydi``: :mod:`tli.tasks.retrieval.mrtydi` (corpus jsonl + topics TSV + TREC qrels, or the query
  jsonl with positive and negative passages; ``languages: [sw]``).

What they share (options, dense evaluation with a causal LM, ranx scores, :class:`RetrievalResult`) is in
:mod:`tli.tasks.retrieval.base`; the retrieval machinery itself (search, cache, BM25, fusion, TREC files,
bi-encoder training, synthetic data) is the :mod:`tli.retrieval` package.
"""

from __future__ import annotations

from tli.tasks.retrieval.base import RetrievalConfig, RetrievalResult, RetrievalTask, score_ranking
from tli.tasks.retrieval.mrtydi import MrTyDiConfig, MrTyDiTask
from tli.tasks.retrieval.tydi import TyDiConfig, TyDiTask
from tli.tasks.retrieval.xquad import XQuADConfig, XQuADTask

__all__ = [
    "MrTyDiConfig",
    "MrTyDiTask",
    "RetrievalConfig",
    "RetrievalResult",
    "RetrievalTask",
    "TyDiConfig",
    "TyDiTask",
    "XQuADConfig",
    "XQuADTask",
    "score_ranking",
]
