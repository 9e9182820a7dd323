"""Statistics for paired (before/after) similarity data, in the spirit of rliable.

Every function is pure: inputs are 1-D arrays of per-pair scores, ``pre[i]`` and ``post[i]``
measured on the same item ``i``. Randomness (bootstrap, permutation) always goes through an explicit
:class:`numpy.random.Generator` (or an ``int`` seed), so results are reproducible.
p-values are reported exactly as scipy computes them (no clipping); a p-value that underflows
to ``0.0`` is printed as ``"< 1e-300"`` by :func:`format_p`.

What the functions answer:

* :func:`paired_stats`: did one group change (post versus pre)? Pairs that share a word (``bahari`` →
  sea, ``bahari`` → ocean) are not independent, so an optional ``clusters`` array (e.g. the source
  words) makes the primary p-value a t-test on per-cluster mean changes and the CI a cluster bootstrap.
* :func:`mcnemar_exact`: the same question for a 0/1 outcome (P@1 hit before and after).
* :func:`between_groups`: did group A change more than group B (trained versus control pairs)?
* :func:`equivalence_tost`: did the two groups change *as much* as each other, within a margin?
  (Failing to find a difference is not evidence of equivalence; this test is.)
* :func:`noninferiority_paired`: is A *not worse* than B by more than a margin ("preserves")? A
  non-significant difference is not evidence of that; this one-sided test is.
* :func:`adjust_pvalues`: Holm or Benjamini–Hochberg over a family of claims.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as sps

from tli.errors import ConfigError
from tli.io import JsonLinesError, numbered_json_lines
from tli.limits import MAX_TABLE_BYTES, MAX_WORD_CHARS, json_too_deep, nesting_message, too_big, too_long

__all__ = [
    "DEFAULT_CLUSTER",
    "DEFAULT_GROUP",
    "Equivalence",
    "GroupDifference",
    "McNemarResult",
    "NonInferiority",
    "PairedSamples",
    "PairedStats",
    "adjust_pvalues",
    "between_groups",
    "bootstrap_ci",
    "bootstrap_ci_mean",
    "cohens_d_paired",
    "equivalence_tost",
    "format_p",
    "format_stats_table",
    "mcnemar_exact",
    "noninferiority_paired",
    "paired_stats",
    "read_paired",
    "read_grouped",
    "read_paired_csv",
    "stats_by_group",
    "stats_from_csv",
    "verdict",
]

_BOOT_CHUNK = 1 << 22  # max resample indices held in memory at once
_ALPHA = 0.05


# --- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedStats:
    """Summary of a paired comparison (``post`` versus ``pre``); see :func:`paired_stats`.

    ``change_pct = 100 * change / mean(pre)`` is defined only where a percentage means something:
    when ``mean(pre) != 0`` and ``|mean(pre)| >= sd(pre)`` (``ddof=1``), i.e. the baseline is clearly
    away from zero relative to its spread; otherwise it is ``nan`` (printed "—"). A gap of
    0.001 ± 0.02 would otherwise give a meaningless −2507 %.

    ``p`` is the primary p-value: ``p_cluster``, the t-test on per-cluster mean changes (equal to
    ``p_ttest`` when every pair is its own cluster). ``tests_disagree`` flags rows where the pair-level
    t-test and the Wilcoxon signed-rank test reach different decisions at alpha = 0.05.
    """

    n: int
    mean_pre: float
    mean_post: float
    change: float
    change_pct: float
    t: float
    p_ttest: float
    p_wilcoxon: float
    ci95_low: float
    ci95_high: float
    cohens_d: float
    n_clusters: int
    p_cluster: float
    p: float
    tests_disagree: bool

    def to_dict(self) -> dict:
        """Return the fields as a plain ``dict`` (floats stay floats, ``nan`` included)."""
        return asdict(self)


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test of a paired 0/1 outcome; see :func:`mcnemar_exact`."""

    n: int
    n_gained: int
    n_lost: int
    p: float
    change: float

    def to_dict(self) -> dict:
        """Return the fields as a plain ``dict``."""
        return asdict(self)


@dataclass(frozen=True)
class GroupDifference:
    """Difference of the mean change of two independent groups; see :func:`between_groups`."""

    mean_a: float
    mean_b: float
    difference: float
    ci95_low: float
    ci95_high: float
    t_welch: float
    df_welch: float
    p_welch: float
    p_permutation: float
    p: float
    n_a: int
    n_b: int
    n_clusters_a: int
    n_clusters_b: int

    def to_dict(self) -> dict:
        """Return the fields as a plain ``dict``."""
        return asdict(self)


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided tests (TOST) of equivalence within ``±margin``; see :func:`equivalence_tost`."""

    difference: float
    margin: float
    p_lower: float
    p_upper: float
    p: float
    ci90_low: float
    ci90_high: float
    df: float
    equivalent: bool
    n_clusters_a: int
    n_clusters_b: int

    def to_dict(self) -> dict:
        """Return the fields as a plain ``dict``."""
        return asdict(self)


# --- validation and clusters -------------------------------------------------------------------------


def _as_1d(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ConfigError(f"{name} has a non-finite value ({arr[bad]}) at index {bad}")
    return arr


def _validate_pair(pre, post) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_1d(pre, "pre"), _as_1d(post, "post")
    if a.shape != b.shape:
        raise ConfigError(f"pre and post must have the same length, got {a.size} and {b.size}")
    if a.size < 2:
        raise ConfigError(f"paired statistics need at least 2 pairs, got {a.size}")
    return a, b


def _check_resampling(n: int, confidence: float, name: str = "n_boot") -> int:
    if int(n) < 1:
        raise ConfigError(f"{name} must be >= 1, got {n}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    return int(n)


def _cluster_codes(clusters, n: int, name: str = "clusters") -> tuple[np.ndarray, int] | None:
    """Integer code per item, ``0..G-1`` in order of first appearance, and ``G``; ``None`` for no clusters.

    First-appearance order makes "every item its own cluster" draw exactly the items, in order.
    """
    if clusters is None:
        return None
    labels = np.asarray(clusters)
    if labels.ndim != 1:
        raise ConfigError(f"{name} must be a 1-D array of labels, got shape {labels.shape}")
    if labels.size != n:
        raise ConfigError(f"{name} must give one label per item: {labels.size} labels for {n} items")
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # sorted-unique position -> first-appearance rank
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.reshape(-1)], int(order.size)


def _cluster_means(x: np.ndarray, coded: tuple[np.ndarray, int] | None) -> np.ndarray:
    """Per-cluster means ``(G,)`` of ``x`` (``x`` itself when there are no clusters)."""
    if coded is None:
        return x
    codes, g = coded
    return np.bincount(codes, weights=x, minlength=g) / np.bincount(codes, minlength=g)


def bootstrap_distribution(
    statistic: Callable[..., Any],
    n: int,
    *,
    n_resamples: int,
    rng: np.random.Generator | int | None,
    vectorized: bool = False,
) -> np.ndarray:
    """``(n_resamples,)`` bootstrap values ``s_b = statistic(I_b)`` of a statistic over ``n`` units.

    ``I_b`` are index vectors of length ``n`` drawn uniformly with replacement from ``0..n-1`` by
    :func:`scipy.stats.bootstrap`, in batches of at most ``_BOOT_CHUNK`` indices (memory). A ``Generator``
    passed as ``rng`` is used as is, so consecutive calls continue one random stream. One unit: every
    resample is that unit.

    Args:
        statistic: maps an index array ``(n,)`` to a float; with ``vectorized``, an array ``(..., n)`` to
            ``(...)`` along ``axis`` (a keyword argument, the last axis).
        n: number of units (items, clusters, examples), ``>= 1``.
        n_resamples: bootstrap resamples ``B >= 1``.
        rng: a numpy ``Generator`` or a seed (explicit: the values are reproducible).
    """
    if n < 1:
        raise ConfigError("a bootstrap needs at least 1 value, got 0")
    if n == 1:
        return np.full(n_resamples, float(statistic(np.zeros(1, dtype=np.int64))))
    result = sps.bootstrap(
        (np.arange(n),),
        statistic,
        vectorized=vectorized,
        n_resamples=n_resamples,
        batch=max(1, _BOOT_CHUNK // n),
        method="percentile",
        rng=np.random.default_rng(rng),
    )
    return np.asarray(result.bootstrap_distribution, dtype=float)


def bootstrap_ci(
    statistic: Callable[..., Any],
    n: int,
    *,
    n_resamples: int,
    rng: np.random.Generator | int | None,
    confidence: float = 0.95,
    vectorized: bool = False,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a statistic over ``n`` units (items, clusters, examples).

    The ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the bootstrap values
    ``s_b = statistic(I_b)`` (:func:`bootstrap_distribution`). ``statistic`` recomputes the whole figure on
    the resampled units (for a corpus score: the score of the resampled corpus, not a mean of example scores).

    Args: as :func:`bootstrap_distribution`, and ``confidence``, the two-sided level in ``(0, 1)``.
    """
    values = bootstrap_distribution(statistic, n, n_resamples=n_resamples, rng=rng, vectorized=vectorized)
    return _percentile_ci(values, confidence)


def _mean_of_resample(x: np.ndarray, coded) -> Callable[..., np.ndarray]:
    """The vectorised statistic of :func:`bootstrap_ci_mean`: the mean over the items a resample draws.

    With clusters, a resample draws ``G`` cluster indices ``g_1..g_G`` and its statistic is the mean
    over every item of the drawn clusters: ``sum_k S[g_k] / sum_k N[g_k]`` (``S`` cluster sums,
    ``N`` cluster sizes).
    """
    if coded is None:
        return lambda idx, axis=-1: x[idx].mean(axis=axis)
    codes, g = coded
    sums = np.bincount(codes, weights=x, minlength=g)  # (G,)
    sizes = np.bincount(codes, minlength=g).astype(float)  # (G,)
    return lambda idx, axis=-1: sums[idx].sum(axis=axis) / sizes[idx].sum(axis=axis)


def _bootstrap_means(x: np.ndarray, coded, n_boot: int, rng) -> np.ndarray:
    """``(n_boot,)`` bootstrap means of ``x``: items, or whole clusters, drawn with replacement
    (:func:`bootstrap_distribution` of :func:`_mean_of_resample`)."""
    units = x.size if coded is None else coded[1]
    statistic = _mean_of_resample(x, coded)
    return bootstrap_distribution(statistic, units, n_resamples=n_boot, rng=rng, vectorized=True)


def _bootstrap_mean_ci(x: np.ndarray, coded, n_boot: int, rng, confidence: float) -> tuple[float, float]:
    return _percentile_ci(_bootstrap_means(x, coded, n_boot, np.random.default_rng(rng)), confidence)


def _percentile_ci(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.quantile(values, [alpha / 2, 1.0 - alpha / 2])
    return float(low), float(high)


def _significant(p: float, alpha: float) -> bool:
    return bool(p < alpha)  # nan -> False: no test result is no rejection


# --- one group: paired before/after ----------------------------------------------------------------


def bootstrap_ci_mean(
    x,
    *,
    clusters=None,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean, optionally resampling clusters.

    Without clusters: draws ``n_boot`` resamples of ``x`` (shape ``(n,)``) with replacement,
    computes each resample's mean ``m_b`` (vectorised: an ``(n_boot, n)`` index array, in chunks).
    With ``clusters`` (one label per item, ``G`` distinct labels): each resample draws ``G`` clusters
    with replacement and ``m_b = sum(x over the items of the drawn clusters) / (their item count)``,
    so items that share a cluster stay together. Returns the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of ``{m_b}``.

    Args:
        x: 1-D array of finite values, shape ``(n,)``, ``n >= 1``.
        clusters: optional 1-D array of ``n`` cluster labels (any hashable dtype numpy can sort).
        n_boot: number of bootstrap resamples (``>= 1``).
        confidence: confidence level in ``(0, 1)``.
        rng: a numpy ``Generator``, or a seed passed to :func:`numpy.random.default_rng`.

    Returns:
        ``(low, high)`` as floats.
    """
    arr = _as_1d(x, "x")
    if arr.size < 1:
        raise ConfigError("bootstrap_ci_mean needs at least 1 value, got 0")
    n_boot = _check_resampling(n_boot, confidence)
    coded = _cluster_codes(clusters, arr.size)
    return _bootstrap_mean_ci(arr, coded, n_boot, rng, confidence)


def cohens_d_paired(pre, post) -> float:
    """Paired effect size ``d_z = mean(d) / std(d, ddof=1)`` with ``d = post - pre``.

    Args:
        pre, post: 1-D arrays of the same shape ``(n,)``, ``n >= 2``.

    Returns:
        ``d_z``; ``nan`` when ``std(d) == 0`` (all differences equal).
    """
    a, b = _validate_pair(pre, post)
    d = b - a
    sd = float(np.std(d, ddof=1))
    return float(np.mean(d) / sd) if sd > 0 else math.nan


def _change_pct(pre: np.ndarray, change: float) -> float:
    """``100 * change / mean(pre)`` where ``mean(pre) != 0`` and ``|mean(pre)| >= sd(pre, ddof=1)``."""
    mean_pre = float(pre.mean())
    if mean_pre == 0 or abs(mean_pre) < float(np.std(pre, ddof=1)):
        return math.nan
    return 100.0 * change / mean_pre


def paired_stats(
    pre,
    post,
    *,
    clusters=None,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    alpha: float = _ALPHA,
    rng: np.random.Generator | int | None = 0,
) -> PairedStats:
    """Paired before/after statistics for ``d = post - pre``.

    * ``change = mean(post) - mean(pre)``; ``change_pct = 100 * change / mean(pre)`` only when
      ``mean(pre) != 0`` and ``|mean(pre)| >= sd(pre, ddof=1)``, else ``nan`` (a percentage of a
      baseline indistinguishable from zero is meaningless).
    * ``t``, ``p_ttest``: :func:`scipy.stats.ttest_rel` ``(post, pre)``, two-sided, pairs as units.
    * ``p_wilcoxon``: :func:`scipy.stats.wilcoxon` ``(post, pre)``, two-sided, zero differences
      dropped (``nan`` when every difference is zero).
    * ``n_clusters``, ``p_cluster``: ``G`` clusters; one-sample t-test of the per-cluster mean
      differences ``dbar_g = mean(d_i : i in g)`` against 0, ``t = mean(dbar) / (sd(dbar) / sqrt(G))``
      with ``G - 1`` df (``nan`` when ``G < 2``). Without clusters every pair is its own cluster and
      ``p_cluster == p_ttest``.
    * ``p`` (primary) ``= p_cluster``. Rule: pairs that share a word are correlated, so the unit of
      analysis is the cluster; treating them as independent understates the standard error.
    * ``tests_disagree``: ``(p_ttest < alpha) != (p_wilcoxon < alpha)`` (a ``nan`` p counts as not
      significant); a report must say so when it is True.
    * ``ci95_low``, ``ci95_high``: percentile bootstrap CI of ``mean(d)`` at ``confidence``,
      resampling clusters when given (see :func:`bootstrap_ci_mean`; the field names keep "95"
      whatever the level).
    * ``cohens_d``: ``d_z = mean(d) / std(d, ddof=1)`` (see :func:`cohens_d_paired`).

    Args:
        pre, post: 1-D arrays of finite scores, same shape ``(n,)``, ``n >= 2``.
        clusters: optional 1-D array of ``n`` cluster labels (e.g. the source word of each pair).
        n_boot: bootstrap resamples.
        confidence: CI level in ``(0, 1)``.
        alpha: level at which ``tests_disagree`` compares the t-test and Wilcoxon decisions.
        rng: a numpy ``Generator`` or a seed.

    Raises:
        ConfigError: different lengths, fewer than 2 pairs, a non-finite value, or a ``clusters``
            array of the wrong length.
    """
    a, b = _validate_pair(pre, post)
    coded = _cluster_codes(clusters, a.size)
    n_boot = _check_resampling(n_boot, confidence)
    d = b - a
    mean_pre, mean_post = float(a.mean()), float(b.mean())
    change = mean_post - mean_pre
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # degenerate (constant) differences
        tt = sps.ttest_rel(b, a)
        if np.all(d == 0):
            p_w = math.nan
        else:
            try:
                p_w = float(sps.wilcoxon(b, a).pvalue)
            except ValueError:
                p_w = math.nan
        if coded is None:
            n_clusters, p_cluster = int(a.size), float(tt.pvalue)
        else:
            cluster_d = _cluster_means(d, coded)  # (G,)
            n_clusters = coded[1]
            p_cluster = float(sps.ttest_1samp(cluster_d, 0.0).pvalue) if n_clusters >= 2 else math.nan
    low, high = _bootstrap_mean_ci(d, coded, n_boot, rng, confidence)
    p_ttest = float(tt.pvalue)
    return PairedStats(
        n=int(a.size),
        mean_pre=mean_pre,
        mean_post=mean_post,
        change=change,
        change_pct=_change_pct(a, change),
        t=float(tt.statistic),
        p_ttest=p_ttest,
        p_wilcoxon=p_w,
        ci95_low=low,
        ci95_high=high,
        cohens_d=cohens_d_paired(a, b),
        n_clusters=n_clusters,
        p_cluster=p_cluster,
        p=p_cluster,
        tests_disagree=_significant(p_ttest, alpha) != _significant(p_w, alpha),
    )


def _as_binary(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.dtype != bool:
        values = arr.astype(float)
        bad = np.flatnonzero((values != 0) & (values != 1))
        if bad.size:
            raise ConfigError(f"{name} must hold 0/1 or booleans, got {arr[bad[0]]!r} at index {bad[0]}")
        arr = values == 1
    return arr


def paired_randomisation(
    pre, post, *, n_resamples: int = 10_000, rng: np.random.Generator | int | None = 0
) -> float:
    """Two-sided paired randomisation (sign-flip) test of ``mean(post − pre) = 0``.

    Under H0 each pair's two values are exchangeable, so each difference ``d_i`` keeps or flips its sign with
    probability ½: ``p = (1 + #{|mean(s·d)| ≥ |mean(d)|}) / (R + 1)`` over ``R`` random sign vectors ``s``
    (exact enumeration when ``2^n ≤ R``), via :func:`scipy.stats.permutation_test` with
    ``permutation_type="samples"``. It tests the *mean* change — what an MRR claim is about — where the
    Wilcoxon signed-rank test tests a pseudo-median and can disagree on skewed reciprocal ranks; it is the
    test recommended for per-query IR measures (Smucker et al., 2007).
    """
    a, b = _validate_pair(pre, post)
    if np.all(a == b):
        return 1.0
    result = sps.permutation_test(
        (b, a),
        lambda x, y, axis=-1: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        alternative="two-sided",
        rng=np.random.default_rng(rng),
    )
    return float(result.pvalue)


def mcnemar_exact(before, after) -> McNemarResult:
    """Exact McNemar test for a paired binary outcome (e.g. P@1 hit of each query before/after).

    Only discordant pairs carry information: ``n_gained = #(not before and after)``,
    ``n_lost = #(before and not after)``. Under H0 (no change) each discordant pair is a gain with
    probability 1/2, so ``p`` is the two-sided exact binomial test
    :func:`scipy.stats.binomtest` ``(n_gained, n_gained + n_lost, 0.5)``; ``p = 1.0`` when there is
    no discordant pair. ``change = (n_gained - n_lost) / n = mean(after) - mean(before)``.

    Args:
        before, after: 1-D arrays of booleans (or 0/1), same shape ``(n,)``, ``n >= 1``.

    Raises:
        ConfigError: different lengths, no items, or a value other than 0/1.
    """
    b, a = _as_binary(before, "before"), _as_binary(after, "after")
    if a.shape != b.shape:
        raise ConfigError(f"before and after must have the same length, got {b.size} and {a.size}")
    if b.size < 1:
        raise ConfigError("mcnemar_exact needs at least 1 paired outcome, got 0")
    gained, lost = int(np.sum(~b & a)), int(np.sum(b & ~a))
    p = float(sps.binomtest(gained, gained + lost, 0.5).pvalue) if gained + lost else 1.0
    return McNemarResult(n=int(b.size), n_gained=gained, n_lost=lost, p=p, change=(gained - lost) / b.size)


# --- two independent groups ------------------------------------------------------------------------


def _group_units(change, clusters, name: str) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """Validated changes, their units (cluster means or items) and the cluster coding of one group."""
    x = _as_1d(change, name)
    coded = _cluster_codes(clusters, x.size, f"clusters_{name[-1]}")
    units = _cluster_means(x, coded)
    if units.size < 2:
        what = "clusters" if coded is not None else "items"
        raise ConfigError(f"{name} needs at least 2 {what} for a between-group test, got {units.size}")
    return x, units, coded


def _diff_of_means(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def between_groups(
    change_a,
    change_b,
    *,
    clusters_a=None,
    clusters_b=None,
    n_perm: int = 10_000,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
) -> GroupDifference:
    """Compare the per-pair changes (post − pre) of two independent groups (trained versus control).

    * ``difference = mean(a) - mean(b)`` over items.
    * ``t_welch``, ``df_welch``, ``p_welch``: Welch's t-test (:func:`scipy.stats.ttest_ind`,
      ``equal_var=False``) on the units: ``t = (ubar_a - ubar_b) / sqrt(s_a²/G_a + s_b²/G_b)``,
      Welch–Satterthwaite df. Units are per-cluster mean changes when clusters are given, items
      otherwise.
    * ``p_permutation``: :func:`scipy.stats.permutation_test` (independent, two-sided,
      ``n_perm`` resamples; exact when there are fewer distinct relabellings) of
      ``mean(units_a) - mean(units_b)``, permuting units between the groups.
    * ``ci95_low``, ``ci95_high``: percentile bootstrap CI of ``difference``, each group resampled
      independently (whole clusters when given; see :func:`bootstrap_ci_mean`).
    * ``p`` (primary) ``= p_welch``. Why Welch: it tests equal *means* without assuming equal
      variances or sizes (623 trained versus 63 control pairs), whereas the permutation test assumes
      exchangeable groups (equal distributions) and its p-value cannot go below ``1 / (n_perm + 1)``,
      so it could never survive a multiple-comparison correction for a strong effect. The
      permutation p is reported as a check that needs no normality.

    Cluster labels of the two groups are separate namespaces: the groups are assumed independent.

    Args:
        change_a, change_b: 1-D arrays of per-pair changes, shapes ``(n_a,)`` and ``(n_b,)``.
        clusters_a, clusters_b: optional cluster labels for each group (same lengths).
        n_perm: permutation resamples (``>= 1``).
        n_boot: bootstrap resamples (``>= 1``).
        confidence: CI level in ``(0, 1)``.
        rng: a numpy ``Generator`` or a seed (bootstrap first, then permutation).

    Raises:
        ConfigError: non-finite values, fewer than 2 units in a group, bad cluster arrays or options.
    """
    a, units_a, coded_a = _group_units(change_a, clusters_a, "change_a")
    b, units_b, coded_b = _group_units(change_b, clusters_b, "change_b")
    n_boot = _check_resampling(n_boot, confidence)
    n_perm = _check_resampling(n_perm, confidence, "n_perm")
    gen = np.random.default_rng(rng)
    boot = _bootstrap_means(a, coded_a, n_boot, gen) - _bootstrap_means(b, coded_b, n_boot, gen)
    low, high = _percentile_ci(boot, confidence)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance in both groups
        welch = sps.ttest_ind(units_a, units_b, equal_var=False)
    perm = sps.permutation_test(
        (units_a, units_b),
        _diff_of_means,
        permutation_type="independent",
        vectorized=True,
        n_resamples=n_perm,
        batch=max(1, _BOOT_CHUNK // (units_a.size + units_b.size)),
        alternative="two-sided",
        rng=gen,
    )
    mean_a, mean_b = float(a.mean()), float(b.mean())
    return GroupDifference(
        mean_a=mean_a,
        mean_b=mean_b,
        difference=mean_a - mean_b,
        ci95_low=low,
        ci95_high=high,
        t_welch=float(welch.statistic),
        df_welch=float(welch.df),
        p_welch=float(welch.pvalue),
        p_permutation=float(perm.pvalue),
        p=float(welch.pvalue),
        n_a=int(a.size),
        n_b=int(b.size),
        n_clusters_a=int(units_a.size),
        n_clusters_b=int(units_b.size),
    )


def equivalence_tost(
    change_a,
    change_b,
    margin: float,
    *,
    clusters_a=None,
    clusters_b=None,
    alpha: float = _ALPHA,
) -> Equivalence:
    """Two one-sided Welch tests (TOST) that two groups' mean changes differ by less than ``margin``.

    On the units (per-cluster mean changes when clusters are given, items otherwise), with
    ``diff = mean(units_a) - mean(units_b)``, ``se = sqrt(s_a²/G_a + s_b²/G_b)`` and the
    Welch–Satterthwaite ``df = se⁴ / ((s_a²/G_a)²/(G_a-1) + (s_b²/G_b)²/(G_b-1))``:

    * ``p_lower``: H0 ``diff <= -margin``, ``t = (diff + margin) / se``, ``p = P(T_df >= t)``;
    * ``p_upper``: H0 ``diff >= +margin``, ``t = (diff - margin) / se``, ``p = P(T_df <= t)``;
    * ``p = max(p_lower, p_upper)``; ``equivalent = p < alpha``;
    * ``ci90_low``, ``ci90_high``: the ``(1 - 2·alpha)`` CI ``diff ± t_{1-alpha, df} · se``
      (90 % at alpha = 0.05). ``equivalent`` holds exactly when this CI lies inside
      ``(-margin, +margin)``.

    A claim that control pairs gain "as much as" trained pairs needs this test with a margin chosen
    before looking at the data; a non-significant difference alone does not show it.

    Args:
        change_a, change_b: 1-D arrays of per-pair changes (post − pre) of two independent groups.
        margin: equivalence margin ``> 0``, in the units of the changes.
        clusters_a, clusters_b: optional cluster labels for each group.
        alpha: level of each one-sided test, in ``(0, 0.5)``.

    Raises:
        ConfigError: a margin that is not a positive finite number, ``alpha`` out of range, non-finite
            values, fewer than 2 units in a group, or bad cluster arrays.
    """
    if not (math.isfinite(margin) and margin > 0):
        raise ConfigError(f"equivalence margin must be a positive finite number, got {margin}")
    if not 0.0 < alpha < 0.5:
        raise ConfigError(f"alpha must be in (0, 0.5) for a TOST, got {alpha}")
    _, units_a, _ = _group_units(change_a, clusters_a, "change_a")
    _, units_b, _ = _group_units(change_b, clusters_b, "change_b")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance in both groups
        # shifting group a by ±margin moves H0 from diff = 0 to diff = ∓margin; variances are unchanged
        lower = sps.ttest_ind(units_a + margin, units_b, equal_var=False, alternative="greater")
        upper = sps.ttest_ind(units_a - margin, units_b, equal_var=False, alternative="less")
        two_sided = sps.ttest_ind(units_a, units_b, equal_var=False)
        ci = two_sided.confidence_interval(confidence_level=1.0 - 2.0 * alpha)
    p_lower, p_upper = float(lower.pvalue), float(upper.pvalue)
    p = max(p_lower, p_upper) if not (math.isnan(p_lower) or math.isnan(p_upper)) else math.nan
    return Equivalence(
        difference=float(units_a.mean() - units_b.mean()),
        margin=float(margin),
        p_lower=p_lower,
        p_upper=p_upper,
        p=p,
        ci90_low=float(ci.low),
        ci90_high=float(ci.high),
        df=float(two_sided.df),
        equivalent=_significant(p, alpha),
        n_clusters_a=int(units_a.size),
        n_clusters_b=int(units_b.size),
    )


# --- multiple comparisons and verdicts ----------------------------------------------------------------


def adjust_pvalues(p, method: str = "holm") -> np.ndarray:
    """Adjust a family of p-values for multiple comparisons.

    ``nan`` entries stay ``nan`` and do not count in the family size ``m``.

    * ``"holm"`` (step-down Holm–Bonferroni, controls the family-wise error rate): with the ``m``
      p-values sorted ascending ``p_(1) <= ... <= p_(m)``,
      ``p~_(i) = min(1, max_{j <= i} (m - j + 1) · p_(j))`` (monotone; ties get equal values).
    * ``"bh"`` (Benjamini–Hochberg, controls the false discovery rate):
      :func:`scipy.stats.false_discovery_control` ``(method="bh")``,
      ``p~_(i) = min(1, min_{j >= i} m · p_(j) / j)``.

    Args:
        p: 1-D array of p-values in ``[0, 1]`` or ``nan``, shape ``(k,)``.
        method: ``"holm"`` or ``"bh"``.

    Returns:
        Adjusted p-values, shape ``(k,)``, in the input order.

    Raises:
        ConfigError: unknown method, not 1-D, or a value outside ``[0, 1]``.
    """
    if method not in ("holm", "bh"):
        raise ConfigError(f"unknown p-value adjustment method {method!r}; use 'holm' or 'bh'")
    arr = np.asarray(p, dtype=float)
    if arr.ndim != 1:
        raise ConfigError(f"p-values must be a 1-D array, got shape {arr.shape}")
    known = ~np.isnan(arr)
    bad = np.flatnonzero(known & ~((arr >= 0) & (arr <= 1)))
    if bad.size:
        raise ConfigError(f"p-values must lie in [0, 1] (or be nan), got {arr[bad[0]]} at index {bad[0]}")
    out = np.full(arr.shape, math.nan)
    q = arr[known]
    m = q.size
    if m == 0:
        return out
    if method == "holm":
        order = np.argsort(q, kind="stable")
        scaled = (m - np.arange(m)) * q[order]  # (m - j + 1) p_(j) with j = 1..m
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    else:
        adjusted = sps.false_discovery_control(q, method="bh")
    out[known] = adjusted
    return out


def verdict(low: float, high: float, p: float, *, alpha: float = 0.05, expect: str = "increase") -> str:
    """Classify a result from its CI ``[low, high]`` of the mean change and its p-value.

    * ``"supported"``: ``p < alpha`` and the CI excludes 0 on the expected side
      (``expect="increase"``: ``low > 0``; ``expect="decrease"``: ``high < 0``).
    * ``"contradicted"``: ``p < alpha`` and the CI excludes 0 on the opposite side.
    * ``"inconclusive"``: anything else (``p >= alpha``, a CI containing 0, or ``nan`` input).

    Pass an adjusted p-value (:func:`adjust_pvalues`) when the claim is one of a family.

    Raises:
        ConfigError: ``expect`` is not ``"increase"`` or ``"decrease"``.
    """
    if expect not in ("increase", "decrease"):
        raise ConfigError(f"expect must be 'increase' or 'decrease', got {expect!r}")
    if not p < alpha:  # also catches nan
        return "inconclusive"
    above, below = low > 0, high < 0
    if (above and expect == "increase") or (below and expect == "decrease"):
        return "supported"
    if above or below:
        return "contradicted"
    return "inconclusive"


def format_p(p: float) -> str:
    """Format a p-value: ``"nan"``; ``"< 1e-300"`` for an underflowed ``0.0``;
    3 significant digits in scientific notation below 0.001 (``"1.33e-240"``); else 4 decimals
    (``"0.0312"``)."""
    p = float(p)
    if math.isnan(p):
        return "nan"
    if p == 0.0:
        return "< 1e-300"
    if p < 1e-3:
        return f"{p:.2e}"
    return f"{p:.4f}"


# --- reading per-pair files -------------------------------------------------------------------------


class _Default(str):
    """A default column choice: tolerant (falls back to none) where an explicit name is strict.

    It is a ``str`` so that it prints as its first candidate (``--help`` shows ``group``), but only
    this exact object is tolerant: an explicit ``"group"`` for a file without that column is an error.
    """

    candidates: tuple[str, ...]

    def __new__(cls, *candidates: str) -> _Default:
        obj = super().__new__(cls, candidates[0])
        obj.candidates = candidates
        return obj

    def __copy__(self) -> _Default:
        return self  # copies (e.g. of a config dataclass) must stay the tolerant default

    def __deepcopy__(self, memo) -> _Default:
        return self


DEFAULT_GROUP = _Default("group")
"""Default of ``group=``: the ``group`` column when the file has one, else no grouping."""

DEFAULT_CLUSTER = _Default("source", "swahili")
"""Default of ``cluster=``: the ``source`` (else ``swahili``) column when present, else no clusters."""

_FORMATS = (
    "accepted formats: .csv with a header row, .json (a list of row objects or an object with a "
    "'per_pair' list), .jsonl (one object per line)"
)


class PairedSamples(NamedTuple):
    """Paired scores of one group read from a file: ``pre``, ``post`` ``(n,)`` and cluster labels."""

    pre: np.ndarray
    post: np.ndarray
    clusters: np.ndarray | None


def _rows_csv(path: Path, text: str) -> tuple[list[str], list[tuple[str, dict]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = list(reader.fieldnames or [])
    if not columns:
        raise ConfigError(f"{path}: empty CSV file (no header row)")
    rows = [(f"line {reader.line_num}", row) for row in reader]
    return columns, rows


def _json_error(path: Path, where: str, what: str) -> ConfigError:
    return ConfigError(f"{path}, {where}: {what}; {_FORMATS}")


def _rows_json(path: Path, text: str, lines: bool) -> tuple[list[str], list[tuple[str, dict]]]:
    rows: list[tuple[str, Any]] = []
    if lines:
        try:
            rows = [(f"line {number}", row) for number, row in numbered_json_lines(path, text)]
        except JsonLinesError as exc:
            raise _json_error(path, f"line {exc.line}", exc.problem) from exc
    else:
        if (deep := json_too_deep(text)) is not None:
            raise _json_error(path, f"line {deep}", nesting_message())
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _json_error(path, f"line {exc.lineno}", f"not valid JSON ({exc.msg})") from exc
        if isinstance(data, dict) and isinstance(data.get("per_pair"), list):
            data = data["per_pair"]
        if not isinstance(data, list):
            what = "expected a list of row objects or an object with a 'per_pair' list"
            raise _json_error(path, "line 1", what)
        rows = [(f"row {k}", row) for k, row in enumerate(data, start=1)]
    columns: dict[str, None] = {}  # ordered union of keys
    for where, row in rows:
        if not isinstance(row, dict):
            raise _json_error(path, where, f"expected a row object, got {type(row).__name__}")
        columns.update(dict.fromkeys(map(str, row)))
    return list(columns), rows


def _load_rows(path: Path) -> tuple[list[str], list[tuple[str, dict]]]:
    """Columns and ``(location, row)`` pairs of a CSV, JSON or JSONL file."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json", ".jsonl"):
        raise ConfigError(f"{path}: unsupported file type {suffix or '(no suffix)'!r}; {_FORMATS}")
    try:
        if problem := too_big(path.stat().st_size, MAX_TABLE_BYTES):
            raise ConfigError(f"{path}: the file {problem}; a per-pair file holds one row per pair")
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read {suffix[1:].upper()} {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason}); {_FORMATS}") from exc
    if suffix == ".csv":
        return _rows_csv(path, text)
    return _rows_json(path, text, lines=suffix == ".jsonl")


def _choose_columns(spec, columns: list[str], path: Path, option: str, single: bool) -> list[str]:
    """Column names for ``group`` / ``cluster``: [] for none; a default picks its first present candidate."""
    if spec is None:
        return []
    if isinstance(spec, _Default):
        return [c for c in spec.candidates if c in columns][:1]
    names = [name.strip() for name in str(spec).split(",") if name.strip()]
    if single and len(names) > 1:
        raise ConfigError(f"{option} must name one column, got {spec!r}")
    missing = [name for name in names if name not in columns]
    if missing:
        raise ConfigError(
            f"{path}: {option} column(s) {', '.join(map(repr, missing))} not found; "
            f"available columns: {', '.join(map(repr, columns))}"
        )
    return names


def _label(path: Path, where: str, col: str, value) -> str:
    """A group or cluster label: text of at most :data:`tli.limits.MAX_WORD_CHARS` characters."""
    text = "" if value is None else str(value)
    if problem := too_long(text, MAX_WORD_CHARS):
        raise ConfigError(f"{path}, {where}, column {col!r}: the label {problem}")
    return text


def _number(path: Path, where: str, col: str, cell) -> float:
    try:
        v = float(cell)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v):
        shown = repr(cell) if len(repr(cell)) <= 60 else repr(cell)[:57] + "..."
        raise ConfigError(f"{path}, {where}, column {col!r}: expected a finite number, got {shown}")
    return v


def read_grouped(
    path, *, pre: str, post: str, group, cluster
) -> tuple[dict[tuple[str, ...], PairedSamples], int]:
    """Rows grouped by the values of the group columns (tuple keys) and the number of group columns.

    See :func:`read_paired` for the file formats and the ``group`` / ``cluster`` choices.
    """
    path = Path(path)
    columns, rows = _load_rows(path)
    missing = [c for c in (pre, post) if c not in columns]
    if missing:
        raise ConfigError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; "
            f"available columns: {', '.join(map(repr, columns))}"
        )
    group_columns = _choose_columns(group, columns, path, "group", single=False)
    cluster_columns = _choose_columns(cluster, columns, path, "cluster", single=True)
    data: dict[tuple[str, ...], tuple[list[float], list[float], list[str]]] = {}
    for where, row in rows:
        a, b = (_number(path, where, col, row.get(col)) for col in (pre, post))
        label = ""
        if cluster_columns:
            label = _label(path, where, cluster_columns[0], row.get(cluster_columns[0]))
            if not label:
                raise ConfigError(
                    f"{path}, {where}, column {cluster_columns[0]!r}: empty cluster label; "
                    "fill it or disable clusters (cluster=None)"
                )
        key = tuple(_label(path, where, g, row.get(g)) for g in group_columns) or ("all",)
        bucket = data.setdefault(key, ([], [], []))
        bucket[0].append(a)
        bucket[1].append(b)
        bucket[2].append(label)
    if not data:
        raise ConfigError(f"{path}: no data rows (columns: {', '.join(columns)})")
    out = {
        key: PairedSamples(np.asarray(a), np.asarray(b), np.asarray(c) if cluster_columns else None)
        for key, (a, b, c) in data.items()
    }
    return out, len(group_columns)


def read_paired(
    path,
    *,
    pre: str = "sim_pre_tli",
    post: str = "sim_post_tli",
    group: str | None = DEFAULT_GROUP,
    cluster: str | None = DEFAULT_CLUSTER,
) -> dict[str, PairedSamples]:
    """Read paired scores, grouped, from a CSV, JSON or JSONL file.

    Accepted files (by suffix): ``.csv`` with a header row; ``.json`` holding a list of row objects
    or an object with a ``per_pair`` list (a ``tli evaluate`` ``results.json``); ``.jsonl`` with one
    row object per line (blank lines skipped).

    Args:
        path: the file.
        pre, post: columns of the before / after scores.
        group: comma-separated column(s) splitting rows into groups; the key joins their values with
            ``/`` (``"control/final"``). ``None`` or ``""``: one group ``"all"``. The default
            (:data:`DEFAULT_GROUP`) uses ``group`` when present and is otherwise one group; an
            explicitly named column that does not exist is an error.
        cluster: column of cluster labels (pairs sharing a label are dependent, e.g. the source word).
            ``None`` or ``""``: no clusters. The default (:data:`DEFAULT_CLUSTER`) uses ``source``, else
            ``swahili``, when present; an explicitly named column must exist.

    Returns:
        ``{group_key: PairedSamples(pre, post, clusters)}`` (groups in order of first appearance;
        ``clusters`` is ``None`` without a cluster column).

    Raises:
        ConfigError: unreadable, empty or malformed file or an unsupported suffix (file and line);
            a missing ``pre``/``post``/``group``/``cluster`` column (the message lists the available
            columns); a non-numeric / non-finite score or an empty cluster label (file, line, column).
    """
    grouped, _ = read_grouped(path, pre=pre, post=post, group=group, cluster=cluster)
    return {"/".join(key): samples for key, samples in grouped.items()}


def read_paired_csv(
    path, *, pre: str = "sim_pre_tli", post: str = "sim_post_tli", group: str | None = DEFAULT_GROUP
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """:func:`read_paired` without clusters, as ``{group_key: (pre, post)}`` (kept for compatibility)."""
    grouped = read_paired(path, pre=pre, post=post, group=group, cluster=None)
    return {key: (s.pre, s.post) for key, s in grouped.items()}


def _with_pooled(grouped: dict[tuple[str, ...], PairedSamples]) -> dict[tuple[str, ...], PairedSamples]:
    """Add pooled groups over the FIRST group column, the other columns held fixed.

    ``trained/target`` and ``control/target`` pool into ``all/target``; a row is never counted twice
    (pooling over every column would merge the target and final layers of the same pair).
    """
    by_rest: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for key in grouped:
        by_rest.setdefault(key[1:], []).append(key)
    first_values = {key[0] for key in grouped}
    pooled_name = "all" if "all" not in first_values else "all (pooled)"
    out = dict(grouped)
    for rest, keys in by_rest.items():
        if len(keys) < 2:
            continue
        parts = [grouped[k] for k in keys]
        has_clusters = all(p.clusters is not None for p in parts)
        out[(pooled_name, *rest)] = PairedSamples(
            np.concatenate([p.pre for p in parts]),
            np.concatenate([p.post for p in parts]),
            np.concatenate([p.clusters for p in parts]) if has_clusters else None,
        )
    return out


def stats_from_csv(
    path,
    *,
    pre: str = "sim_pre_tli",
    post: str = "sim_post_tli",
    group: str | None = DEFAULT_GROUP,
    cluster: str | None = DEFAULT_CLUSTER,
    n_boot: int = 10_000,
    rng: np.random.Generator | int | None = 0,
) -> dict[str, PairedStats]:
    """:func:`paired_stats` for each group of :func:`read_paired` (CSV, JSON or JSONL).

    When a group column splits the rows, pooled entries are added over the first group column with
    the others fixed (``all``, or ``all/target`` and ``all/final`` for ``group="group,layer_role"``;
    named ``all (pooled)`` if a group is already called ``all``). A cluster label shared by pairs of
    two pooled groups is one cluster. Each group uses a generator derived from ``rng``.
    See :func:`read_paired` for ``group`` and ``cluster``.
    """
    grouped, n_group_columns = read_grouped(path, pre=pre, post=post, group=group, cluster=cluster)
    return stats_by_group(grouped, n_group_columns, n_boot=n_boot, rng=rng, source=path)


def stats_by_group(
    grouped: dict[tuple[str, ...], PairedSamples],
    n_group_columns: int,
    *,
    n_boot: int = 10_000,
    rng: np.random.Generator | int | None = 0,
    source: Any = "data",
) -> dict[str, PairedStats]:
    """:func:`paired_stats` of each group of :func:`read_grouped`, plus the pooled groups of
    :func:`stats_from_csv` when a group column splits the rows (``source`` names the file in errors)."""
    if n_group_columns:
        grouped = _with_pooled(grouped)
    gen = np.random.default_rng(rng)
    out: dict[str, PairedStats] = {}
    for key, samples in grouped.items():
        name = "/".join(key)
        try:
            out[name] = paired_stats(
                samples.pre, samples.post, clusters=samples.clusters, n_boot=n_boot, rng=gen
            )
        except ConfigError as exc:
            raise ConfigError(f"{source}, group {name!r}: {exc}") from exc
    return out


def _pct(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:+.2f}"


def format_stats_table(results: dict[str, PairedStats], *, legend: bool = True) -> str:
    """Render ``{name: PairedStats}`` as a Markdown table (p-values via :func:`format_p`).

    Columns: n, clusters, means, change, % change ("—" where undefined), p (primary: the t-test on
    cluster means), p (t-test on pairs), p (Wilcoxon), bootstrap CI, d_z, and a note on rows where
    the t-test and the Wilcoxon test disagree. ``legend`` appends a short explanation.
    """
    head = (
        "| group | n | clusters | mean pre | mean post | change | change % | p | p (t-test) "
        "| p (Wilcoxon) | bootstrap CI | d_z | note |"
    )
    lines = [head, "|" + "---|" * 13]
    for name, s in results.items():
        note = "t-test and Wilcoxon disagree" if s.tests_disagree else ""
        lines.append(
            f"| {name} | {s.n} | {s.n_clusters} | {s.mean_pre:.4f} | {s.mean_post:.4f} | {s.change:+.4f} "
            f"| {_pct(s.change_pct)} | {format_p(s.p)} | {format_p(s.p_ttest)} "
            f"| {format_p(s.p_wilcoxon)} | [{s.ci95_low:.4f}, {s.ci95_high:.4f}] "
            f"| {s.cohens_d:.2f} | {note} |"
        )
    if legend:
        lines += [
            "",
            "p: t-test on per-cluster mean changes (the primary test; equals p (t-test) when each pair is "
            "its own cluster). CI: percentile bootstrap over clusters. change %: — where |mean pre| < sd "
            "pre. Notes mark t-test and Wilcoxon decisions that differ at alpha = 0.05.",
        ]
    return "\n".join(lines)


# --- non-inferiority ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NonInferiority:
    """One-sided test that ``mean(d) > −margin``; see :func:`noninferiority_paired`."""

    difference: float
    margin: float
    se: float
    t: float
    df: int
    p: float
    test: str

    def to_dict(self) -> dict:
        """Return the fields as a plain ``dict``."""
        return asdict(self)


def noninferiority_paired(differences, margin: float) -> NonInferiority:
    """Non-inferiority of A against B from paired differences ``d = a − b``: H0 ``mean(d) ≤ −margin``
    against H1 ``mean(d) > −margin`` ("A is not worse than B by more than ``margin``").

    ``t = (mean(d) + margin) / (sd(d) / √n)`` on ``n − 1`` df, ``p = P(T_{n−1} ≥ t)``
    (:func:`scipy.stats.ttest_1samp` with ``popmean = −margin``, ``alternative="greater"``): the Wald-type
    paired test, valid for means of bounded per-example scores at the sizes NLI test sets have (thousands;
    the central limit theorem). ``p < alpha`` exactly when the one-sided ``(1 − alpha)`` lower confidence
    bound of ``mean(d)`` lies above ``−margin``. When every difference is equal (``sd = 0``) the t statistic
    is undefined and ``p`` is the exact one-sided sign test of ``d + margin > 0``: ``2^{−n}`` when every
    ``d_i > −margin``, else 1.

    Args:
        differences: 1-D array ``(n,)`` of paired differences, ``n >= 2``.
        margin: the non-inferiority margin ``> 0``, in the units of ``d``, chosen before the data.

    Raises:
        ConfigError: a margin that is not a positive finite number, fewer than 2 values, or non-finite values.
    """
    if not (math.isfinite(margin) and margin > 0):
        raise ConfigError(f"non-inferiority margin must be a positive finite number, got {margin}")
    d = _as_1d(differences, "differences")
    if d.size < 2:
        raise ConfigError(f"non-inferiority test needs at least 2 paired differences, got {d.size}")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    se = sd / math.sqrt(d.size)
    if sd == 0:
        p = 0.5**d.size if mean > -margin else 1.0
        return NonInferiority(
            mean, float(margin), 0.0, math.inf, d.size - 1, p, "exact sign test (all d equal)"
        )
    result = sps.ttest_1samp(d, -margin, alternative="greater")
    return NonInferiority(
        difference=mean,
        margin=float(margin),
        se=se,
        t=float(result.statistic),
        df=d.size - 1,
        p=float(result.pvalue),
        test="one-sided paired t-test against −margin (non-inferiority)",
    )
