"""The evaluation over several seeds: the per-seed table, ``report.md`` with the plots of every seed, and
``results.json`` (last)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tli.io import atomic_write_json, atomic_write_text
from tli.report.evaluation import EVALUATE_PLOTS, evaluation_report
from tli.report.formatting import plot_index
from tli.runs import mark_complete


def seeds_table(per_seed: list[dict]) -> str:
    """Per-seed headline figures: similarity, centred gap and MRR change per group and layer."""
    lines = [
        "| seed | group | layer | similarity change | centred gap change | MRR before → after |",
        "|---|---|---|---|---|---|",
    ]
    for seed in per_seed:
        for e in seed["evaluation"]:
            lines.append(
                f"| {seed['seed']} | {e['group']} | {e['layer_role']} ({e['layer']}) | {e['change']:+.4f} "
                f"| {e['centered_gap_change']:+.4f} | {e['mrr_pre']:.3f} → {e['mrr_post']:.3f} |"
            )
    return "\n".join(lines)


def seeds_summary_report(summary: dict[str, Any]) -> str:
    """``report.md`` of an evaluation over several seeds (its ``results.json`` alone determines it)."""
    body = evaluation_report(summary, heading="# tli evaluate — over seeds")
    per_seed = "\n".join(
        [
            "## Per seed",
            "",
            seeds_table(summary["per_seed"]),
            "",
            "Each seed's plots and pairs are in `seed-<k>/`.",
            "",
        ]
    )
    links = plot_index(
        summary["seeds"],
        lambda _stage, seed: f"seed-{seed}",
        [("evaluate", name, what) for name, what in EVALUATE_PLOTS],
    )
    return body + "\n" + per_seed + "\n## Plots\n\n" + links + "\n"


def write_seeds_summary(out: Path, summary: dict[str, Any]) -> Path:
    """The evaluation over several seeds: ``report.md`` and ``results.json`` (last) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.md", seeds_summary_report(summary))
    atomic_write_json(out / "results.json", summary)
    mark_complete(out, "evaluation over seeds")
    return out
