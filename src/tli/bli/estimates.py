"""Precision@k and MRR of a retrieval, each with its confidence interval and its chance level.

P@k gets a Wilson score interval, MRR a percentile bootstrap interval over queries; the chance levels are
the exact expectations under a uniformly random ranking, so a figure can be read against what guessing
gives with the same number of candidates and gold translations.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import binomtest, hypergeom

from tli.errors import ConfigError
from tli.stats import bootstrap_ci_mean

PRECISION_KS = (1, 5, 10)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval."""

    value: float
    low: float
    high: float


def _as_ranks(ranks: Any) -> np.ndarray:
    arr = np.asarray(ranks.cpu() if isinstance(ranks, torch.Tensor) else ranks)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) or arr.min() < 1:
        raise ValueError("ranks must be a non-empty 1-D array of integers >= 1")
    return arr.astype(np.int64)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")


def precision_at_k_with_ci(ranks: Any, k: int, confidence: float = 0.95) -> Estimate:
    """P@k with a Wilson score interval.

    ``P@k = x / n`` with ``x = #{i : rank_i ≤ k}`` over ``n`` queries. The Wilson interval (Wilson, 1927;
    ``scipy.stats.binomtest(x, n).proportion_ci(method="wilson")``) is
    ``(p̂ + z²/2n ± z √(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)``, ``z`` the normal quantile: unlike the normal
    approximation it stays inside [0, 1] and is not degenerate at P@k = 0 or 1, the usual case for
    small control sets.

    Args:
        ranks: ``(n,)`` integer ranks ≥ 1.
        k: cut-off ≥ 1.
    """
    arr, k = _as_ranks(ranks), _check_k(k)
    _check_confidence(confidence)
    hits = int((arr <= k).sum())
    interval = binomtest(hits, arr.size).proportion_ci(confidence_level=confidence, method="wilson")
    return Estimate(hits / arr.size, float(interval.low), float(interval.high))


def chance_precision_at_k(n_gold_per_query: Any, n_candidates: int, k: int) -> float:
    """Expected P@k of a uniformly random ranking.

    ``chance = mean_i [1 − C(n − g_i, k) / C(n, k)]``: the probability that at least one of query ``i``'s
    ``g_i`` gold candidates lands in the top ``k`` of ``n``. A word with several translations has a higher
    chance level than ``k / n``.

    Args:
        n_gold_per_query: ``(n_queries,)`` number of distinct gold candidates of each query (1 ≤ g ≤ n).
        n_candidates: ``n``, the number of candidates ranked.
        k: cut-off ≥ 1.
    """
    golds, n, k = _check_golds(n_gold_per_query, n_candidates), int(n_candidates), _check_k(k)
    # With k >= n every candidate is in the top k: a hit is certain (and C(n, k) would be 0).
    by_g = {g: 1.0 if k >= n else 1.0 - math.comb(n - g, k) / math.comb(n, k) for g in set(golds.tolist())}
    return float(np.mean([by_g[g] for g in golds.tolist()]))


def chance_mrr(n_gold_per_query: Any, n_candidates: int) -> float:
    """Expected MRR of a uniformly random ranking.

    With ``g`` gold among ``n`` candidates, the first gold position ``R`` has ``P(R ≥ r) = C(n − g, r − 1) /
    C(n, r − 1)`` (no gold among the first ``r − 1``; the hypergeometric ``pmf(0)``), so ``chance =
    mean_i Σ_r P(R_i = r) / r``. With ``g = 1`` it is ``H_n / n`` (``H_n`` the harmonic number).
    """
    golds, n = _check_golds(n_gold_per_query, n_candidates), int(n_candidates)
    by_g = {}
    for g in set(golds.tolist()):
        r = np.arange(1, n - g + 2)  # possible first-gold positions
        survival = hypergeom.pmf(0, n, g, np.arange(0, n - g + 2))  # P(R ≥ r) for r = 1 .. n − g + 2
        by_g[g] = float(((survival[:-1] - survival[1:]) / r).sum())
    return float(np.mean([by_g[g] for g in golds.tolist()]))


def _check_golds(n_gold_per_query: Any, n_candidates: int) -> np.ndarray:
    arr = np.asarray(
        n_gold_per_query.cpu() if isinstance(n_gold_per_query, torch.Tensor) else n_gold_per_query
    ).astype(np.int64)
    if arr.ndim != 1 or arr.size == 0 or arr.min() < 1 or arr.max() > n_candidates:
        raise ValueError(f"each query needs 1..{n_candidates} gold candidates, got {arr.tolist()[:10]}")
    return arr


def mrr_with_ci(
    ranks: Any, confidence: float = 0.95, n_boot: int = 10_000, rng: np.random.Generator | int | None = 0
) -> Estimate:
    """MRR ``= mean_i 1 / rank_i`` with a percentile bootstrap interval over queries
    (:func:`tli.stats.bootstrap_ci_mean`)."""
    reciprocal = 1.0 / _as_ranks(ranks)
    low, high = bootstrap_ci_mean(reciprocal, n_boot=n_boot, confidence=confidence, rng=rng)
    return Estimate(float(reciprocal.mean()), low, high)


@dataclass(frozen=True)
class RetrievalReport:
    """BLI figures of one retrieval, each beside its interval and its chance level."""

    method: str
    """``cosine`` or ``csls``."""
    mapping: str
    """``none`` (the model's own space) or ``procrustes`` (queries mapped by the fitted orthogonal W)."""
    n_queries: int
    n_candidates: int
    csls_k: int | None
    confidence: float
    """Level of every interval (Wilson for P@k, percentile bootstrap for MRR)."""
    p_at_1: float
    p_at_1_ci_low: float
    p_at_1_ci_high: float
    p_at_1_chance: float
    p_at_5: float
    p_at_5_ci_low: float
    p_at_5_ci_high: float
    p_at_5_chance: float
    p_at_10: float
    p_at_10_ci_low: float
    p_at_10_ci_high: float
    p_at_10_chance: float
    mrr: float
    mrr_ci_low: float
    mrr_ci_high: float
    mrr_chance: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def retrieval_report(
    ranks: Any,
    n_gold_per_query: Any,
    n_candidates: int,
    *,
    method: str,
    mapping: str = "none",
    csls_k: int | None = None,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    rng: np.random.Generator | int | None = 0,
) -> RetrievalReport:
    """P@1/5/10 (Wilson intervals, chance levels) and MRR (bootstrap interval, chance level) of ``ranks``."""
    figures: dict[str, float] = {}
    for k in PRECISION_KS:
        estimate = precision_at_k_with_ci(ranks, k, confidence)
        figures[f"p_at_{k}"], figures[f"p_at_{k}_ci_low"] = estimate.value, estimate.low
        figures[f"p_at_{k}_ci_high"] = estimate.high
        figures[f"p_at_{k}_chance"] = chance_precision_at_k(n_gold_per_query, n_candidates, k)
    mrr = mrr_with_ci(ranks, confidence, n_boot, rng)
    return RetrievalReport(
        method=method,
        mapping=mapping,
        n_queries=int(_as_ranks(ranks).size),
        n_candidates=int(n_candidates),
        csls_k=csls_k,
        confidence=confidence,
        **figures,
        mrr=mrr.value,
        mrr_ci_low=mrr.low,
        mrr_ci_high=mrr.high,
        mrr_chance=chance_mrr(n_gold_per_query, n_candidates),
    )


def _check_k(k: int) -> int:
    if int(k) < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    return int(k)
