"""Exact top-k search by inner product in bounded memory, with deterministic ties.

Scores are ``s(q, d) = q · d`` (cosine when rows are L2-normalised). The corpus arrives as chunks of rows
(from memory or from the on-disk embedding cache) and queries are taken in blocks, so the largest array is
one ``(query block, corpus chunk)`` score matrix plus a running ``(queries, k)`` best list — never the full
``(queries, corpus)`` matrix. 1,000 queries × 136k passages thus need a few tens of MiB of work space
instead of 545 MB.

Ties are broken by corpus position (lower first), in every chunking: :func:`top_k_block` picks, among
scores equal to the k-th largest, the lowest positions, and :func:`merge_top_k` re-sorts the running list by
(score descending, position ascending). The result is the ranking a full sort by ``(−score, position)``
gives, so it does not depend on chunk or block sizes.

FAISS (``IndexFlatIP``, also exact) is used only when asked for and installed; it needs the whole corpus
in memory and breaks ties its own way.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from tli.errors import ConfigError

BACKENDS = ("torch", "faiss")
_BLOCK_SCORES = 1 << 24  # scores per (query block × corpus chunk) matrix: 64 MiB of float32


@dataclass
class TopK:
    """The best ``k`` corpus positions per query, in rank order.

    Attributes:
        indices: ``(n_queries, k)`` int64 corpus positions; ``-1`` in empty slots (corpus smaller than k).
        scores: ``(n_queries, k)`` float32 scores; ``-inf`` in empty slots.
    """

    indices: np.ndarray
    scores: np.ndarray


def top_k_block(scores: torch.Tensor, k: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best columns of each row, ties broken by the lowest column.

    Args:
        scores: ``(b, c)`` scores of a query block against a corpus chunk whose first row is position
            ``offset``.
        k: How many to keep (capped by ``c``).

    Returns:
        ``(positions, values)``, each ``(b, min(k, c))``, each row sorted by (score descending, position
        ascending); positions include ``offset``.
    """
    b, c = scores.shape
    k = min(k, c)
    threshold = torch.topk(scores, k, dim=1).values[:, -1:]  # (b, 1): the k-th largest score
    above = scores > threshold
    at = scores == threshold
    need = k - above.sum(dim=1, keepdim=True)  # how many tied scores complete the k
    chosen = above | (at & (at.cumsum(dim=1) <= need))  # the lowest tied columns first
    columns = chosen.nonzero()[:, 1].view(b, k)  # row-major: each row's columns ascending
    values = scores.gather(1, columns)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices  # stable: ties keep column order
    return columns.gather(1, order) + offset, values.gather(1, order)


def merge_top_k(positions: torch.Tensor, values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``k`` best of candidate lists, ordered by (score descending, position ascending).

    Args:
        positions: ``(b, m)`` corpus positions (any order).
        values: ``(b, m)`` their scores.
    """
    by_position = torch.sort(positions, dim=1, stable=True).indices
    positions, values = positions.gather(1, by_position), values.gather(1, by_position)
    by_score = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
    return positions.gather(1, by_score), values.gather(1, by_score)


def exact_top_k(
    queries: np.ndarray | torch.Tensor,
    chunks: Iterable[tuple[int, np.ndarray | torch.Tensor]],
    k: int,
    *,
    query_block: int | None = None,
    device: str | torch.device = "cpu",
) -> TopK:
    """Exact top-``k`` corpus positions per query by inner product, one corpus chunk at a time.

    Args:
        queries: ``(n_queries, H)`` query vectors.
        chunks: ``(start position, (c, H) vectors)`` pairs covering the corpus (any chunk sizes, in order);
            may be a generator reading from disk, consumed once.
        k: Results per query.
        query_block: Queries per score matrix (None: as many as fit in 2^24 scores with the largest chunk).
        device: Where scores are computed (``cuda`` when available is faster; results are the same).

    Returns:
        :class:`TopK` with ``min(k, corpus size)`` filled slots per query (``-1`` / ``-inf`` after them).
    """
    if k < 1:
        raise ConfigError(f"top-k depth must be >= 1, got {k}")
    device = torch.device(device)
    q = torch.as_tensor(np.asarray(queries, dtype=np.float32) if isinstance(queries, np.ndarray) else queries)
    q = q.float().to(device)  # (n_queries, H)
    n = len(q)
    best_pos = torch.full((n, 0), -1, dtype=torch.long, device=device)
    best_val = torch.full((n, 0), float("-inf"), device=device)
    for start, chunk in chunks:
        docs = torch.as_tensor(
            np.asarray(chunk, dtype=np.float32) if isinstance(chunk, np.ndarray) else chunk
        )
        docs = docs.float().to(device)  # (c, H)
        if docs.shape[1] != q.shape[1]:
            raise ValueError(f"query dimension {q.shape[1]} differs from document dimension {docs.shape[1]}")
        block = query_block or max(1, _BLOCK_SCORES // max(1, len(docs)))
        new_pos, new_val = [], []
        for lo in range(0, n, block):
            scores = q[lo : lo + block] @ docs.T  # (b, c)
            pos, val = top_k_block(scores, k, offset=start)
            merged = merge_top_k(
                torch.cat([best_pos[lo : lo + block], pos], 1),
                torch.cat([best_val[lo : lo + block], val], 1),
                k,
            )
            new_pos.append(merged[0])
            new_val.append(merged[1])
        if n:
            best_pos, best_val = torch.cat(new_pos), torch.cat(new_val)
    return _padded(best_pos.cpu().numpy(), best_val.cpu().numpy(), k)


def _padded(positions: np.ndarray, values: np.ndarray, k: int) -> TopK:
    n, filled = positions.shape
    indices = np.full((n, k), -1, dtype=np.int64)
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    indices[:, :filled], scores[:, :filled] = positions, values
    return TopK(indices, scores)


def faiss_top_k(queries: np.ndarray, chunks: Iterable[tuple[int, np.ndarray]], k: int) -> TopK:
    """Exact inner-product top-k with FAISS ``IndexFlatIP`` (all corpus vectors in memory).

    Raises:
        ConfigError: FAISS is not installed.
    """
    if importlib.util.find_spec("faiss") is None:
        raise ConfigError("search backend faiss: FAISS is not installed (pip install faiss-cpu), use torch")
    import faiss

    index = None
    for _, chunk in chunks:
        chunk = np.ascontiguousarray(chunk, dtype=np.float32)
        if index is None:
            index = faiss.IndexFlatIP(chunk.shape[1])
        index.add(chunk)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if index is None:
        return _padded(np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32), k)
    values, positions = index.search(queries, min(k, index.ntotal))
    return _padded(positions.astype(np.int64), values.astype(np.float32), k)


def search(
    queries: np.ndarray,
    chunks: Iterable[tuple[int, np.ndarray]],
    k: int,
    *,
    backend: str = "torch",
    device: str | torch.device = "cpu",
) -> TopK:
    """Top-``k`` by inner product with the chosen backend (``torch``: chunked exact; ``faiss``: FAISS flat).

    Raises:
        ConfigError: an unknown backend, or FAISS asked for but not installed.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"search backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "faiss":
        return faiss_top_k(queries, chunks, k)
    return exact_top_k(queries, chunks, k, device=device)


def in_chunks(
    matrix: np.ndarray | torch.Tensor, size: int
) -> Iterator[tuple[int, np.ndarray | torch.Tensor]]:
    """``(start, rows)`` slices of an in-memory matrix, ``size`` rows each."""
    for start in range(0, len(matrix), size):
        yield start, matrix[start : start + size]


def naive_top_k(queries: np.ndarray, documents: np.ndarray, k: int) -> TopK:
    """Reference implementation: the full score matrix and a full sort by (−score, position).

    For tests and the benchmark's naive baseline only; memory grows with ``queries × documents``.
    """
    scores = np.asarray(queries, dtype=np.float32) @ np.asarray(documents, dtype=np.float32).T
    positions = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    order = np.lexsort((positions, -scores), axis=1)[:, :k]
    return _padded(order.astype(np.int64), np.take_along_axis(scores, order, axis=1), k)
