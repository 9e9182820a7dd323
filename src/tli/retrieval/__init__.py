"""The retrieval engine: dense search with any model tli loads, BM25, fusion, TREC files, trained retrievers.

Modules (each imported on use; ``import tli.retrieval`` loads nothing heavy):

- :mod:`~tli.retrieval.data`: corpus, queries and qrels of one evaluation (:class:`RetrievalData`);
- :mod:`~tli.retrieval.trec`: TREC run and qrels files in and out (tie-free runs, checked inputs);
- :mod:`~tli.retrieval.ranking_metrics`: Recall@k, MRR@k, nDCG@10 from ranx, and ranx's paired t-test;
- :mod:`~tli.retrieval.search`: exact top-k by inner product in bounded memory (FAISS when asked);
- :mod:`~tli.retrieval.encode`: LLM encoders (pooled hidden states, every layer in one pass) and the on-disk
  embedding cache keyed by model state, recipe and data;
- :mod:`~tli.retrieval.bm25`: BM25 (``bm25s``) with per-language tokenisation;
- :mod:`~tli.retrieval.fusion`: reciprocal rank fusion (ranx);
- :mod:`~tli.retrieval.rank`: the systems (dense, BM25, fusion) as runs with details;
- :mod:`~tli.retrieval.biencoder`: sentence-transformers bi-encoders trained with the multiple-negatives
  ranking loss (in-batch and BM25-mined hard negatives);
- :mod:`~tli.retrieval.libraries`: the optional retrieval libraries (ranx, bm25s, sentence-transformers),
  imported on first use with a one-line error when missing.

The split with :mod:`tli.tasks.retrieval`: this package is the *engine* and knows no dataset; the tasks that
use it (``xquad``, ``tydi``, ``mrtydi``: loaders, languages, what is scored) and the synthetic data set are
*data and scoring*, in :mod:`tli.tasks.retrieval`. Imports go one way: tasks → engine, never back.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "Corpus": "tli.retrieval.data",
    "Query": "tli.retrieval.data",
    "RetrievalData": "tli.retrieval.data",
    "read_qrels": "tli.retrieval.trec",
    "read_run": "tli.retrieval.trec",
    "write_qrels": "tli.retrieval.trec",
    "write_run": "tli.retrieval.trec",
    "METRICS": "tli.retrieval.ranking_metrics",
    "per_query": "tli.retrieval.ranking_metrics",
    "mean_scores": "tli.retrieval.ranking_metrics",
    "exact_top_k": "tli.retrieval.search",
    "search": "tli.retrieval.search",
    "BM25Index": "tli.retrieval.bm25",
    "rrf": "tli.retrieval.fusion",
    "LLMEncoder": "tli.retrieval.encode",
    "DenseRecipe": "tli.retrieval.encode",
    "encode_texts": "tli.retrieval.encode",
    "dense_ranking": "tli.retrieval.rank",
    "bm25_ranking": "tli.retrieval.rank",
    "fused_ranking": "tli.retrieval.rank",
    "BiEncoderOptions": "tli.retrieval.biencoder",
    "build_biencoder": "tli.retrieval.biencoder",
    "train_biencoder": "tli.retrieval.biencoder",
    "SentenceEncoder": "tli.retrieval.biencoder",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'tli.retrieval' has no attribute {name!r}")
    return getattr(importlib.import_module(_API[name]), name)
