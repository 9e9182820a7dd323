"""The training loss per optimiser step, its moving average, validation points and the loss's tell-tale level."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from tli.plots.common import _figure, _finite, _number, _save


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
