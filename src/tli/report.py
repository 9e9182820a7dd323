"""Run-directory writers: ``results.json``, CSV tables, ``report.md`` and plots, all atomic.

``results.json`` is always written last, so a directory holding it is a complete run.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from tli.io import atomic_write_csv, atomic_write_json, atomic_write_text
from tli.plots import plot_layer_curves
from tli.runs import provenance

LAYER_FIELDS = [
    "layer",
    "matched_mean",
    "mismatched_mean",
    "gap",
    "p_at_1",
    "p_at_5",
    "mrr",
    "csls_p_at_1",
]


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def layer_table(layers: list[dict], selected: int | None = None) -> str:
    """Markdown table of per-layer figures; the selected layer is in bold."""
    header = "| " + " | ".join(LAYER_FIELDS) + " |"
    rule = "|" + "---|" * len(LAYER_FIELDS)
    lines = [header, rule]
    for row in layers:
        cells = [_fmt(row[key]) for key in LAYER_FIELDS]
        if row["layer"] == selected:
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scan_findings(result) -> list[str]:
    """Plain-language statements the numbers support, for the report."""
    rows = {row["layer"]: row for row in result.layers}
    chosen = rows[result.selected_layer]
    n_src = result.lexicon["n_sources"]
    findings = [
        f"Selected layer **{result.selected_layer}** by `{result.criterion}`: matched mean "
        f"{chosen['matched_mean']:.4f} vs mismatched {chosen['mismatched_mean']:.4f} "
        f"(gap {chosen['gap']:+.4f}); P@1 {chosen['p_at_1']:.3f}, MRR {chosen['mrr']:.3f} "
        f"(chance P@1 ≈ {1 / max(result.lexicon['n_targets'], 1):.4f} over "
        f"{result.lexicon['n_targets']} candidate targets, {n_src} query words).",
    ]
    if result.published_choice is not None and result.published_choice != result.selected_layer:
        pub = rows[result.published_choice]
        findings.append(
            f"The published rule (highest matched mean cosine) would pick layer "
            f"{result.published_choice}: matched {pub['matched_mean']:.5f} but mismatched "
            f"{pub['mismatched_mean']:.5f} (gap {pub['gap']:+.5f}, P@1 {pub['p_at_1']:.3f})."
        )
    if result.artifact_layers:
        findings.append(
            f"Artifact warning: at layers {_ranges(result.artifact_layers)} the matched mean cosine "
            f"exceeds 0.95 while the gap to mismatched pairs is below 0.05 — there, a high cosine holds "
            f"for any pair of words and says nothing about translation."
        )
    return findings


def _ranges(values: list[int]) -> str:
    """``[1, 2, 3, 7]`` → ``"1–3, 7"``."""
    parts, start = [], None
    for i, value in enumerate(values):
        if start is None:
            start = value
        if i + 1 == len(values) or values[i + 1] != value + 1:
            parts.append(str(start) if start == value else f"{start}–{value}")
            start = None
    return ", ".join(parts)


def scan_report(result, config) -> str:
    """The human-readable ``report.md`` of a scan."""
    model = result.model
    lines = [
        "# tli scan",
        "",
        f"- model: `{model['name']}` ({model['architecture']}, {model['num_hidden_layers']} blocks, "
        f"hidden {model['hidden_size']}, {model['dtype']}, quantization {model['quantization']})",
        f"- lexicon: `{result.lexicon['path']}` — {result.n_pairs} pairs "
        f"({result.lexicon['source_lang']}→{result.lexicon['target_lang']})",
        f"- pooling: `{result.pooling['pooling']}` (excluded: {result.pooling['excluded_tokens']}; "
        f"centred: {result.pooling['center']}; template: {result.pooling['template']!r}; "
        f"BOS: {result.pooling['add_bos']})",
        f"- timing: load {result.timing['load_seconds']:.1f} s, scan {result.timing['scan_seconds']:.1f} s",
        "",
        "## Findings",
        "",
        *[f"- {finding}" for finding in scan_findings(result)],
        "",
        "## Per layer",
        "",
        "Hidden-state index 0 is the input embeddings, N the last block's (normalised) output. "
        "`gap` = matched − mismatched mean cosine; retrieval ranks each source word's translation "
        "among all target words (ties counted against it).",
        "",
        layer_table(result.layers, result.selected_layer),
        "",
        "![layer curves](layers.png)",
        "",
    ]
    return "\n".join(lines)


def write_scan_run(out: Path, result, config) -> Path:
    """Write a scan's run directory; ``results.json`` last."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out / "layers.csv", result.layers, LAYER_FIELDS)
    plot_layer_curves(
        result.layers,
        out / "layers.png",
        selected=result.selected_layer,
        criterion=result.criterion,
        title=f"{result.model['name']} — {result.pooling['pooling']} pooling, {result.n_pairs} pairs",
    )
    atomic_write_text(out / "report.md", scan_report(result, config))
    record = {**result.to_dict(), **provenance("scan", asdict(config), config.seed)}
    atomic_write_json(out / "results.json", record)
    return out
