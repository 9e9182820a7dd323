"""Systems that rank a :class:`~tli.retrieval.data.RetrievalData`: dense encoders, BM25, and their fusion.

Each returns a :class:`Ranking`: a tie-free run (``{query id: {passage id: score}}``, the top ``depth``
passages of every query) and the details a report needs (what was scored, what could not be, how long it
took). Passages with an empty text are never encoded or indexed; they are counted in ``details``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tli.errors import ConfigError
from tli.retrieval.bm25 import BM25Index
from tli.retrieval.data import RetrievalData
from tli.retrieval.encode import Encoder, encode_texts
from tli.retrieval.fusion import rrf
from tli.retrieval.ranking_metrics import CURVE_METRIC, mean_scores
from tli.retrieval.search import search
from tli.retrieval.trec import Run, run_from_ranking


@dataclass
class Ranking:
    """A system's run on one query set, and how it was produced."""

    run: Run
    details: dict[str, Any] = field(default_factory=dict)


def unscorable_details(data: RetrievalData, positions: list[int]) -> dict[str, Any]:
    """How many passages a system could not score, and how many of them are relevant to some query."""
    scored = set(positions)
    missing = [data.corpus.ids[i] for i in range(len(data.corpus)) if i not in scored]
    relevant = {doc for query in data.qrels for doc in data.relevant(query)}
    return {
        "passages_scored": len(positions),
        "passages_unscored": len(missing),
        "relevant_passages_unscored": len(relevant & set(missing)),
        "unscored_examples": missing[:5],
    }


def dense_ranking(
    encoder: Encoder,
    data: RetrievalData,
    *,
    layer: int,
    curve_layers: tuple[int, ...] = (),
    depth: int = 100,
    center: bool = False,
    with_title: bool = True,
    cache: bool | str | None = True,
    chunk_size: int = 1024,
    backend: str = "torch",
    device: str = "cpu",
    progress: bool | None = None,
) -> tuple[Ranking, dict[int, float]]:
    """Rank ``data``'s passages for its queries by cosine similarity of the encoder's vectors at ``layer``.

    Queries and passages are encoded once, at every layer in ``encoder.layers`` (one batched pass per
    chunk), and cached; the run uses ``layer`` and the curve ``{layer: MRR@10}`` every layer of
    ``curve_layers``.

    Args:
        encoder: Encoder whose ``layers`` include ``layer`` and ``curve_layers``.
        center: Subtract each side's mean vector (queries' mean from queries, passages' mean from passages)
            at the layer, then re-normalise — removes the direction every decoder state shares.

    Raises:
        ConfigError: a layer the encoder does not keep.
    """
    for wanted in (layer, *curve_layers):
        if wanted not in encoder.layers:
            raise ConfigError(f"layer {wanted} is not among the encoded layers {list(encoder.layers)}")
    start = time.perf_counter()
    positions = data.corpus.scorable()
    doc_ids = [data.corpus.ids[i] for i in positions]
    queries, corpus = _encode_queries_and_passages(
        encoder, data, positions, with_title=with_title, cache=cache, chunk_size=chunk_size, progress=progress
    )
    encode_seconds = time.perf_counter() - start

    def run_at(index: int, k: int) -> Run:
        position = encoder.layers.index(index)
        q_mean = queries.layer_mean(position) if center else None
        d_mean = corpus.layer_mean(position) if center else None
        top = search(
            queries.matrix(position, q_mean),
            corpus.layer_chunks(position, d_mean),
            k,
            backend=backend,
            device=device,
        )
        return run_from_ranking(data.query_ids, doc_ids, top.indices, top.scores)

    search_start = time.perf_counter()
    run = run_at(layer, depth)
    search_seconds = time.perf_counter() - search_start
    curve = {}
    for index in curve_layers:
        shallow = run if index == layer else run_at(index, 10)
        curve[index] = mean_scores(data.qrels, shallow, (CURVE_METRIC,))[CURVE_METRIC]
    details = {
        **unscorable_details(data, positions),
        "layer": layer,
        "center": center,
        "depth": depth,
        "search_backend": backend,
        "encode_seconds": encode_seconds,
        "search_seconds": search_seconds,
        "embedding_cache": str(corpus.folder) if corpus.folder is not None else None,
        "truncated": dict(getattr(encoder, "truncated", {})),
    }
    return Ranking(run, details), curve


def _encode_queries_and_passages(
    encoder: Encoder,
    data: RetrievalData,
    positions: list[int],
    *,
    with_title: bool,
    cache: bool | str | None,
    chunk_size: int,
    progress: bool | None,
):
    """The queries' and the scorable passages' vectors at every layer of the encoder (cached)."""
    passages = [data.corpus.document(i, with_title=with_title) for i in positions]
    queries = encode_texts(
        encoder,
        data.query_texts,
        "query",
        cache=cache,
        chunk_size=chunk_size,
        progress=progress,
        desc=f"{data.task} {data.language} queries",
    )
    corpus = encode_texts(
        encoder,
        passages,
        "passage",
        cache=cache,
        chunk_size=chunk_size,
        progress=progress,
        desc=f"{data.task} {data.language} passages",
    )
    return queries, corpus


def bm25_ranking(
    data: RetrievalData,
    *,
    k1: float = 0.9,
    b: float = 0.4,
    depth: int = 100,
    with_title: bool = True,
) -> Ranking:
    """BM25 (:mod:`tli.retrieval.bm25`) with the passage language's tokenisation.

    Queries are analysed with the same analyzer (the passage language's): for cross-lingual sets BM25 only
    matches words the two languages share (names, numbers), which is the point of showing it.
    """
    start = time.perf_counter()
    positions = data.corpus.scorable()
    index = BM25Index(
        [data.corpus.document(i, with_title=with_title) for i in positions], data.passage_language, k1=k1, b=b
    )
    top, no_terms = index.search(data.query_texts, depth)
    mapped = np.where(top.indices >= 0, np.asarray(positions, dtype=np.int64)[np.maximum(top.indices, 0)], -1)
    run = run_from_ranking(data.query_ids, data.corpus.ids, mapped, top.scores)
    empty = set(index.empty_documents)  # positions in `positions` whose passage has no token to index
    details = {
        **unscorable_details(data, [p for i, p in enumerate(positions) if i not in empty]),
        "k1": k1,
        "b": b,
        "depth": depth,
        "analyzer": f"{data.passage_language}: NFKC, lower case, Unicode words, bm25s stopwords if any",
        "passages_without_terms": len(index.empty_documents),
        "queries_without_matching_terms": len(no_terms),
        "seconds": time.perf_counter() - start,
    }
    return Ranking(run, details)


def fused_ranking(rankings: list[Ranking], names: list[str], *, k: int = 60, depth: int = 100) -> Ranking:
    """Reciprocal rank fusion (:func:`tli.retrieval.fusion.rrf`) of ``rankings``."""
    start = time.perf_counter()
    run = rrf([r.run for r in rankings], k=k, depth=depth)
    return Ranking(
        run, {"method": "rrf", "k": k, "of": names, "depth": depth, "seconds": time.perf_counter() - start}
    )
