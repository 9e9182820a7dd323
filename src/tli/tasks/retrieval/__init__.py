"""Retrieval tasks of ``tli compare``: XQuAD (cross-lingual), TyDi QA GoldP and Mr. TyDi / MIRACL (Swahili).

- ``xquad``: :mod:`tli.tasks.retrieval.xquad` (``xquad.<lang>.json`` files; ``languages: [de-en]``);
- ``tydi``: :mod:`tli.tasks.retrieval.tydi` (``tydiqa-goldp-v1.1-dev.json``; ``languages: [sw]``);
- ``mrtydi``: :mod:`tli.tasks.retrieval.mrtydi` (corpus jsonl + topics TSV + TREC qrels, or the query
  jsonl with positive and negative passages; ``languages: [sw]``).

What they share (options, dense evaluation with a causal LM, ranx scores, :class:`RetrievalResult`) is in
:mod:`tli.tasks.retrieval.base`; :mod:`tli.tasks.retrieval.synthetic` generates synthetic training pairs in
a low-resource language (doc2query, translation, lexicon code-switching).

The split with :mod:`tli.retrieval`: this package holds the *data and scoring* — datasets, their loaders and
languages, what a retrieval task scores and how, the synthetic data set — and uses the engine;
:mod:`tli.retrieval` is the *engine* — encoding, search, BM25, fusion, TREC files, ranking metrics,
bi-encoder training — and knows no dataset. Imports go one way: tasks → engine.
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
