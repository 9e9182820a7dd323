"""Retrieval over a full candidate vocabulary, in bounded memory: cosine or CSLS ranks of the gold translations.

:class:`VocabularyRetrieval` scores queries in blocks against every candidate, so a 50k-word vocabulary never
needs a full ``(queries, candidates)`` score matrix in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from tli.bli.estimates import RetrievalReport, _check_k, retrieval_report
from tli.errors import ConfigError
from tli.metrics import CSLS_K, PairIndex

METHODS = ("cosine", "csls")
_BLOCK_ELEMENTS = 1 << 24  # scores per block (64 MiB of float32) when chunk_size is not given


@dataclass(frozen=True)
class Retrieved:
    """Per-query outcome of a retrieval."""

    ranks: torch.Tensor  # (n_queries,) long: rank of the best gold candidate, 1 = first
    top1: torch.Tensor  # (n_queries,) long: index of the highest-scoring candidate (first on ties)


class VocabularyRetrieval:
    """Rank the gold translations of each query among all candidates, in bounded memory.

    ``rank_i = 1 + #{j ∉ gold_i : score_ij ≥ max_{g ∈ gold_i} score_ig}`` — the best gold translation
    counts, and ties count against it, exactly as :func:`tli.metrics.retrieval_ranks`. Scores are
    ``cosine(x, y) = x·y`` (rows are L2-normalised) or CSLS (:meth:`csls_block`).

    Queries are processed in blocks of ``chunk_size`` rows against all candidates, so the largest array is
    ``(chunk_size, n_candidates)`` scores; the default chunk holds 2^24 scores (64 MiB). 1k queries × 50k
    candidates × hidden 4096 thus needs the two embedding matrices plus about 80 MiB of work space, never
    the 200 MB score matrix. CSLS costs a second pass over the blocks (for ``r_S``).

    Args:
        queries: ``(n_queries, H)`` L2-normalised source embeddings.
        candidates: ``(n_candidates, H)`` L2-normalised target embeddings.
        gold: pair ``k`` says candidate ``gold.tgt[k]`` translates query ``gold.src[k]``; every query needs
            at least one gold candidate. Repeated pairs count once.
        chunk_size: queries per block; None = as many as fit in 2^24 scores.
    """

    def __init__(
        self,
        queries: torch.Tensor,
        candidates: torch.Tensor,
        gold: PairIndex,
        *,
        chunk_size: int | None = None,
    ) -> None:
        queries, candidates = torch.as_tensor(queries).float(), torch.as_tensor(candidates).float()
        if queries.ndim != 2 or candidates.ndim != 2 or queries.shape[1] != candidates.shape[1]:
            raise ValueError(
                f"queries {tuple(queries.shape)} and candidates {tuple(candidates.shape)} must be (n, H) "
                "with the same H"
            )
        if (gold.n_src, gold.n_tgt) != (len(queries), len(candidates)):
            raise ValueError(
                f"gold indexes {gold.n_src} queries × {gold.n_tgt} candidates, "
                f"embeddings have {len(queries)} × {len(candidates)}"
            )
        if chunk_size is not None and chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1 or None, got {chunk_size}")
        n_c = len(candidates)
        src, tgt = gold.src.long().to(queries.device), gold.tgt.long().to(queries.device)
        if len(src) and (src.min() < 0 or src.max() >= len(queries) or tgt.min() < 0 or tgt.max() >= n_c):
            raise ValueError("gold indices fall outside the query or candidate rows")
        keys = torch.unique(src * n_c + tgt)  # sorted by query, then candidate
        self.gold_src, self.gold_tgt = keys // n_c, keys % n_c  # (n_gold,) each
        self.n_gold_per_query = torch.bincount(self.gold_src, minlength=len(queries))  # (n_queries,)
        if len(queries) == 0 or bool((self.n_gold_per_query == 0).any()):
            missing = int((self.n_gold_per_query == 0).nonzero()[0]) if len(queries) else None
            raise ValueError(f"every query needs a gold candidate (query {missing} has none)")
        self.queries, self.candidates, self.chunk_size = queries, candidates, chunk_size

    @property
    def n_queries(self) -> int:
        return len(self.queries)

    @property
    def n_candidates(self) -> int:
        return len(self.candidates)

    def _cosine_blocks(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """``(start, stop, queries[start:stop] @ candidates.T)`` for consecutive query blocks."""
        step = self.chunk_size or max(1, _BLOCK_ELEMENTS // max(1, self.n_candidates))
        for start in range(0, self.n_queries, step):
            stop = min(self.n_queries, start + step)
            yield start, stop, self.queries[start:stop] @ self.candidates.T  # (b, n_candidates)

    def candidate_neighbourhood(self, k: int = CSLS_K) -> torch.Tensor:
        """``r_S(y)``: mean cosine of each candidate with its ``k`` nearest queries; ``(n_candidates,)``.

        ``k`` is capped by the number of queries. A running top-k over query blocks keeps memory at one
        block plus ``(k, n_candidates)``.
        """
        k = min(_check_k(k), self.n_queries)
        best: torch.Tensor | None = None  # (≤ k, n_candidates): the largest cosines seen so far
        for _, _, block in self._cosine_blocks():
            stacked = block if best is None else torch.cat([best, block])
            best = stacked.topk(min(k, len(stacked)), dim=0).values
        assert best is not None and len(best) == k
        return best.mean(dim=0)

    def csls_block(self, cosine: torch.Tensor, r_s: torch.Tensor, k: int) -> torch.Tensor:
        """CSLS of a query block (Conneau et al., 2018, "Word translation without parallel data").

        ``CSLS(x, y) = 2 cos(x, y) − r_T(x) − r_S(y)``: ``r_T(x)`` is the mean cosine of query ``x`` with
        its ``k`` nearest candidates (capped by the candidate count), ``r_S(y)`` the mean cosine of
        candidate ``y`` with its ``k`` nearest queries (:meth:`candidate_neighbourhood`). Overwrites
        ``cosine`` (``(b, n_candidates)``) to save a copy, and returns it.
        """
        r_t = cosine.topk(min(k, self.n_candidates), dim=1).values.mean(dim=1, keepdim=True)  # (b, 1)
        return cosine.mul_(2).sub_(r_t).sub_(r_s[None, :])

    def _score_blocks(self, method: str, csls_k: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        if method not in METHODS:
            raise ConfigError(f"retrieval method {method!r} is not one of {', '.join(METHODS)}")
        r_s = self.candidate_neighbourhood(csls_k) if method == "csls" else None
        for start, stop, block in self._cosine_blocks():
            yield start, stop, block if r_s is None else self.csls_block(block, r_s, csls_k)

    def scores(self, method: str = "cosine", csls_k: int = CSLS_K) -> torch.Tensor:
        """The full ``(n_queries, n_candidates)`` score matrix — for small problems and tests only."""
        return torch.cat([block for _, _, block in self._score_blocks(method, csls_k)])

    def retrieve(self, method: str = "cosine", csls_k: int = CSLS_K) -> Retrieved:
        """Ranks of the best gold candidate and the top-1 candidate of every query (one pass over blocks)."""
        ranks = torch.empty(self.n_queries, dtype=torch.long)
        top1 = torch.empty(self.n_queries, dtype=torch.long)
        device = self.queries.device
        bounds = torch.searchsorted(self.gold_src, torch.arange(self.n_queries + 1, device=device)).tolist()
        for start, stop, block in self._score_blocks(method, csls_k):
            lo, hi = bounds[start], bounds[stop]
            rows, cols = self.gold_src[lo:hi] - start, self.gold_tgt[lo:hi]  # gold cells of this block
            gold_scores = block[rows, cols]
            best = torch.full((stop - start,), float("-inf"), device=device)
            best = best.scatter_reduce(0, rows, gold_scores, "amax")  # (b,) best gold score per query
            at_or_above = (block >= best[:, None]).sum(dim=1)  # every candidate scoring ≥ the best gold…
            gold_at_best = torch.zeros(stop - start, dtype=torch.long, device=device).scatter_add(
                0, rows, (gold_scores >= best[rows]).long()
            )  # …minus the gold ones among them
            ranks[start:stop] = (at_or_above - gold_at_best + 1).cpu()
            top1[start:stop] = block.argmax(dim=1).cpu()
        return Retrieved(ranks=ranks, top1=top1)

    def ranks(self, method: str = "cosine", csls_k: int = CSLS_K) -> torch.Tensor:
        """``(n_queries,)`` rank of the best gold candidate (see the class docstring)."""
        return self.retrieve(method, csls_k).ranks

    def report(
        self,
        method: str = "cosine",
        *,
        csls_k: int = CSLS_K,
        mapping: str = "none",
        confidence: float = 0.95,
        n_boot: int = 10_000,
        rng: np.random.Generator | int | None = 0,
        ranks: torch.Tensor | None = None,
    ) -> RetrievalReport:
        """:func:`retrieval_report` of :meth:`ranks` (or of ``ranks`` already retrieved with ``method``)."""
        return retrieval_report(
            self.ranks(method, csls_k) if ranks is None else ranks,
            self.n_gold_per_query,
            self.n_candidates,
            method=method,
            mapping=mapping,
            csls_k=csls_k if method == "csls" else None,
            confidence=confidence,
            n_boot=n_boot,
            rng=rng,
        )
