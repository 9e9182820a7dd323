"""A family of claims: p-values adjusted by Holm or Benjamini–Hochberg, and the verdict of one claim."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from tli.errors import ConfigError


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
