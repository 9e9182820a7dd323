"""2-D projections (PCA or t-SNE) of source and target embeddings before and after training, translation pairs
joined.

In-function import: ``scikit-learn`` (PCA / t-SNE), needed only when a projection is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tli.plots.common import _GROUP_COLOURS, GROUP_ORDER, _figure, _order, _save

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
