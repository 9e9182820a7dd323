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
