"""Paired significance of a difference between two systems scored on the same examples (one seed).

For a metric ``M`` computed from per-example rows (a mean of per-example scores, or a corpus score such as
BLEU), systems ``A`` and ``B`` scored on the same ``n`` examples differ by ``Δ = M(A) − M(B)``. Under H0
the two systems are exchangeable on every example. The test behind ``p_value`` is chosen by a fixed rule
(:func:`choose_test`), so that an exact or analytic test is used wherever one is valid and a Monte Carlo test
only where none is:

- **exact McNemar** — per-example scores all 0/1 (XNLI ``correct``; recall@k with one relevant passage):
  ``p`` = two-sided exact binomial test of the ``A``-only successes among the discordant examples
  (:func:`tli.stats.mcnemar_exact`, :func:`scipy.stats.binomtest`); smallest possible p ``2^{1−n}``.
- **exact sign-flip** — a mean metric whose paired differences ``d_i = a_i − b_i`` have at most
  :data:`EXACT_MAX` = 20 non-zero values ``k``: all ``2^k`` sign patterns are enumerated (vectorised, at most
  2²⁰ ≈ 10⁶ patterns), ``p = #{s : |Σ s_i d_i| ≥ |Σ d_i|} / 2^k``; smallest possible p ``2^{1−k}``.
- **paired t-test** — a mean metric with at least :data:`T_TEST_MIN` = 30 non-zero differences:
  ``t = mean(d) / (sd(d) / √n)`` on ``n − 1`` df (:func:`scipy.stats.ttest_1samp`). The claims are about
  means of bounded per-example scores (ROUGE-L F1, reciprocal ranks, all in [0, 1]), so the sample mean is
  close to normal at this size (central limit theorem; Dror et al. 2018, "The Hitchhiker's Guide to Testing
  Statistical Significance in NLP", recommend the t-test where its assumptions hold), and the t-test is the
  large-sample form of the sign-flip test (the permutation distribution of ``mean(d)`` tends to the same
  normal); ``tests/test_significance.py`` checks that the two agree. Its p-value has no floor.
- **approximate randomisation** (Monte Carlo) — corpus metrics (BLEU, chrF, macro-F1), and mean metrics
  with 21–29 non-zero differences: ``R`` random swap patterns (each example's two outputs swapped with
  probability ½; sign flips for a mean), ``p = (1 + #{r : |Δ_r| ≥ |Δ|}) / (R + 1)`` (the ``+1`` keeps a
  Monte Carlo p valid, Phipson & Smyth 2010). The swap distribution is symmetric about 0 (swapping every
  example negates Δ), so this two-sided p has the floor ``1/(R + 1)``; ``tli compare`` gives each family
  ``R ≥ 20·m/α`` resamples (:func:`family_resamples`), so that floor times a family of ``m`` hypotheses stays
  ``≤ α/20``. Corpus metrics are rescored from per-example sufficient statistics (sacrebleu's n-gram counts,
  a confusion-matrix row), so every resample costs one matrix product, not a rescoring of text.

(The Monte Carlo p is not scipy's ``permutation_test`` p, which is ``min(1, 2·min(p_less, p_greater))`` with
each one-sided ``p = (1 + count) / (R + 1)`` and so has twice the floor, ``2/(R + 1)``; for a symmetric null
the two estimate the same p.)

Every result also carries ``p_randomisation`` (the randomisation test of the same data: exact when at most
20 differences are non-zero, Monte Carlo otherwise) as a cross-check, the standard error ``se`` of ``Δ``
(``sd(d)/√n`` for means, the bootstrap standard deviation for corpus metrics: what the across-seed
combination in :mod:`tli.seeds` weighs seeds by), and the **paired bootstrap** percentile 95 % CI of ``Δ``
(examples resampled with replacement, both systems together).

**Non-inferiority** (:func:`paired_noninferiority`): "A is not worse than B by more than ``δ``" is the
one-sided test of H0 ``Δ ≤ −δ`` against H1 ``Δ > −δ``: ``t = (mean(d) + δ) / (sd(d)/√n)``, ``p = P(T_{n−1} ≥ t)``
(:func:`tli.stats.noninferiority_paired`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
from scipy import stats as sps

from tli.errors import ConfigError
from tli.retrieval.ranking_metrics import paired_t_test
from tli.stats import bootstrap_ci_mean, mcnemar_exact, noninferiority_paired

EXACT_MAX = 20
"""At most this many non-zero paired differences: exact sign-flip enumeration (2^20 patterns)."""
T_TEST_MIN = 30
"""At least this many non-zero paired differences: paired t-test (CLT for bounded per-example scores)."""
TESTS = {
    "mcnemar": "exact McNemar (binomial test on the discordant examples)",
    "sign-flip": "exact sign-flip (every sign pattern of the paired differences)",
    "t-test": "paired t-test (≥ 30 non-zero differences of bounded scores)",
    "randomisation": "approximate randomisation (Monte Carlo swaps)",
    "t-test-ranx": "paired t-test (ranx)",
    "noninferiority": "one-sided paired t-test against −margin (non-inferiority)",
}
"""Test key → the name written in ``results.json`` (``test``) and the report."""
_CHUNK = 1 << 22  # elements of a (resamples, examples) block held at once


class CorpusStatistics(Protocol):
    """A corpus metric as a function of per-example sufficient statistics summed over the examples."""

    stats: np.ndarray
    """``(n, j)`` per-example statistics (n-gram counts, a one-hot confusion cell, ...)."""

    def score_sum(self, summed: np.ndarray) -> float:
        """The metric of a corpus whose statistics sum to ``summed`` ``(j,)``."""


@dataclass(frozen=True)
class PairedDifference:
    """``Δ = M(A) − M(B)`` on the same examples: its test, p-value, standard error and bootstrap CI."""

    n: int
    score_a: float
    score_b: float
    difference: float
    ci95_low: float
    ci95_high: float
    p_randomisation: float
    """The randomisation test's p (exact enumeration for ≤ 20 non-zero differences, else Monte Carlo)."""
    p_value: float
    """The primary p-value, from ``test``."""
    test: str = TESTS["randomisation"]
    se: float = math.nan
    """Standard error of ``difference`` over the examples."""
    n_resamples: int = 0
    """Monte Carlo resamples behind ``p_value`` (0: exact or analytic)."""
    p_floor: float = 0.0
    """The smallest p-value ``test`` can give on these examples (0: no floor)."""
    kind: str = "difference"
    """``difference`` (two-sided) or ``non-inferiority`` (one-sided against ``−margin``)."""
    margin: float | None = None

    def to_dict(self) -> dict[str, Any]:
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


# --------------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------------


def _tolerance(observed: float) -> float:
    """Resampled statistics within this of ``|observed|`` count as "as extreme" (floating-point sums)."""
    return 1e-12 * max(1.0, abs(observed))


def sign_flip_exact(d) -> float:
    """Exact two-sided sign-flip p of ``mean(d) = 0``: ``#{s ∈ {±1}^k : |Σ s d| ≥ |Σ d|} / 2^k`` over the
    ``k`` non-zero ``d`` (zeros flip to themselves).

    Raises:
        ConfigError: more than :data:`EXACT_MAX` non-zero differences (``2^k`` patterns).
    """
    d = np.asarray(d, dtype=float)
    d = d[d != 0]
    k = d.size
    if k == 0:
        return 1.0
    if k > EXACT_MAX:
        raise ConfigError(
            f"exact sign-flip enumeration is limited to {EXACT_MAX} non-zero differences, got {k}"
        )
    observed = abs(float(d.sum()))
    patterns = np.arange(2**k, dtype=np.int64)[:, None]  # (2^k, 1)
    signs = 1 - 2 * ((patterns >> np.arange(k)) & 1)  # (2^k, k) in {+1, -1}
    sums = np.abs(signs.astype(np.float64) @ d)  # (2^k,)
    return float(np.count_nonzero(sums >= observed - _tolerance(observed)) / 2**k)


def _chunks(total: int, width: int) -> list[int]:
    size = max(1, _CHUNK // max(width, 1))
    return [min(size, total - start) for start in range(0, total, size)]


def sign_flip_monte_carlo(d, n_resamples: int, rng: np.random.Generator) -> float:
    """Monte Carlo sign-flip p: ``(1 + #{r : |Σ s_r d| ≥ |Σ d|}) / (R + 1)`` with uniform random signs."""
    d = np.asarray(d, dtype=float)
    observed = abs(float(d.sum()))
    if observed == 0 and not d.any():
        return 1.0
    hits = 0
    for size in _chunks(n_resamples, d.size):
        signs = 1.0 - 2.0 * rng.integers(0, 2, size=(size, d.size))  # (size, n)
        hits += int(np.count_nonzero(np.abs(signs @ d) >= observed - _tolerance(observed)))
    return (1 + hits) / (n_resamples + 1)


def swap_randomisation(
    a: CorpusStatistics, b: CorpusStatistics, n_resamples: int, rng
) -> tuple[float, float]:
    """Monte Carlo randomisation p of a corpus metric and the observed ``Δ``: each example's statistics are
    swapped between A and B with probability ½; ``p = (1 + #{|Δ_r| ≥ |Δ|}) / (R + 1)``."""
    total_a, total_b = a.stats.sum(axis=0), b.stats.sum(axis=0)
    observed = a.score_sum(total_a) - b.score_sum(total_b)
    delta = (b.stats - a.stats).astype(float)  # (n, j): what a swap moves from A's side to B's
    hits = 0
    for size in _chunks(n_resamples, delta.shape[0]):
        swaps = rng.integers(0, 2, size=(size, delta.shape[0])).astype(float)  # (size, n)
        moved = swaps @ delta  # (size, j)
        for row in moved:
            value = a.score_sum(total_a + row) - b.score_sum(total_b - row)
            hits += abs(value) >= abs(observed) - _tolerance(observed)
    return (1 + hits) / (n_resamples + 1), observed


def _bootstrap_corpus(a: CorpusStatistics, b: CorpusStatistics, n_boot: int, rng) -> np.ndarray:
    """``(n_boot,)`` paired bootstrap replicates of ``Δ`` from summed statistics."""
    n = a.stats.shape[0]
    values = []
    for size in _chunks(n_boot, n * a.stats.shape[1]):
        idx = rng.integers(0, n, size=(size, n))
        sums_a, sums_b = a.stats[idx].sum(axis=1), b.stats[idx].sum(axis=1)  # (size, j)
        values += [a.score_sum(x) - b.score_sum(y) for x, y in zip(sums_a, sums_b, strict=True)]
    return np.asarray(values, dtype=float)


def choose_test(d, *, binary: bool) -> str:
    """The test key for paired differences ``d`` of a mean metric (see the module docstring).

    ``binary``: every per-example score of both systems is 0 or 1.
    """
    if binary:
        return "mcnemar"
    nonzero = int(np.count_nonzero(np.asarray(d)))
    if nonzero <= EXACT_MAX:
        return "sign-flip"
    return "t-test" if nonzero >= T_TEST_MIN else "randomisation"


def mean_test(d, *, binary: bool, n_resamples: int, rng: np.random.Generator, test: str = "auto"):
    """``(p, test key, p_floor, resamples used)`` of ``mean(d) = 0`` by :func:`choose_test` (or ``test``)."""
    d = np.asarray(d, dtype=float)
    key = choose_test(d, binary=binary) if test == "auto" else test
    nonzero = d[d != 0]
    if key == "mcnemar":
        gained, lost = int(np.sum(d > 0)), int(np.sum(d < 0))
        after = np.r_[np.ones(gained), np.zeros(lost)]
        before = 1 - after
        p = mcnemar_exact(before, after).p if gained + lost else 1.0
        return p, key, min(1.0, 2.0 ** (1 - d.size)), 0
    if key == "sign-flip" or (key == "t-test" and nonzero.size and np.ptp(nonzero) == 0):
        # every non-zero difference equal: the t statistic is undefined, the exact sign-flip p is 2^(1-k)
        p = sign_flip_exact(nonzero) if nonzero.size <= EXACT_MAX else min(1.0, 2.0 ** (1 - nonzero.size))
        return p, "sign-flip", min(1.0, 2.0 ** (1 - max(nonzero.size, 1))), 0
    if key in ("t-test", "t-test-ranx"):
        if key == "t-test-ranx":
            return _ranx_t_test(d), key, 0.0, 0
        return float(sps.ttest_1samp(d, 0.0).pvalue), key, 0.0, 0
    return sign_flip_monte_carlo(d, n_resamples, rng), "randomisation", 1 / (n_resamples + 1), n_resamples


def _ranx_t_test(d: np.ndarray) -> float:
    return paired_t_test(d, np.zeros_like(d))


def randomisation_cross_check(d, n_resamples: int, rng: np.random.Generator) -> float:
    """The sign-flip randomisation p of ``d``: exact up to :data:`EXACT_MAX` non-zero values, else Monte Carlo."""
    d = np.asarray(d, dtype=float)
    nonzero = d[d != 0]
    if nonzero.size <= EXACT_MAX:
        return sign_flip_exact(d)
    if np.ptp(nonzero) == 0:  # every non-zero difference equal: only the identity and the full flip
        return min(1.0, 2.0 ** (1 - nonzero.size))
    return sign_flip_monte_carlo(d, n_resamples, rng)


def smallest_p(test: str, n: int, n_resamples: int = 0) -> float:
    """The smallest p-value ``test`` can give on ``n`` examples (``n_resamples`` for Monte Carlo tests).

    exact McNemar and exact sign-flip: ``2^{1−n}`` (every example differs, all one way); t-tests: 0 (no
    floor); approximate randomisation: ``1/(R + 1)``.
    """
    if test in ("mcnemar", "sign-flip"):
        return min(1.0, 2.0 ** (1 - n))
    if test == "randomisation":
        return 1.0 / (n_resamples + 1)
    return 0.0


def family_resamples(m: int, alpha: float, minimum: int) -> int:
    """Monte Carlo resamples for a family of ``m`` hypotheses: ``max(minimum, ⌈20·m/α⌉)``, so that the Monte
    Carlo floor ``m/(R + 1)`` of the family's smallest adjusted p stays below ``α/20``."""
    return max(int(minimum), math.ceil(20 * max(m, 1) / alpha))


# --------------------------------------------------------------------------------------------------
# Rows → tests
# --------------------------------------------------------------------------------------------------


def _values(rows: Sequence[Mapping[str, Any]], field: str) -> np.ndarray:
    return np.array([float(row[field]) for row in rows], dtype=float)


def _is_binary(*arrays: np.ndarray) -> bool:
    return all(np.isin(x, (0.0, 1.0)).all() for x in arrays)


def paired_difference(
    rows_a: Sequence[Mapping[str, Any]],
    rows_b: Sequence[Mapping[str, Any]],
    *,
    corpus_score: Callable[[list], float] | None = None,
    corpus_statistics: Callable[[list], CorpusStatistics] | None = None,
    mean_of: str | None = None,
    n_resamples: int = 1000,
    n_boot: int | None = None,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
    test: str = "auto",
) -> PairedDifference:
    """Compare systems A and B on the same examples (rows matched by ``id``).

    Args:
        rows_a, rows_b: per-example rows of each system.
        mean_of: the per-row field whose mean is the metric (``"rougeL"``, ``"correct"``, ``"mrr@10"``).
        corpus_statistics: rows → :class:`CorpusStatistics` (corpus metrics: fast, exact resampling).
        corpus_score: rows → metric, for a corpus metric without sufficient statistics (slow: rescored on every
            resample).
        n_resamples: Monte Carlo resamples of the randomisation tests (``R``).
        n_boot: bootstrap resamples of the CI (default ``n_resamples``).
        rng: seed or Generator (randomisation first, then bootstrap).
        test: ``auto`` (:func:`choose_test`), ``randomisation`` (Monte Carlo for any metric) or
            ``t-test-ranx`` (ranx's paired t-test; mean metrics).

    Raises:
        ConfigError: not exactly one of ``mean_of`` / ``corpus_statistics`` / ``corpus_score``, different
            examples, fewer than 2 examples, or an unknown ``test``.
    """
    if sum(x is not None for x in (corpus_score, corpus_statistics, mean_of)) != 1:
        raise ConfigError(
            "paired_difference needs exactly one of mean_of, corpus_statistics and corpus_score"
        )
    if test not in ("auto", "randomisation", "t-test-ranx"):
        raise ConfigError(f"unknown test {test!r}: auto, randomisation or t-test-ranx")
    a, b = align(rows_a, rows_b)
    n = len(a)
    if n < 2:
        raise ConfigError(f"paired test needs at least 2 examples, got {n}")
    gen = np.random.default_rng(rng)
    n_boot = n_resamples if n_boot is None else n_boot
    if mean_of is not None:
        return _mean_difference(a, b, mean_of, test, n_resamples, n_boot, confidence, gen)
    if corpus_statistics is None:
        return _generic_corpus(a, b, corpus_score, n_resamples, n_boot, confidence, gen)
    return _statistics_difference(a, b, corpus_statistics, n_resamples, n_boot, confidence, gen)


def _mean_difference(
    a: list, b: list, mean_of: str, test: str, n_resamples: int, n_boot: int, confidence: float, gen
) -> PairedDifference:
    """:func:`paired_difference` of a mean metric: the test :func:`mean_test` picks (or ``test``), a
    randomisation cross-check, and a bootstrap CI of the mean difference (``gen`` drawn in that order)."""
    n = len(a)
    x, y = _values(a, mean_of), _values(b, mean_of)
    d = x - y
    key = test if test != "auto" else choose_test(d, binary=_is_binary(x, y))
    if not d.any():
        return _tie(n, float(x.mean()), float(y.mean()), key)
    p, key, floor, used = mean_test(d, binary=_is_binary(x, y), n_resamples=n_resamples, rng=gen, test=key)
    p_random = p if key in ("sign-flip", "randomisation") else randomisation_cross_check(d, n_resamples, gen)
    low, high = bootstrap_ci_mean(d, n_boot=n_boot, confidence=confidence, rng=gen)
    return PairedDifference(
        n=n,
        score_a=float(x.mean()),
        score_b=float(y.mean()),
        difference=float(d.mean()),
        ci95_low=low,
        ci95_high=high,
        p_randomisation=float(p_random),
        p_value=float(p),
        test=TESTS[key],
        se=float(d.std(ddof=1) / math.sqrt(n)),
        n_resamples=used,
        p_floor=floor,
    )


def _statistics_difference(
    a: list,
    b: list,
    corpus_statistics: Callable[[list], CorpusStatistics],
    n_resamples: int,
    n_boot: int,
    confidence: float,
    gen,
) -> PairedDifference:
    """:func:`paired_difference` of a corpus metric with sufficient statistics: the swap randomisation test
    and a bootstrap CI, both on summed statistics (exact and fast)."""
    stat_a, stat_b = corpus_statistics(a), corpus_statistics(b)
    score_a, score_b = stat_a.score_sum(stat_a.stats.sum(axis=0)), stat_b.score_sum(stat_b.stats.sum(axis=0))
    if np.array_equal(stat_a.stats, stat_b.stats):
        return _tie(len(a), score_a, score_b, "randomisation")
    p, observed = swap_randomisation(stat_a, stat_b, n_resamples, gen)
    boot = _bootstrap_corpus(stat_a, stat_b, n_boot, gen)
    return _corpus_difference(len(a), score_a, score_b, observed, p, boot, confidence, n_resamples)


def _corpus_difference(
    n: int, score_a, score_b, observed, p, boot: np.ndarray, confidence: float, n_resamples: int
) -> PairedDifference:
    """A corpus metric's :class:`PairedDifference`: the randomisation ``p``, the percentile CI and the
    standard error (``ddof=1``) of the bootstrap replicates ``boot`` of ``Δ``."""
    low, high = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    return PairedDifference(
        n=n,
        score_a=float(score_a),
        score_b=float(score_b),
        difference=float(observed),
        ci95_low=float(low),
        ci95_high=float(high),
        p_randomisation=float(p),
        p_value=float(p),
        test=TESTS["randomisation"],
        se=float(boot.std(ddof=1)),
        n_resamples=n_resamples,
        p_floor=1 / (n_resamples + 1),
    )


def _tie(n: int, score_a: float, score_b: float, key: str) -> PairedDifference:
    """Two systems that score every example alike: no difference, p = 1."""
    return PairedDifference(n, score_a, score_b, 0.0, 0.0, 0.0, 1.0, 1.0, test=TESTS[key], se=0.0)


def _generic_corpus(a, b, corpus_score, n_resamples, n_boot, confidence, gen) -> PairedDifference:
    """A corpus metric rescored from rows on every resample (for metrics without sufficient statistics)."""
    n = len(a)
    score_a, score_b = corpus_score(a), corpus_score(b)
    if all(ra == rb for ra, rb in zip(a, b, strict=True)):
        return _tie(n, score_a, score_b, "randomisation")
    observed = score_a - score_b
    hits = 0
    for _ in range(n_resamples):
        swap = gen.integers(0, 2, size=n).astype(bool)
        left = [rb if s else ra for ra, rb, s in zip(a, b, swap, strict=True)]
        right = [ra if s else rb for ra, rb, s in zip(a, b, swap, strict=True)]
        hits += abs(corpus_score(left) - corpus_score(right)) >= abs(observed) - _tolerance(observed)
    p = (1 + hits) / (n_resamples + 1)
    boot = []
    for _ in range(n_boot):
        idx = gen.integers(0, n, size=n)
        boot.append(corpus_score([a[i] for i in idx]) - corpus_score([b[i] for i in idx]))
    return _corpus_difference(n, score_a, score_b, observed, p, np.asarray(boot), confidence, n_resamples)


def paired_noninferiority(
    rows_a: Sequence[Mapping[str, Any]],
    rows_b: Sequence[Mapping[str, Any]],
    *,
    mean_of: str,
    margin: float,
    n_boot: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
) -> PairedDifference:
    """ "A is not worse than B by more than ``margin``" on a mean metric: the one-sided test of
    H0 ``Δ ≤ −margin`` (:func:`tli.stats.noninferiority_paired`), with the paired-bootstrap 95 % CI of ``Δ``.

    ``p_randomisation`` is NaN: the sign-flip test cannot test a shifted null (``d + margin`` need not be
    symmetric under H0).
    """
    a, b = align(rows_a, rows_b)
    n = len(a)
    if n < 2:
        raise ConfigError(f"paired test needs at least 2 examples, got {n}")
    x, y = _values(a, mean_of), _values(b, mean_of)
    d = x - y
    result = noninferiority_paired(d, margin)
    gen = np.random.default_rng(rng)
    low, high = bootstrap_ci_mean(d, n_boot=n_boot, confidence=confidence, rng=gen) if d.any() else (0.0, 0.0)
    return PairedDifference(
        n=n,
        score_a=float(x.mean()),
        score_b=float(y.mean()),
        difference=float(d.mean()),
        ci95_low=low,
        ci95_high=high,
        p_randomisation=math.nan,
        p_value=result.p,
        test=result.test,
        se=result.se,
        p_floor=0.0,
        kind="non-inferiority",
        margin=float(margin),
    )


__all__ = [
    "EXACT_MAX",
    "T_TEST_MIN",
    "TESTS",
    "CorpusStatistics",
    "PairedDifference",
    "align",
    "choose_test",
    "family_resamples",
    "paired_difference",
    "paired_noninferiority",
    "sign_flip_exact",
    "sign_flip_monte_carlo",
    "smallest_p",
]
