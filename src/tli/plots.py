"""PNG plots (matplotlib, headless). Each function writes one figure atomically and returns its path."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from tli.io import atomic_write_bytes


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


def plot_layer_curves(
    layers: Sequence[dict],
    path: Path,
    *,
    selected: int | None = None,
    criterion: str = "",
    title: str = "",
    compare: Sequence[dict] | None = None,
    labels: tuple[str, str] = ("", ""),
) -> Path:
    """Two panels per layer: cosine (matched, mismatched baseline, gap) and retrieval (P@1, P@5, MRR,
    CSLS P@1). The selected layer is marked. With ``compare`` (e.g. after training), its curves are drawn
    dashed beside the first set, labelled by ``labels``."""
    plt = _figure()
    fig, (ax_cos, ax_ret) = plt.subplots(1, 2, figsize=(12, 4.2))
    series = [(layers, "-", labels[0])]
    if compare is not None:
        series.append((compare, "--", labels[1]))
    for rows, style, label in series:
        x = [row["layer"] for row in rows]
        suffix = f" {label}" if label else ""
        ax_cos.plot(x, [r["matched_mean"] for r in rows], style, color="C0", label=f"matched{suffix}")
        ax_cos.plot(x, [r["mismatched_mean"] for r in rows], style, color="C7", label=f"mismatched{suffix}")
        ax_cos.plot(x, [r["gap"] for r in rows], style, color="C3", label=f"gap{suffix}")
        ax_ret.plot(x, [r["p_at_1"] for r in rows], style, color="C0", label=f"P@1{suffix}")
        ax_ret.plot(x, [r["p_at_5"] for r in rows], style, color="C1", label=f"P@5{suffix}")
        ax_ret.plot(x, [r["mrr"] for r in rows], style, color="C2", label=f"MRR{suffix}")
        ax_ret.plot(x, [r["csls_p_at_1"] for r in rows], style, color="C4", label=f"CSLS P@1{suffix}")
    for ax in (ax_cos, ax_ret):
        if selected is not None:
            ax.axvline(selected, color="k", linestyle=":", label=f"selected ({criterion}): {selected}")
        ax.set_xlabel("hidden-state index (0 = input embeddings)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax_cos.set_ylabel("cosine similarity")
    ax_cos.set_title("matched vs mismatched pairs")
    ax_ret.set_ylabel("retrieval over the whole lexicon")
    ax_ret.set_title("translation retrieval")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_loss_curve(steps: Sequence[int], losses: Sequence[float], path: Path, *, title: str = "") -> Path:
    """Training loss per optimiser step, with a moving average over ~5 % of the run."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.plot(steps, losses, color="C0", alpha=0.35, linewidth=0.8, label="loss per step")
    window = max(1, len(losses) // 20)
    if window > 1:
        smooth = [
            sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
            for i in range(len(losses))
        ]
        ax.plot(steps, smooth, color="C0", linewidth=1.8, label=f"moving average ({window} steps)")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "TLI training loss")
    return _save(fig, path)


def plot_before_after(per_pair: Sequence[dict], path: Path, *, title: str = "") -> Path:
    """Per-pair similarity before (x) vs after (y), one panel per (layer role, group); points above the
    diagonal improved."""
    plt = _figure()
    panels = sorted(
        {(row["layer_role"], row["layer"], row["group"]) for row in per_pair},
        key=lambda p: (p[0] != "target", p[2] != "trained"),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for ax, (role, layer, group) in zip(axes[0], panels, strict=True):
        rows = [r for r in per_pair if r["layer_role"] == role and r["group"] == group]
        pre = [r["sim_pre"] for r in rows]
        post = [r["sim_post"] for r in rows]
        ax.scatter(pre, post, s=8, alpha=0.5, color="C0" if group == "trained" else "C1")
        low, high = min(pre + post), max(pre + post)
        ax.plot([low, high], [low, high], color="k", linewidth=0.8, linestyle="--")
        ax.set_title(f"{group} — {role} layer {layer} (n={len(rows)})", fontsize=9)
        ax.set_xlabel("similarity before")
        ax.set_ylabel("similarity after")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_projection(
    before: tuple, after: tuple, path: Path, *, method: str = "pca", seed: int = 0, title: str = ""
) -> Path:
    """2-D projection of source (●) and target (▲) embeddings before and after, translation pairs joined.

    Args:
        before, after: ``(source_vectors, target_vectors)`` numpy arrays ``(n, H)`` for the same n pairs.
        method: ``pca`` or ``tsne`` (scikit-learn); each panel is fitted on its own embeddings.
    """
    import numpy as np

    plt = _figure()
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (src, tgt), label in zip(axes, (before, after), ("before", "after"), strict=True):
        both = np.concatenate([src, tgt])
        if method == "tsne":
            from sklearn.manifold import TSNE

            perplexity = max(2, min(30, (len(both) - 1) // 3))
            # Exact gradients: for the few hundred points plotted they are faster than Barnes-Hut here.
            tsne = TSNE(2, random_state=seed, perplexity=perplexity, init="pca", method="exact", max_iter=500)
            xy = tsne.fit_transform(both)
        else:
            from sklearn.decomposition import PCA

            xy = PCA(n_components=2, random_state=seed).fit_transform(both)
        n = len(src)
        for i in range(n):
            ax.plot([xy[i, 0], xy[n + i, 0]], [xy[i, 1], xy[n + i, 1]], color="0.8", linewidth=0.5, zorder=1)
        ax.scatter(xy[:n, 0], xy[:n, 1], s=10, color="C0", label="source", zorder=2)
        ax.scatter(xy[n:, 0], xy[n:, 1], s=10, marker="^", color="C3", label="target", zorder=2)
        ax.set_title(f"{label} ({method.upper()})")
        ax.legend(fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return _save(fig, path)
