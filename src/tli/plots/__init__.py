"""PNG plots (matplotlib, headless).

Each ``plot_*`` function writes one figure atomically and returns its path. The figure itself is built by
the matching ``*_figure`` function, so tests (and notebooks) can inspect what is drawn without a file:
axes carry a ``gid`` naming their role (``cosine``, ``gap``, ``retrieval``, ``similarity``, ...), and so do
the artists that matter (``artifact`` spans, the ``selected`` layer line, the ``chance`` line, ...).

In-function imports: ``matplotlib`` and ``scikit-learn`` (PCA / t-SNE), heavy and needed only when a plot
is drawn.

The package, one module per figure: :mod:`~tli.plots.layer_curves`, :mod:`~tli.plots.loss_curve`,
:mod:`~tli.plots.before_after` and :mod:`~tli.plots.projection`; :mod:`~tli.plots.common` holds what they
share.
"""

from __future__ import annotations

from tli.plots.before_after import before_after_figure, plot_before_after
from tli.plots.common import ARTIFACT_LABEL, GROUP_ORDER, ROLE_ORDER
from tli.plots.common import _figure as _figure  # private, re-exported: tests close every figure with it
from tli.plots.layer_curves import (
    ARTIFACT_SHADING_MAX_SHARE,
    GAP_LINTHRESH,
    RETRIEVAL_DODGE,
    artifact_shading,
    layer_curves_figure,
    plot_layer_curves,
)
from tli.plots.loss_curve import loss_curve_figure, moving_average, plot_loss_curve
from tli.plots.projection import (
    _project as _project,  # private, re-exported: tests check a projection with it
)
from tli.plots.projection import plot_projection, projection_figure

__all__ = [
    "ARTIFACT_LABEL",
    "ARTIFACT_SHADING_MAX_SHARE",
    "GAP_LINTHRESH",
    "GROUP_ORDER",
    "RETRIEVAL_DODGE",
    "ROLE_ORDER",
    "artifact_shading",
    "before_after_figure",
    "layer_curves_figure",
    "loss_curve_figure",
    "moving_average",
    "plot_before_after",
    "plot_layer_curves",
    "plot_loss_curve",
    "plot_projection",
    "projection_figure",
]
