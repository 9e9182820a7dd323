"""p-values and per-group statistics as ``tli stats`` prints them."""

from __future__ import annotations

import math

from tli.stats.paired import PairedStats


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


def _pct(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:+.2f}"


def format_stats_table(results: dict[str, PairedStats], *, legend: bool = True) -> str:
    """Render ``{name: PairedStats}`` as a Markdown table (p-values via :func:`format_p`).

    Columns: n, clusters, means, change, % change ("—" where undefined), p (primary: the t-test on
    cluster means), p (t-test on pairs), p (Wilcoxon), bootstrap CI, d_z, and a note on rows where
    the t-test and the Wilcoxon test disagree. ``legend`` appends a short explanation.
    """
    head = (
        "| group | n | clusters | mean pre | mean post | change | change % | p | p (t-test) "
        "| p (Wilcoxon) | bootstrap CI | d_z | note |"
    )
    lines = [head, "|" + "---|" * 13]
    for name, s in results.items():
        note = "t-test and Wilcoxon disagree" if s.tests_disagree else ""
        lines.append(
            f"| {name} | {s.n} | {s.n_clusters} | {s.mean_pre:.4f} | {s.mean_post:.4f} | {s.change:+.4f} "
            f"| {_pct(s.change_pct)} | {format_p(s.p)} | {format_p(s.p_ttest)} "
            f"| {format_p(s.p_wilcoxon)} | [{s.ci95_low:.4f}, {s.ci95_high:.4f}] "
            f"| {s.cohens_d:.2f} | {note} |"
        )
    if legend:
        lines += [
            "",
            "p: t-test on per-cluster mean changes (the primary test; equals p (t-test) when each pair is "
            "its own cluster). CI: percentile bootstrap over clusters. change %: — where |mean pre| < sd "
            "pre. Notes mark t-test and Wilcoxon decisions that differ at alpha = 0.05.",
        ]
    return "\n".join(lines)
