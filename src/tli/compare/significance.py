"""Paired significance of a difference between two systems scored on the same examples.

For a metric ``M`` computed from a set of per-example rows (a mean of per-example scores, or a corpus
score such as BLEU), two systems ``A`` and ``B`` scored on the same ``n`` examples differ by
``Δ = M(A) − M(B)``. Two tests, both on the examples, both from scipy:

- **approximate randomisation** (:func:`scipy.stats.permutation_test`, ``permutation_type="samples"``):
  under H0 the two systems are exchangeable on every example, so each example's pair of outputs is swapped
  with probability ½ and ``Δ`` recomputed; ``p = (1 + #{|Δ_r| ≥ |Δ|}) / (R + 1)`` (two-sided). This is the
  primary p-value (the standard test for MT and summarisation metrics, valid for corpus-level scores).
- **paired bootstrap** (:func:`scipy.stats.bootstrap`, ``paired=True``): examples resampled with replacement,
  both systems together; the percentile interval of ``Δ`` is the reported 95 % CI.

For mean metrics the statistic is vectorised (``Δ = mean(a − b)``); for corpus metrics the rows are
rescored by the task's ``corpus_score`` on every resample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from tli.errors import ConfigError


@dataclass(frozen=True)
class PairedDifference:
    """``Δ = M(A) − M(B)`` on the same examples, its bootstrap CI and the randomisation p-value."""

    n: int
    score_a: float
    score_b: float
    difference: float
    ci95_low: float
    ci95_high: float
    p_randomisation: float
    p_value: float
    """The primary p-value (approximate randomisation)."""

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def align(rows_a: Sequence[Mapping[str, Any]], rows_b: Sequence[Mapping[str, Any]]) -> tuple[list, list]:
    """The two systems' rows in the same example order, matched by ``id``.

    Raises:
        ConfigError: the two sets of rows are not the same examples.
    """
    by_id = {row["id"]: row for row in rows_b}
    missing = [row["id"] for row in rows_a if row["id"] not in by_id]
    if missing or len(by_id) != len(rows_a):
        raise ConfigError(
            f"paired test needs the same examples for both systems (differs at id {missing[:1]})"
        )
    return list(rows_a), [by_id[row["id"]] for row in rows_a]


def paired_difference(
    rows_a: Sequence[Mapping[str, Any]],
    rows_b: Sequence[Mapping[str, Any]],
    *,
    corpus_score: Callable[[list], float] | None = None,
    mean_of: str | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
) -> PairedDifference:
    """Compare systems A and B on the same examples (rows matched by ``id``).

    Args:
        rows_a, rows_b: per-example rows of each system.
        corpus_score: rows → metric (for corpus metrics such as BLEU).
        mean_of: the per-row field whose mean is the metric (fast path; e.g. ``"rougeL"``, ``"correct"``).
        n_resamples: randomisation and bootstrap resamples.
        rng: seed or Generator (randomisation first, then bootstrap).
    """
    if (corpus_score is None) == (mean_of is None):
        raise ConfigError("paired_difference needs exactly one of corpus_score and mean_of")
    a, b = align(rows_a, rows_b)
    n = len(a)
    if n < 2:
        raise ConfigError(f"paired test needs at least 2 examples, got {n}")
    gen = np.random.default_rng(rng)
    if mean_of is not None:
        x = np.array([float(row[mean_of]) for row in a])
        y = np.array([float(row[mean_of]) for row in b])

        def statistic(u, v, axis=-1):
            return np.mean(u, axis=axis) - np.mean(v, axis=axis)

        vectorized = True
        score_a, score_b = float(x.mean()), float(y.mean())
    else:
        pool = a + b  # index i is A's row for example i, n + i is B's
        x, y = np.arange(n), np.arange(n, 2 * n)

        def statistic(u, v):
            return corpus_score([pool[int(i)] for i in u]) - corpus_score([pool[int(j)] for j in v])

        vectorized = False
        score_a, score_b = corpus_score(a), corpus_score(b)
    observed = score_a - score_b
    if np.allclose(x, y) if mean_of is not None else all(ra == rb for ra, rb in zip(a, b, strict=True)):
        return PairedDifference(n, score_a, score_b, 0.0, 0.0, 0.0, 1.0, 1.0)
    randomisation = sps.permutation_test(
        (x, y),
        statistic,
        permutation_type="samples",
        vectorized=vectorized,
        n_resamples=n_resamples,
        alternative="two-sided",
        rng=gen,
    )
    boot = sps.bootstrap(
        (x, y),
        statistic,
        paired=True,
        vectorized=vectorized,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        rng=gen,
    )
    return PairedDifference(
        n=n,
        score_a=score_a,
        score_b=score_b,
        difference=observed,
        ci95_low=float(boot.confidence_interval.low),
        ci95_high=float(boot.confidence_interval.high),
        p_randomisation=float(randomisation.pvalue),
        p_value=float(randomisation.pvalue),
    )
