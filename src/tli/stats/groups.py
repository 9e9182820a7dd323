"""Two independent groups (trained versus control pairs): the difference of their changes (Welch, permutation,
bootstrap CI) and their equivalence within a margin (TOST).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

from tli.errors import ConfigError
from tli.stats.bootstrap import _BOOT_CHUNK, _bootstrap_means, _percentile_ci
from tli.stats.samples import _ALPHA, _check_resampling, _group_units, _significant


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
