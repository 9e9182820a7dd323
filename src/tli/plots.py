"""PNG plots (matplotlib, headless).

Each ``plot_*`` function writes one figure atomically and returns its path. The figure itself is built by
the matching ``*_figure`` function, so tests (and notebooks) can inspect what is drawn without a file:
axes carry a ``gid`` naming their role (``cosine``, ``gap``, ``retrieval``, ``similarity``, ...), and so do
the artists that matter (``artifact`` spans, the ``selected`` layer line, the ``chance`` line, ...).

In-function imports: ``matplotlib`` and ``scikit-learn`` (PCA / t-SNE), heavy and needed only when a plot
is drawn.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tli.io import atomic_write_bytes

ARTIFACT_LABEL = "artefact layer: raw cosine high for any pair"
GROUP_ORDER = ("trained", "control")
ROLE_ORDER = ("target", "final")
_GROUP_COLOURS = {"trained": "C0", "control": "C1"}


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    _figure().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def _number(value: Any) -> float:
    """``value`` as a float, NaN when missing or not a number (matplotlib leaves NaN points out)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _finite(values) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _column(rows: Sequence[dict], key: str) -> list[float]:
    return [_number(row.get(key)) for row in rows]


def _runs(values: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive integers grouped into inclusive ``(first, last)`` runs: [2, 3, 4, 9] → [(2, 4), (9, 9)]."""
    runs: list[tuple[int, int]] = []
    for value in sorted(set(values)):
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


GAP_LINTHRESH = 1e-5
"""Linear range of every symlog gap axis (scan, before/after): ``±1e-5``, below which a mean cosine gap is no
signal at float32 precision. One value for every plot, so equal gaps sit at equal heights everywhere."""

ARTIFACT_SHADING_MAX_SHARE = 0.5
"""Artefact layers are shaded only while they are at most this share of the layers: shading nearly every layer
would say nothing (the legend then names the layers instead)."""

RETRIEVAL_DODGE = 0.12
"""Horizontal offset between the retrieval series (in layers), so equal values (P@1 = CSLS P@1) show as
neighbouring markers instead of one."""


def artifact_shading(
    artifact_layers: Sequence[int], n_layers: int
) -> tuple[list[tuple[int, int]], str | None]:
    """The runs of artefact layers to shade and the legend text; no runs when they would cover most layers.

    Returns:
        ``(runs, label)``: inclusive ``(first, last)`` runs, and the legend entry (None when there are no
        artefact layers).
    """
    layers = sorted(set(artifact_layers))
    if not layers:
        return [], None
    runs = _runs(layers)
    names = ", ".join(f"{a}–{b}" if a != b else str(a) for a, b in runs)
    share = f"{len(layers)} of {n_layers} layers" if n_layers else f"{len(layers)} layers"
    if n_layers and len(layers) / n_layers > ARTIFACT_SHADING_MAX_SHARE:
        return [], f"artefact layers {names} ({share}: not shaded)\n— raw cosine high for any pair"
    return runs, f"{ARTIFACT_LABEL} ({names})"


# --- layer curves -------------------------------------------------------------------------------------------

_COSINE_SERIES = (
    ("matched_mean", "matched pairs", "C0", "o"),
    ("mismatched_mean", "mismatched pairs (any-pair baseline)", "0.55", "s"),
)
_GAP_SERIES = (("gap", "gap (raw)", "C3", "o"), ("centered_gap", "gap (mean-centred)", "C2", "D"))
_RETRIEVAL_SERIES = (
    ("p_at_1", "P@1", "C0", "o"),
    ("p_at_5", "P@5", "C1", "s"),
    ("mrr", "MRR", "C2", "^"),
    ("csls_p_at_1", "CSLS P@1", "C4", "D"),
)
_BASELINE_KEYS = ("mismatched_mean",)
"""Series drawn as a wide translucent band under the others: where a matched line coincides with its
baseline, the thin line stays visible on top of the band."""


def _draw_series(
    ax, rows: Sequence[dict], series, style: str, *, filled: bool, dodge: float = 0.0
) -> list[str]:
    """Draw each present ``(key, label, colour, marker)`` of ``series``; returns the keys drawn.

    ``dodge`` shifts the i-th series by ``(i − (n−1)/2) · dodge`` layers, so series with equal values stay
    apart. Baseline series (``_BASELINE_KEYS``) are wide translucent bands drawn underneath.
    """
    present = [item for item in series if any(item[0] in row for row in rows)]
    drawn = []
    for i, (key, label, colour, marker) in enumerate(present):
        shift = (i - (len(present) - 1) / 2) * dodge
        x = [int(row["layer"]) + shift for row in rows]
        baseline = key in _BASELINE_KEYS
        ax.plot(
            x,
            _column(rows, key),
            linestyle=style,
            color=colour,
            marker=marker,
            markersize=6 if baseline else 3.5,
            markerfacecolor=colour if filled else "white",
            linewidth=6.0 if baseline else 1.4,
            alpha=0.35 if baseline else 1.0,
            zorder=2 if baseline else 3,
            label=label,
            gid=key,
        )
        drawn.append(key)
    return drawn


def _legend_outside(ax, handles, labels) -> None:
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def layer_curves_figure(
    layers: Sequence[dict],
    *,
    selected: int | None = None,
    criterion: str = "",
    title: str = "",
    compare: Sequence[dict] | None = None,
    labels: tuple[str, str] = ("", ""),
    artifact_layers: Sequence[int] | None = None,
    chance_p_at_1: float | None = None,
):
    """The figure of :func:`plot_layer_curves` (three panels sharing the layer axis)."""
    from matplotlib.lines import Line2D

    plt = _figure()
    fig, (ax_cos, ax_gap, ax_ret) = plt.subplots(
        3, 1, figsize=(11, 9.5), sharex=True, layout="constrained", height_ratios=(1, 1, 1)
    )
    for ax, gid in ((ax_cos, "cosine"), (ax_gap, "gap"), (ax_ret, "retrieval")):
        ax.set_gid(gid)
    sets = [(layers, "-", labels[0] or "before")]
    if compare is not None:
        sets.append((compare, "--", labels[1] or "after"))

    gaps: list[float] = []
    keys: dict[str, list[str]] = {"cosine": [], "gap": [], "retrieval": []}
    for index, (rows, style, _) in enumerate(sets):
        filled = index == 0
        keys["cosine"] = _draw_series(ax_cos, rows, _COSINE_SERIES, style, filled=filled)
        keys["gap"] = _draw_series(ax_gap, rows, _GAP_SERIES, style, filled=filled)
        keys["retrieval"] = _draw_series(
            ax_ret, rows, _RETRIEVAL_SERIES, style, filled=filled, dodge=RETRIEVAL_DODGE
        )
        gaps += _column(rows, "gap") + _column(rows, "centered_gap")

    _scale_gap_panel(ax_gap, gaps)
    _scale_retrieval_panel(ax_ret, sets, chance_p_at_1)
    shaded, artifact_label = _mark_layers((ax_cos, ax_gap, ax_ret), sets, selected, artifact_layers)
    extras = _shared_marks(shaded, artifact_label, selected, criterion)
    styles = []
    if compare is not None:  # colour = metric, line style = state, explained once per panel
        for _, style, label in sets:
            styles.append((Line2D([], [], color="0.2", linestyle=style), label))
    for ax, panel in ((ax_cos, "cosine"), (ax_gap, "gap"), (ax_ret, "retrieval")):
        entries = _series_legend_entries(keys[panel])
        if panel == "retrieval" and chance_p_at_1 is not None and math.isfinite(chance_p_at_1):
            entries.append((Line2D([], [], color="0.3", linestyle=":"), f"chance P@1 = {chance_p_at_1:.2g}"))
        entries += styles + (extras if panel == "cosine" else [])  # shared marks explained once, on top
        _legend_outside(ax, [h for h, _ in entries], [label for _, label in entries])
    _label_panels(ax_cos, ax_gap, ax_ret)
    if title:
        fig.suptitle(title)
    return fig


def _scale_gap_panel(ax_gap, gaps: list[float]) -> None:
    """Symlog gap axis with the zero line; no negative gap: no height spent on the negative half."""
    ax_gap.set_yscale("symlog", linthresh=GAP_LINTHRESH, linscale=0.5)
    ax_gap.axhline(0, color="k", linewidth=0.8, gid="zero")
    finite_gaps = _finite(gaps)
    if finite_gaps and min(finite_gaps) >= 0:
        ax_gap.set_ylim(-GAP_LINTHRESH, max(GAP_LINTHRESH, max(finite_gaps)) * 1.8)


def _scale_retrieval_panel(ax_ret, sets: list, chance_p_at_1: float | None) -> None:
    """The chance line, and the retrieval axis scaled to the data (retrieval of a small model sits near
    chance; a 0–1 axis would hide it), never above 1."""
    if chance_p_at_1 is not None and math.isfinite(chance_p_at_1):
        ax_ret.axhline(chance_p_at_1, color="0.3", linestyle=":", linewidth=1.2, gid="chance")
    scores = _finite(
        [
            v
            for rows, _, _ in sets
            for key in ("p_at_1", "p_at_5", "mrr", "csls_p_at_1")
            for v in _column(rows, key)
        ]
    )
    top = max(scores + [chance_p_at_1 or 0.0, 0.01])
    ax_ret.set_ylim(-0.03 * top, min(1.03, top * 1.25))


def _mark_layers(axes, sets: list, selected: int | None, artifact_layers: Sequence[int] | None):
    """Shade the artefact layers (the cosine panel only: the flag is about the raw cosine; gaps and
    retrieval stay readable), mark the selected layer on every panel, and fit the shared integer layer
    axis. Returns :func:`artifact_shading`'s ``(spans, legend label)``."""
    from matplotlib.ticker import MaxNLocator

    ax_cos, ax_ret = axes[0], axes[-1]
    all_layers = sorted({int(row["layer"]) for rows, _, _ in sets for row in rows})
    shaded, artifact_label = artifact_shading(artifact_layers or [], len(all_layers))
    for first, last in shaded:
        ax_cos.axvspan(
            first - 0.5, last + 0.5, color="0.5", alpha=0.13, linewidth=0, zorder=0, gid="artifact"
        )
    for ax in axes:
        if selected is not None:
            ax.axvline(selected, color="k", linestyle=":", linewidth=1.3, gid="selected")
        ax.grid(alpha=0.3)
    if all_layers:
        ax_ret.set_xlim(min(all_layers) - 0.6, max(all_layers) + 0.6)
    ax_ret.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    return shaded, artifact_label


def _shared_marks(shaded, artifact_label: str | None, selected: int | None, criterion: str) -> list:
    """Legend entries of the marks every panel shares: the artefact shading and the selected layer."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    extras = []
    if artifact_label is not None:
        extras.append((Patch(color="0.5", alpha=0.2 if shaded else 0.0), artifact_label))
    if selected is not None:
        suffix = f" ({criterion})" if criterion else ""
        extras.append((Line2D([], [], color="k", linestyle=":"), f"selected layer {selected}{suffix}"))
    return extras


def _series_legend_entries(drawn: list[str]) -> list:
    """``(handle, label)`` for each series drawn on a panel (the any-pair baselines as wide bands)."""
    from matplotlib.lines import Line2D

    names = {key: (label, colour, marker) for key, label, colour, marker in _COSINE_SERIES + _GAP_SERIES}
    names.update({key: (label, colour, marker) for key, label, colour, marker in _RETRIEVAL_SERIES})
    entries = []
    for k in drawn:
        label, colour, marker = names[k]
        wide = k in _BASELINE_KEYS
        handle = Line2D(
            [], [], color=colour, marker=marker, markersize=6 if wide else 4,
            linewidth=6.0 if wide else 1.4, alpha=0.35 if wide else 1.0,
        )  # fmt: skip
        entries.append((handle, label))
    return entries


def _label_panels(ax_cos, ax_gap, ax_ret) -> None:
    """Axis labels and the one-line reading of each panel."""
    ax_cos.set_ylabel("mean cosine")
    ax_cos.set_title(
        "Matched pairs (line) over the any-pair baseline (band): where they coincide, the gap below is ≈ 0",
        fontsize=10,
        loc="left",
    )
    ax_gap.set_ylabel(f"matched − mismatched\n(symlog, linear within ±{GAP_LINTHRESH:g})")
    ax_gap.set_title("Gap: the translation signal left after the any-pair baseline", fontsize=10, loc="left")
    ax_ret.set_ylabel("score")
    ax_ret.set_title(
        "Retrieval of the translation among the whole lexicon (series offset sideways so equal values stay apart)",
        fontsize=10,
        loc="left",
    )
    ax_ret.set_xlabel("hidden-state index (0 = input embeddings)")


def plot_layer_curves(
    layers: Sequence[dict],
    path: Path,
    *,
    selected: int | None = None,
    criterion: str = "",
    title: str = "",
    compare: Sequence[dict] | None = None,
    labels: tuple[str, str] = ("", ""),
    artifact_layers: Sequence[int] | None = None,
    chance_p_at_1: float | None = None,
) -> Path:
    """Per-layer figure in three panels sharing the layer axis.

    1. Mean cosine of matched pairs (a thin line) over the mismatched pairs' mean (a wide translucent band):
       both stay visible where they coincide, which is where the any-pair baseline explains everything. Artefact
       layers are shaded here (only while they are at most half of the layers; else the legend names them).
    2. Their gap (and ``centered_gap`` when the rows have it) on a symlog axis linear within ``±GAP_LINTHRESH``
       (the same in every plot), so a gap of 1e-4 is visibly off zero while gaps of 0.3 still fit.
    3. Retrieval over the whole lexicon: P@1, P@5, MRR, CSLS P@1 (offset sideways by ``RETRIEVAL_DODGE`` so
       equal values stay apart), and the chance P@1 line.

    Args:
        layers: One row per hidden state (``layer``, ``matched_mean``, ``mismatched_mean``, ``gap``,
            ``p_at_1``, ``p_at_5``, ``mrr``, ``csls_p_at_1``; optionally ``centered_gap``).
        path: PNG file to write.
        selected: Layer marked by a dotted vertical line.
        criterion: How ``selected`` was chosen (shown in the legend).
        title: Figure title.
        compare: A second set of rows (e.g. after training), drawn dashed in the same colours.
        labels: Names of ``layers`` and ``compare`` in the legend (default "before", "after").
        artifact_layers: Layers where the raw cosine is high for any pair (shaded in the cosine panel).
        chance_p_at_1: P@1 of a random ranking (1 / number of candidates), drawn as a dotted line.
    """
    fig = layer_curves_figure(
        layers,
        selected=selected,
        criterion=criterion,
        title=title,
        compare=compare,
        labels=labels,
        artifact_layers=artifact_layers,
        chance_p_at_1=chance_p_at_1,
    )
    return _save(fig, path)


# --- loss curve ---------------------------------------------------------------------------------------------


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` finite values: ``m_i = mean(v_j, i-w < j <= i, v_j finite)``.

    NaN where a window holds no finite value.
    """
    out = []
    for i in range(len(values)):
        chunk = _finite(_number(v) for v in values[max(0, i - window + 1) : i + 1])
        out.append(sum(chunk) / len(chunk) if chunk else math.nan)
    return out


def loss_curve_figure(
    steps: Sequence[int],
    losses: Sequence[float],
    *,
    title: str = "",
    validation: Sequence[tuple[int, float]] | None = None,
    reference: tuple[float, str] | None = None,
):
    """The figure of :func:`plot_loss_curve`."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    ax.plot(steps, losses, color="C0", alpha=0.35, linewidth=0.8, label="training loss per step", gid="loss")
    window = max(1, len(losses) // 20)
    if window > 1:
        smooth = moving_average(losses, window)
        ax.plot(
            steps, smooth, color="C0", linewidth=1.8, label=f"moving average ({window} steps)", gid="smooth"
        )
    if validation:
        points = sorted(validation)
        ax.plot(
            [s for s, _ in points],
            [_number(v) for _, v in points],
            color="C3",
            marker="o",
            markersize=5,
            linewidth=1.2,
            label="validation loss",
            gid="validation",
        )
    if reference is not None:
        value, label = reference
        ax.axhline(value, color="0.3", linestyle="--", linewidth=1.0, label=label, gid="reference")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title or "TLI training loss")
    return fig


def plot_loss_curve(
    steps: Sequence[int],
    losses: Sequence[float],
    path: Path,
    *,
    title: str = "",
    validation: Sequence[tuple[int, float]] | None = None,
    reference: tuple[float, str] | None = None,
) -> Path:
    """Training loss per optimiser step, with a moving average over ~5 % of the run.

    Args:
        steps, losses: The training log.
        path: PNG file to write.
        title: Figure title.
        validation: ``(step, validation loss)`` points, drawn as markers joined by a line.
        reference: ``(loss, label)`` drawn as a dashed horizontal line, e.g. ``(margin, "loss at margin =
            collapse")`` for the triplet loss or ``(ln(batch), "InfoNCE chance")``.
    """
    fig = loss_curve_figure(steps, losses, title=title, validation=validation, reference=reference)
    return _save(fig, path)


# --- before / after scatter ---------------------------------------------------------------------------------


def _order(value: str, order: Sequence[str]) -> tuple[int, str]:
    return (order.index(value) if value in order else len(order), value)


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


# --- projection ---------------------------------------------------------------------------------------------


_METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE"}


def _project(vectors, method: str, seed: int):
    """``(m, H)`` → ``(m, 2)`` by PCA or t-SNE (scikit-learn)."""
    import numpy as np

    if len(vectors) < 2:
        return np.zeros((len(vectors), 2))
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = max(1, min(30, (len(vectors) - 1) // 3))
        # Exact gradients: for the few hundred points plotted they are faster than Barnes-Hut here.
        tsne = TSNE(2, random_state=seed, perplexity=perplexity, init="pca", method="exact", max_iter=500)
        return tsne.fit_transform(vectors)
    from sklearn.decomposition import PCA

    xy = PCA(n_components=min(2, *vectors.shape), random_state=seed).fit_transform(vectors)
    return np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))


def projection_figure(
    before: tuple,
    after: tuple,
    *,
    method: str = "pca",
    seed: int = 0,
    title: str = "",
    groups: Sequence[str] | None = None,
    languages: tuple[str, str] = ("source", "target"),
    more: Sequence[tuple[str, tuple, tuple]] = (),
):
    """The figure of :func:`plot_projection`: one row (``before``, ``after``) titled ``title``, then one row per
    ``(title, before, after)`` of ``more`` (e.g. the final layer under the target layer)."""
    import numpy as np
    from matplotlib.lines import Line2D

    plt = _figure()
    rows = [(title, before, after), *more]
    n = len(before[0])
    labels = list(groups) if groups is not None else ["pairs"] * n
    if len(labels) != n or any(len(b[0]) != n or len(a[0]) != n for _, b, a in rows):
        raise ValueError(f"groups and every row need one entry per pair ({n}); groups has {len(labels)}")
    names = sorted(set(labels), key=lambda g: _order(g, GROUP_ORDER))
    colours = {g: _GROUP_COLOURS.get(g, f"C{2 + i}") for i, g in enumerate(names)}
    fig, axes = plt.subplots(
        len(rows), 2, figsize=(11, 5.0 * len(rows) + 0.4), layout="constrained", squeeze=False
    )
    for (label, *states), row_axes in zip(rows, axes, strict=True):
        for ax, (src, tgt), state in zip(row_axes, states, ("before", "after"), strict=True):
            ax.set_gid(state)
            xy = _project(np.concatenate([np.asarray(src), np.asarray(tgt)]), method, seed)
            _draw_projection(ax, xy, n, labels, names, colours)
            where = f"{label}: " if label and len(rows) > 1 else ""
            ax.set_title(
                f"{where}{state} ({_METHOD_NAMES.get(method, method)}, fitted on this panel)", fontsize=10
            )
            ax.set_xticks([])
            ax.set_yticks([])
    handles = [Line2D([], [], color=colours[g], marker="s", linestyle="", label=g) for g in names]
    handles += [
        Line2D([], [], color="0.3", marker="o", linestyle="", label=languages[0]),
        Line2D([], [], color="0.3", marker="^", markerfacecolor="none", linestyle="", label=languages[1]),
        Line2D([], [], color="0.5", linewidth=0.8, label="translation pair"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8.5, frameon=False)
    counts = ", ".join(f"{labels.count(g):,} {g}" for g in names) if groups is not None else ""
    heading = f"{title} — " if title and len(rows) == 1 else ""
    fig.suptitle(f"{heading}n = {n:,} pairs" + (f" ({counts})" if counts else ""), fontsize=10.5)
    return fig


def _draw_projection(ax, xy, n: int, labels: list[str], names: list[str], colours: dict[str, str]) -> None:
    """Sources (●) and targets (hollow ▲) of one panel, translation pairs joined; the largest group first so
    the smaller (control) group stays visible on top."""
    for rank, group in enumerate(sorted(names, key=labels.count, reverse=True)):
        rows = [i for i, g in enumerate(labels) if g == group]
        for i in rows:
            ax.plot(
                [xy[i, 0], xy[n + i, 0]],
                [xy[i, 1], xy[n + i, 1]],
                color=colours[group],
                alpha=0.2,
                linewidth=0.5,
                zorder=1 + 2 * rank,
            )
        colour, zorder = colours[group], 2 + 2 * rank
        ax.scatter(
            xy[rows, 0], xy[rows, 1], s=14, marker="o", color=colour, alpha=0.85, zorder=zorder,
            gid=f"{group}:source",
        )  # fmt: skip
        targets = [n + i for i in rows]  # hollow, so the two languages differ in fill as well as shape
        ax.scatter(
            xy[targets, 0], xy[targets, 1], s=18, marker="^", facecolors="none", edgecolors=colour,
            linewidths=1.0, zorder=zorder, gid=f"{group}:target",
        )  # fmt: skip


def plot_projection(
    before: tuple,
    after: tuple,
    path: Path,
    *,
    method: str = "pca",
    seed: int = 0,
    title: str = "",
    groups: Sequence[str] | None = None,
    languages: tuple[str, str] = ("source", "target"),
    more: Sequence[tuple[str, tuple, tuple]] = (),
) -> Path:
    """2-D projection of source (●) and target (▲) embeddings before and after, translation pairs joined.

    Colour = group (trained / control), marker = language; the title gives n per group. One row per layer:
    ``before``/``after`` under ``title``, then each ``(title, before, after)`` of ``more`` — the evaluation draws
    the target layer, where TLI's loss acts, above the final layer.

    Args:
        before, after: ``(source_vectors, target_vectors)`` numpy arrays ``(n, H)`` for the same n pairs.
        path: PNG file to write.
        method: ``pca`` or ``tsne`` (scikit-learn); each panel is fitted on its own embeddings.
        seed: Random state of the projection.
        title: Figure title (n is appended), or the first row's title when there are several.
        groups: One group name per pair (e.g. ``trained`` / ``control``); None draws one colour.
        languages: Legend names of the source and target side, e.g. ``("Swahili", "English")``.
        more: Further rows ``(title, before, after)`` of the same pairs (another layer).
    """
    fig = projection_figure(
        before, after, method=method, seed=seed, title=title, groups=groups, languages=languages, more=more
    )
    return _save(fig, path)
