"""One group measured twice (before / after on the same items): paired t-test, Wilcoxon, cluster t-test,
cluster bootstrap CI, effect sizes; McNemar and the paired randomisation test for 0/1 outcomes; the one-sided
non-inferiority test.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

from tli.errors import ConfigError
from tli.stats.bootstrap import _bootstrap_mean_ci
from tli.stats.samples import (
    _ALPHA,
    _as_1d,
    _as_binary,
    _check_resampling,
    _cluster_codes,
    _cluster_means,
    _significant,
    _validate_pair,
)


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
    p_ttest, p_w = float(tt.pvalue), _wilcoxon_p(a, b)
    n_clusters, p_cluster = _cluster_test(d, coded, p_ttest)
    low, high = _bootstrap_mean_ci(d, coded, n_boot, rng, confidence)
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


def _wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of ``(b, a)``; ``nan`` when every difference is zero (no ranks) or
    scipy refuses the sample."""
    if np.all(b - a == 0):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # ties and zeros on tiny samples
        try:
            return float(sps.wilcoxon(b, a).pvalue)
        except ValueError:
            return math.nan


def _cluster_test(d: np.ndarray, coded: tuple[np.ndarray, int] | None, p_ttest: float) -> tuple[int, float]:
    """``(G, p)`` of the one-sample t-test of the per-cluster mean differences against 0; without clusters
    every pair is its own cluster, so ``(n, p_ttest)``; ``p`` is ``nan`` with fewer than 2 clusters."""
    if coded is None:
        return int(d.size), p_ttest
    cluster_d = _cluster_means(d, coded)  # (G,)
    n_clusters = coded[1]
    if n_clusters < 2:
        return n_clusters, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant cluster means
        return n_clusters, float(sps.ttest_1samp(cluster_d, 0.0).pvalue)


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


def _all_equal_p(c: float, margin: float, lowest: float, n: int) -> float:
    """``sup P(d_1..d_n ≥ c)`` over distributions on ``[lowest, ∞)`` with mean ``≤ −margin`` (see
    :func:`noninferiority_paired`): ``((−margin − lowest) / (c − lowest))^n``, 1 when ``c ≤ −margin``."""
    if c <= -margin:
        return 1.0
    return float(((-margin - lowest) / (c - lowest)) ** n)


def noninferiority_paired(differences, margin: float, *, lowest: float = -1.0) -> NonInferiority:
    """Non-inferiority of A against B from paired differences ``d = a − b``: H0 ``mean(d) ≤ −margin``
    against H1 ``mean(d) > −margin`` ("A is not worse than B by more than ``margin``").

    ``t = (mean(d) + margin) / (sd(d) / √n)`` on ``n − 1`` df, ``p = P(T_{n−1} ≥ t)``
    (:func:`scipy.stats.ttest_1samp` with ``popmean = −margin``, ``alternative="greater"``): the Wald-type
    paired test, valid for means of bounded per-example scores at the sizes NLI test sets have (thousands;
    the central limit theorem). ``p < alpha`` exactly when the one-sided ``(1 − alpha)`` lower confidence
    bound of ``mean(d)`` lies above ``−margin``. When every difference is equal to one value ``c`` (``sd = 0``,
    e.g. two systems that answer 30 XNLI examples alike) the t statistic is undefined; ``p`` is then the largest
    probability, over every distribution of ``d`` on ``[lowest, ∞)`` with mean ``≤ −margin``, of ``n``
    differences all ``≥ c``. That worst case puts mass ``q`` on ``lowest`` and ``1 − q`` on ``c`` with mean
    exactly ``−margin``, so ``q = (c + margin) / (c − lowest)`` and ``p = (1 − q)^n =
    ((−margin − lowest) / (c − lowest))^n`` (1 when ``c ≤ −margin``). For accuracy (``lowest = −1``) and
    ``c = 0``: ``p = (1 − margin)^n`` — 30 identical answers give 0.74 at a 1-point margin, not ``2^{−30}``:
    agreement on a few examples cannot show that a difference is smaller than one point.

    Args:
        differences: 1-D array ``(n,)`` of paired differences, ``n >= 2``.
        margin: the non-inferiority margin ``> 0``, in the units of ``d``, chosen before the data.
        lowest: the smallest value a difference can take (``−1`` for per-example scores in ``[0, 1]``, such as
            accuracy); must lie below ``−margin``.

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
    if not (math.isfinite(lowest) and lowest < -margin):
        raise ConfigError(
            f"non-inferiority: the lowest possible difference must lie below −margin, got {lowest}"
        )
    if sd == 0:
        return NonInferiority(
            mean,
            float(margin),
            0.0,
            math.inf,
            d.size - 1,
            _all_equal_p(mean, margin, lowest, d.size),
            "worst-case bound (all d equal)",
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
