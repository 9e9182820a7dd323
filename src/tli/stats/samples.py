"""Checks shared by every test: 1-D finite arrays, paired shapes, resampling options, cluster labels coded
``0..G-1`` and per-cluster means.
"""

from __future__ import annotations

import numpy as np

from tli.errors import ConfigError

_ALPHA = 0.05


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


def _group_units(change, clusters, name: str) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """Validated changes, their units (cluster means or items) and the cluster coding of one group."""
    x = _as_1d(change, name)
    coded = _cluster_codes(clusters, x.size, f"clusters_{name[-1]}")
    units = _cluster_means(x, coded)
    if units.size < 2:
        what = "clusters" if coded is not None else "items"
        raise ConfigError(f"{name} needs at least 2 {what} for a between-group test, got {units.size}")
    return x, units, coded


def _significant(p: float, alpha: float) -> bool:
    return bool(p < alpha)  # nan -> False: no test result is no rejection
