"""Per-layer curves of a scan, or before / after training: mean cosines over the any-pair baseline, their gap
on a symlog axis, and retrieval against chance, in three panels sharing the layer axis."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from tli.plots.common import ARTIFACT_LABEL, _column, _figure, _finite, _runs, _save

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
