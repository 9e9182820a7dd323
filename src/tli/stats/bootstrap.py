"""The one percentile bootstrap of tli, on :func:`scipy.stats.bootstrap` with an explicit random generator:
any statistic over resampled units (:func:`bootstrap_ci`), and the mean of items or whole clusters
(:func:`bootstrap_ci_mean`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats as sps

from tli.errors import ConfigError
from tli.stats.samples import _as_1d, _check_resampling, _cluster_codes

_BOOT_CHUNK = 1 << 22  # max resample indices held in memory at once


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
