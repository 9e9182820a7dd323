"""Statistics for paired (before/after) similarity data, in the spirit of rliable.

Every function is pure: inputs are 1-D arrays of per-pair scores, ``pre[i]`` and ``post[i]``
measured on the same item ``i``. Randomness (bootstrap) always goes through an explicit
:class:`numpy.random.Generator` (or an ``int`` seed), so results are reproducible.
p-values are reported exactly as scipy computes them (no clipping); a p-value that underflows
to ``0.0`` is printed as ``"< 1e-300"`` by :func:`format_p`.
"""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats as sps

from tli.errors import ConfigError

__all__ = [
    "PairedStats",
    "bootstrap_ci_mean",
    "cohens_d_paired",
    "format_p",
    "format_stats_table",
    "paired_stats",
    "read_paired_csv",
    "stats_from_csv",
    "verdict",
]

_BOOT_CHUNK = 1 << 22  # max resample indices held in memory at once


@dataclass(frozen=True)
class PairedStats:
    """Summary of a paired comparison (``post`` versus ``pre``); see :func:`paired_stats`."""

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

    def to_dict(self) -> dict:
        """Return the fields as a plain ``dict`` (floats stay floats, ``nan`` included)."""
        return asdict(self)


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


def bootstrap_ci_mean(
    x, *, n_boot: int = 10_000, confidence: float = 0.95, rng: np.random.Generator | int | None = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean.

    Draws ``n_boot`` resamples of ``x`` (shape ``(n,)``) with replacement, computes each
    resample's mean ``m_b`` (vectorised: an ``(n_boot, n)`` index array, in chunks), and returns
    the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of ``{m_b}``.

    Args:
        x: 1-D array of finite values, shape ``(n,)``, ``n >= 1``.
        n_boot: number of bootstrap resamples (``>= 1``).
        confidence: confidence level in ``(0, 1)``.
        rng: a numpy ``Generator``, or a seed passed to :func:`numpy.random.default_rng`.

    Returns:
        ``(low, high)`` as floats.
    """
    arr = _as_1d(x, "x")
    if arr.size < 1:
        raise ConfigError("bootstrap_ci_mean needs at least 1 value, got 0")
    if int(n_boot) < 1:
        raise ConfigError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    gen = np.random.default_rng(rng)
    n, n_boot = arr.size, int(n_boot)
    rows = max(1, _BOOT_CHUNK // n)
    means = np.empty(n_boot)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = gen.integers(0, n, size=(stop - start, n))
        means[start:stop] = arr[idx].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1.0 - alpha / 2])
    return float(low), float(high)


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


def paired_stats(
    pre,
    post,
    *,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
) -> PairedStats:
    """Paired before/after statistics for ``d = post - pre``.

    * ``change = mean(post) - mean(pre)``; ``change_pct = 100 * change / mean(pre)``
      (``nan`` when ``mean(pre) == 0``).
    * ``t``, ``p_ttest``: :func:`scipy.stats.ttest_rel` ``(post, pre)``, two-sided.
    * ``p_wilcoxon``: :func:`scipy.stats.wilcoxon` ``(post, pre)``, two-sided, zero differences
      dropped (``nan`` when every difference is zero).
    * ``ci95_low``, ``ci95_high``: percentile bootstrap CI of ``mean(d)`` at ``confidence``
      (see :func:`bootstrap_ci_mean`; the field names keep "95" whatever the level).
    * ``cohens_d``: ``d_z = mean(d) / std(d, ddof=1)`` (see :func:`cohens_d_paired`).

    Args:
        pre, post: 1-D arrays of finite scores, same shape ``(n,)``, ``n >= 2``.
        n_boot: bootstrap resamples.
        confidence: CI level in ``(0, 1)``.
        rng: a numpy ``Generator`` or a seed.

    Raises:
        ConfigError: different lengths, fewer than 2 pairs, or a non-finite value.
    """
    a, b = _validate_pair(pre, post)
    d = b - a
    mean_pre, mean_post = float(a.mean()), float(b.mean())
    change = mean_post - mean_pre
    change_pct = 100.0 * change / mean_pre if mean_pre != 0 else math.nan
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
    low, high = bootstrap_ci_mean(d, n_boot=n_boot, confidence=confidence, rng=rng)
    return PairedStats(
        n=int(a.size),
        mean_pre=mean_pre,
        mean_post=mean_post,
        change=change,
        change_pct=change_pct,
        t=float(tt.statistic),
        p_ttest=float(tt.pvalue),
        p_wilcoxon=p_w,
        ci95_low=low,
        ci95_high=high,
        cohens_d=cohens_d_paired(a, b),
    )


def verdict(low: float, high: float, p: float, *, alpha: float = 0.05, expect: str = "increase") -> str:
    """Classify a result from its CI ``[low, high]`` of the mean change and its p-value.

    * ``"supported"``: ``p < alpha`` and the CI excludes 0 on the expected side
      (``expect="increase"``: ``low > 0``; ``expect="decrease"``: ``high < 0``).
    * ``"contradicted"``: ``p < alpha`` and the CI excludes 0 on the opposite side.
    * ``"inconclusive"``: anything else (``p >= alpha``, a CI containing 0, or ``nan`` input).

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


def read_paired_csv(
    path, *, pre: str = "sim_pre_tli", post: str = "sim_post_tli", group: str | None = "group"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read paired scores from a CSV with a header row.

    Returns ``{group_value: (pre, post)}`` (arrays of shape ``(n_g,)``, groups in order of first
    appearance), or ``{"all": (pre, post)}`` when ``group`` is ``None`` or not a column. ``group`` may
    name several comma-separated columns (``"group,layer_role"``); the key then joins their values
    with ``/`` (``"control/final"``).

    Raises:
        ConfigError: unreadable or empty file, missing ``pre``/``post`` column (the message lists
            the available columns), or a non-numeric / non-finite cell (file, line and column).
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            if not columns:
                raise ConfigError(f"{path}: empty CSV file (no header row)")
            missing = [c for c in (pre, post) if c not in columns]
            if missing:
                raise ConfigError(
                    f"{path}: missing column(s) {', '.join(map(repr, missing))}; "
                    f"available columns: {', '.join(columns)}"
                )
            group_columns = [g.strip() for g in group.split(",")] if group else []
            use_group = bool(group_columns) and all(g in columns for g in group_columns)
            data: dict[str, tuple[list[float], list[float]]] = {}
            for row in reader:
                line = reader.line_num
                vals = []
                for col in (pre, post):
                    cell = row.get(col)
                    try:
                        v = float(cell)  # type: ignore[arg-type]
                    except (TypeError, ValueError):
                        v = math.nan
                        cell = "" if cell is None else cell
                    if not math.isfinite(v):
                        raise ConfigError(
                            f"{path}, line {line}, column {col!r}: expected a finite number, got {cell!r}"
                        )
                    vals.append(v)
                key = "/".join(row.get(g) or "" for g in group_columns) if use_group else "all"
                bucket = data.setdefault(key, ([], []))
                bucket[0].append(vals[0])
                bucket[1].append(vals[1])
    except OSError as exc:
        raise ConfigError(f"cannot read CSV {path}: {exc.strerror or exc}") from exc
    if not data:
        raise ConfigError(f"{path}: no data rows (columns: {', '.join(columns)})")
    return {k: (np.asarray(a), np.asarray(b)) for k, (a, b) in data.items()}


def stats_from_csv(
    path,
    *,
    pre: str = "sim_pre_tli",
    post: str = "sim_post_tli",
    group: str | None = "group",
    n_boot: int = 10_000,
    rng: np.random.Generator | int | None = 0,
) -> dict[str, PairedStats]:
    """:func:`paired_stats` for each group of :func:`read_paired_csv`.

    When there are several groups, an ``"all"`` entry pools every row (named ``"all (pooled)"``
    if a group is already called ``"all"``). Each group uses a generator derived from ``rng``.
    """
    groups = read_paired_csv(path, pre=pre, post=post, group=group)
    if len(groups) > 1:
        pooled = "all" if "all" not in groups else "all (pooled)"
        groups[pooled] = (
            np.concatenate([a for a, _ in groups.values()]),
            np.concatenate([b for _, b in groups.values()]),
        )
    gen = np.random.default_rng(rng)
    out: dict[str, PairedStats] = {}
    for name, (a, b) in groups.items():
        try:
            out[name] = paired_stats(a, b, n_boot=n_boot, rng=gen)
        except ConfigError as exc:
            raise ConfigError(f"{path}, group {name!r}: {exc}") from exc
    return out


def format_stats_table(results: dict[str, PairedStats]) -> str:
    """Render ``{name: PairedStats}`` as a Markdown table (p-values via :func:`format_p`)."""
    head = (
        "| group | n | mean pre | mean post | change | change % | t | p (t-test) "
        "| p (Wilcoxon) | bootstrap CI | d_z |"
    )
    lines = [head, "|" + "---|" * 11]
    for name, s in results.items():
        lines.append(
            f"| {name} | {s.n} | {s.mean_pre:.4f} | {s.mean_post:.4f} | {s.change:+.4f} "
            f"| {s.change_pct:+.2f} | {s.t:.2f} | {format_p(s.p_ttest)} "
            f"| {format_p(s.p_wilcoxon)} | [{s.ci95_low:.4f}, {s.ci95_high:.4f}] "
            f"| {s.cohens_d:.2f} |"
        )
    return "\n".join(lines)
