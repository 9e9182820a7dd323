"""A scan's run directory: ``layers.csv``, the layer-curves plot, ``report.md`` (its findings worded from the
numbers) and ``results.json`` (last)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from tli.io import atomic_write_csv, atomic_write_json, atomic_write_text
from tli.metrics import ARTIFACT_MISMATCHED, ARTIFACT_RELATIVE_GAP
from tli.plots import plot_layer_curves
from tli.report.formatting import _fmt, _ranges
from tli.runs import mark_complete, provenance

LAYER_FIELDS = [
    "layer",
    "matched_mean",
    "mismatched_mean",
    "gap",
    "centered_gap",
    "p_at_1",
    "p_at_5",
    "mrr",
    "csls_p_at_1",
]
ALL_LAYER_FIELDS = [*LAYER_FIELDS, "centered_matched_mean", "centered_mismatched_mean"]


def layer_table(layers: list[dict], selected: int | None = None, artifacts: list[int] | None = None) -> str:
    """Markdown table of per-layer figures; the selected layer in bold, artefact layers marked †."""
    header = "| " + " | ".join(LAYER_FIELDS) + " |"
    lines = [header, "|" + "---|" * len(LAYER_FIELDS)]
    for row in layers:
        cells = [_fmt(row.get(key, float("nan"))) for key in LAYER_FIELDS]
        if artifacts and row["layer"] in artifacts:
            cells[0] += " †"
        if row["layer"] == selected:
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bos_phrase(pooling: dict[str, Any]) -> str:
    """How each word starts, for a report line."""
    by = pooling.get("bos_by")
    if by == "tli":
        return f"`{pooling['bos_token']}` prepended by tli"
    if by == "tokenizer":
        return f"`{pooling['bos_token']}` added by the tokenizer"
    return "none"


def scan_findings(result) -> list[str]:
    """Plain-language statements the numbers support, for the report."""
    rows = {row["layer"]: row for row in result.layers}
    chosen = rows[result.selected_layer]
    low, high = result.selectable_layers or (1, len(result.layers) - 1)
    n_src = result.lexicon["n_sources"]
    findings = [
        f"Selected layer **{result.selected_layer}** by `{result.criterion}` among layers {low}–{high} (TLI is an "
        f"early-layer method; the scan covers every layer): centred gap {chosen['centered_gap']:+.4f}, raw "
        f"matched {chosen['matched_mean']:.4f} vs mismatched {chosen['mismatched_mean']:.4f}; P@1 "
        f"{chosen['p_at_1']:.3f}, MRR {chosen['mrr']:.3f} (chance P@1 {result.chance_p_at_1:.4f} over "
        f"{result.lexicon['n_targets']} candidate targets, {n_src} query words; words with several translations "
        "are easier to hit).",
    ]
    if result.best_overall is not None and result.best_overall != result.selected_layer:
        best = rows[result.best_overall]
        findings.append(
            f"Over all layers the criterion peaks at layer {result.best_overall} (centred gap "
            f"{best['centered_gap']:+.4f}, MRR {best['mrr']:.3f}), beyond the early layers TLI targets; "
            "pass --max-layer to allow it."
        )
    if result.published_choice is not None and result.published_choice != result.selected_layer:
        pub = rows[result.published_choice]
        findings.append(
            f"The published rule (highest matched mean cosine) would pick layer {result.published_choice}: "
            f"matched {pub['matched_mean']:.5f} but mismatched {pub['mismatched_mean']:.5f} "
            f"(gap {pub['gap']:+.5f}, P@1 {pub['p_at_1']:.3f})."
        )
    if result.artifact_layers:
        findings.append(
            f"Artefact layers {_ranges(result.artifact_layers)} (†): two random words already have a mean cosine "
            f"≥ {ARTIFACT_MISMATCHED} and translations add less than {ARTIFACT_RELATIVE_GAP:.0%} to it — there, a "
            "high cosine holds for any pair of words and says nothing about translation."
        )
    for warning in result.warnings:
        findings.append(f"Warning: {warning}.")
    return findings


def scan_report(result) -> str:
    """The human-readable ``report.md`` of a scan."""
    model = result.model
    pooling = result.pooling
    split = result.split or {}
    lines = [
        "# tli scan",
        "",
        f"- model: `{model['name']}` ({model['architecture']}, {model['num_hidden_layers']} blocks, hidden "
        f"{model['hidden_size']}, weights loaded as {model.get('weights', 'stored')}, computed in {model['dtype']}, "
        f"quantization {model['quantization']})",
        f"- lexicon: `{result.lexicon['path']}` — {result.n_pairs} pairs "
        f"({result.lexicon['source_lang']}→{result.lexicon['target_lang']})"
        + (f"; {split['origin']} split" if split else ""),
        f"- pooling: `{pooling['pooling']}` (excluded: {pooling['excluded_tokens']}; centred: {pooling['center']}; "
        f"template: {pooling['template']!r}); start token: {bos_phrase(pooling)}",
        f"- timing: load {result.timing['load_seconds']:.1f} s, scan {result.timing['scan_seconds']:.1f} s",
        "",
        "## Findings",
        "",
        *[f"- {finding}" for finding in scan_findings(result)],
        "",
        "![layer curves](layers.png)",
        "",
        "## Per layer",
        "",
        "Hidden-state index 0 is the input embeddings, i the output of block i, N the last block's output after "
        "the final norm. `gap` = matched − mismatched mean cosine; `centered_gap` = the same after mean-centring "
        "each language (comparable across layers); retrieval ranks each source word's translation among all "
        "target words (ties counted against it).",
        "",
        layer_table(result.layers, result.selected_layer, result.artifact_layers),
        "",
    ]
    return "\n".join(lines)


def write_scan_run(out: Path, result, config) -> Path:
    """Write a scan's run directory; ``results.json`` last."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out / "layers.csv", result.layers, ALL_LAYER_FIELDS)
    plot_layer_curves(
        result.layers,
        out / "layers.png",
        selected=result.selected_layer,
        criterion=result.criterion,
        title=f"{Path(result.model['name']).name} — {result.pooling['pooling']} pooling, {result.n_pairs} pairs",
        artifact_layers=result.artifact_layers,
        chance_p_at_1=result.chance_p_at_1,
    )
    atomic_write_text(out / "report.md", scan_report(result))
    record = {**result.to_dict(), **provenance("scan", asdict(config), config.seed)}
    atomic_write_json(out / "results.json", record)
    mark_complete(out, "scan")
    return out
