"""Per-pair scatter of similarity and gap before (x) against after (y) training, one column per (layer role,
group)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from tli.plots.common import (
    _GROUP_COLOURS,
    GROUP_ORDER,
    ROLE_ORDER,
    _column,
    _figure,
    _finite,
    _number,
    _order,
    _save,
)


def _limits(values: Sequence[float]) -> tuple[float, float] | None:
    """A square range holding ``values`` with a 4 % margin; None when none is finite."""
    finite = _finite(values)
    if not finite:
        return None
    low, high = min(finite), max(finite)
    pad = 0.04 * (high - low) or 0.05 * max(abs(high), 1e-3)
    return low - pad, high + pad


def _summary(pre: Sequence[float], post: Sequence[float]) -> str:
    """``"mean Δ +0.090, 73 % above diagonal"`` over the pairs where both values are finite."""
    both = [(a, b) for a, b in zip(pre, post, strict=True) if math.isfinite(a) and math.isfinite(b)]
    if not both:
        return "no finite values"
    change = sum(b - a for a, b in both) / len(both)
    above = 100 * sum(b > a for a, b in both) / len(both)
    return f"mean Δ {change:+.3f}\n{above:.0f} % above diagonal"


def before_after_figure(per_pair: Sequence[dict], *, title: str = ""):
    """The figure of :func:`plot_before_after`."""
    plt = _figure()
    panels = sorted(
        {(row["layer_role"], row["layer"], row["group"]) for row in per_pair},
        key=lambda p: (_order(p[0], ROLE_ORDER), _order(p[2], GROUP_ORDER)),
    )
    metrics = [("sim", "similarity")]
    # The gap the report leads with is the centred one (scale-free); the raw gap only when that is missing.
    if any(math.isfinite(_number(row.get("centered_gap_pre"))) for row in per_pair):
        metrics.append(("centered_gap", "centred gap"))
    elif any(math.isfinite(_number(row.get("gap_pre"))) for row in per_pair):
        metrics.append(("gap", "gap"))
    columns = max(1, len(panels))
    fig, axes = plt.subplots(
        len(metrics),
        columns,
        figsize=(3.6 * columns, 3.7 * len(metrics)),
        squeeze=False,
        layout="constrained",
    )
    for r, (key, name) in enumerate(metrics):
        # Panels of the same layer share a range, so trained and control compare at a glance.
        ranges = {}
        for role, layer, _ in panels:
            values = [
                _number(row.get(f"{key}_{when}"))
                for row in per_pair
                if row["layer_role"] == role and row["layer"] == layer
                for when in ("pre", "post")
            ]
            ranges[(role, layer)] = _limits(values)
        for c, (role, layer, group) in enumerate(panels):
            ax = axes[r][c]
            ax.set_gid("similarity" if key == "sim" else key)
            rows = [
                row
                for row in per_pair
                if (row["layer_role"], row["layer"], row["group"]) == (role, layer, group)
            ]
            pre, post = _column(rows, f"{key}_pre"), _column(rows, f"{key}_post")
            colour = _GROUP_COLOURS.get(group, f"C{2 + c % 6}")
            dense = len(rows) > 300  # many points: small and translucent, so overlaps show as darker areas
            ax.scatter(
                pre, post, s=7 if dense else 18, alpha=0.35 if dense else 0.8, color=colour, linewidths=0
            )
            limits = ranges[(role, layer)]
            if limits is not None:
                ax.plot(limits, limits, color="k", linewidth=0.8, linestyle="--", gid="diagonal")
                ax.set_xlim(limits)
                ax.set_ylim(limits)
                if key != "sim" and limits[0] < 0 < limits[1]:
                    ax.axhline(0, color="0.6", linewidth=0.6)
                    ax.axvline(0, color="0.6", linewidth=0.6)
            ax.set_aspect("equal", adjustable="box")
            ax.text(
                0.03,
                0.97,
                _summary(pre, post),
                transform=ax.transAxes,
                va="top",
                fontsize=7.5,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
            )
            ax.set_title(f"{group} · {role} L{layer} · n={len(rows):,}", fontsize=9)
            ax.set_xlabel(f"{name} before", fontsize=8.5)
            if c == 0:
                ax.set_ylabel(f"{name} after", fontsize=8.5)
            ax.tick_params(labelsize=7.5)
            ax.grid(alpha=0.3)
    fig.suptitle(
        title or "Per-pair change (above the dashed diagonal = higher after training)", fontsize=10.5
    )
    return fig


def plot_before_after(per_pair: Sequence[dict], path: Path, *, title: str = "") -> Path:
    """Per-pair scatter, before (x) vs after (y) training, one column per (layer role, group).

    Top row: pair similarity; second row: the pair's centred gap to non-translations (``centered_gap_pre`` /
    ``_post``, the figure the report leads with), or the raw gap (``gap_pre``) for rows without it. Points above
    the diagonal went up; each panel prints its n, the mean change and the share of pairs above the diagonal.
    Columns of the same layer share their axis range.

    Args:
        per_pair: Rows with ``group``, ``layer``, ``layer_role``, ``sim_pre``, ``sim_post`` and optionally
            ``centered_gap_pre``, ``centered_gap_post`` (or ``gap_pre``, ``gap_post``).
        path: PNG file to write.
        title: Figure title.
    """
    return _save(before_after_figure(per_pair, title=title), path)
