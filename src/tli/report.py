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
from tli.scan import ARTIFACT_COSINE, ARTIFACT_GAP

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
            f"exceeds {ARTIFACT_COSINE} while the gap to mismatched pairs is below {ARTIFACT_GAP} — there, "
            "a high cosine holds for any pair of words and says nothing about translation."
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


def scan_report(result) -> str:
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
    atomic_write_text(out / "report.md", scan_report(result))
    record = {**result.to_dict(), **provenance("scan", asdict(config), config.seed)}
    atomic_write_json(out / "results.json", record)
    return out


def read_metrics(path: Path) -> list[dict]:
    """Records of a ``metrics.jsonl`` log."""
    import json

    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_train_run(out: Path, record: dict[str, Any]) -> Path:
    """Loss curve and ``results.json`` (last) of a training run."""
    from tli.plots import plot_loss_curve

    steps = [r for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    if steps:
        plot_loss_curve([r["step"] for r in steps], [r["loss"] for r in steps], out / "loss.png")
    atomic_write_json(out / "results.json", record)
    return out


EVAL_FIELDS = [
    "group",
    "layer",
    "layer_role",
    "n",
    "mean_pre",
    "mean_post",
    "change",
    "change_pct",
    "t",
    "p_ttest",
    "p_wilcoxon",
    "ci95_low",
    "ci95_high",
    "cohens_d",
    "mismatched_pre",
    "mismatched_post",
    "gap_pre",
    "gap_post",
    "gap_change",
    "gap_ci95_low",
    "gap_ci95_high",
    "p_gap",
    "p_at_1_pre",
    "p_at_1_post",
    "mrr_pre",
    "mrr_post",
    "mrr_ci95_low",
    "mrr_ci95_high",
    "p_mrr",
    "n_queries",
]
PAIR_FIELDS = [
    "source",
    "target",
    "group",
    "layer",
    "layer_role",
    "sim_pre",
    "sim_post",
    "gap_pre",
    "gap_post",
]


def evaluation_table(evaluation: list[dict]) -> str:
    """Markdown table: one row per (group, layer)."""
    from tli.stats import format_p

    lines = [
        "| group | layer | n | mean before → after | change (95 % CI) | % | p (t) | p (Wilcoxon) | d | "
        "mismatched before → after | gap change (95 % CI) | P@1 before → after | MRR before → after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in evaluation:
        lines.append(
            f"| {e['group']} | {e['layer_role']} ({e['layer']}) | {e['n']} | {e['mean_pre']:.4f} → "
            f"{e['mean_post']:.4f} | {e['change']:+.4f} [{e['ci95_low']:+.4f}, {e['ci95_high']:+.4f}] | "
            f"{e['change_pct']:+.2f} | {format_p(e['p_ttest'])} | {format_p(e['p_wilcoxon'])} | "
            f"{e['cohens_d']:.2f} | {e['mismatched_pre']:.4f} → {e['mismatched_post']:.4f} | "
            f"{e['gap_change']:+.4f} [{e['gap_ci95_low']:+.4f}, {e['gap_ci95_high']:+.4f}] | "
            f"{e['p_at_1_pre']:.3f} → {e['p_at_1_post']:.3f} | {e['mrr_pre']:.3f} → {e['mrr_post']:.3f} |"
        )
    return "\n".join(lines)


def claims_table(claims: list[dict]) -> str:
    """Markdown table of claims with effect, CI, p-value and verdict."""
    from tli.stats import format_p

    lines = ["| claim | effect (95 % CI) | p | d | verdict |", "|---|---|---|---|---|"]
    for c in claims:
        lines.append(
            f"| {c['claim']} | {c['effect']:+.4f} [{c['ci95_low']:+.4f}, {c['ci95_high']:+.4f}] | "
            f"{format_p(c['p'])} | {c['cohens_d']:.2f} | **{c['verdict']}** |"
        )
    return "\n".join(lines)


def uniform_shift_notes(evaluation: list[dict], claims: list[dict]) -> list[str]:
    """Where similarity rose but the gap to mismatched pairs did not: a shift of every pair alike."""
    verdicts = {(c["group"], c["layer_role"], c["metric"]): c["verdict"] for c in claims}
    notes = []
    for e in evaluation:
        key = (e["group"], e["layer_role"])
        if verdicts.get((*key, "similarity")) == "supported" and verdicts.get((*key, "gap")) != "supported":
            notes.append(
                f"{e['group']} pairs, {e['layer_role']} layer {e['layer']}: similarity rose by "
                f"{e['change']:+.4f} but mismatched pairs rose by "
                f"{e['mismatched_post'] - e['mismatched_pre']:+.4f} — the gain lifts every pair alike and is "
                "not evidence of better alignment."
            )
    return notes


def evaluation_report(results: dict[str, Any], heading: str = "# tli evaluate") -> str:
    """``report.md`` of an evaluation."""
    notes = uniform_shift_notes(results["evaluation"], results["claims"])
    lines = [
        heading,
        "",
        f"- model: `{results['model']['name']}` with adapter `{results['adapter']['path']}` (unmerged)",
        f"- target layer {results['target_layer']}, final layer {results['final_layer']}; pooling "
        f"`{results['pooling']['pooling']}` (excluded: {results['pooling']['excluded_tokens']})",
        "- verdicts at alpha 0.05: *supported* = p < 0.05 and the 95 % bootstrap CI excludes 0 in the "
        "claimed direction; *contradicted* = the same in the other direction; otherwise *inconclusive*.",
        "",
        "## Claims",
        "",
        claims_table(results["claims"]),
        "",
    ]
    for skipped in results.get("skipped_groups", []):
        lines += [
            f"**Not evaluated:** the {skipped['group']} group has {skipped['n']} pair(s); paired statistics "
            "need at least 2 (use a larger lexicon or another split).",
            "",
        ]
    if notes:
        lines += ["**Uniform shifts:**", "", *[f"- {n}" for n in notes], ""]
    lines += [
        "## Before / after",
        "",
        "Similarity = cosine of a translation pair; gap = similarity minus the source word's mean cosine "
        "to non-translations; P@1 / MRR = retrieval of the translation among all lexicon targets.",
        "",
        evaluation_table(results["evaluation"]),
        "",
        "![before/after](before_after.png)",
        "",
        "![layer curves](layers_before_after.png)",
        "",
        "![projection](projection_pca.png)",
        "",
    ]
    return "\n".join(lines)


def write_evaluate_plots(out: Path, results: dict[str, Any]) -> None:
    """Scatter, layer curves before/after and 2-D projections (PCA and t-SNE) at the final layer."""
    from tli.plots import plot_before_after, plot_projection

    plot_before_after(results["per_pair"], out / "before_after.png")
    plot_layer_curves(
        results["layers_pre"],
        out / "layers_before_after.png",
        selected=results["target_layer"],
        criterion="target",
        compare=results["layers_post"],
        labels=("before", "after"),
    )
    emb = results.get("_embeddings")
    if emb is None:
        return
    index, layer = emb["index"], results["final_layer"]
    sample = list(range(min(200, len(index.src))))  # a readable number of pairs
    rows_src, rows_tgt = index.src[sample], index.tgt[sample]
    before = (emb["base"].src[layer][rows_src].numpy(), emb["base"].tgt[layer][rows_tgt].numpy())
    after = (emb["adapted"].src[layer][rows_src].numpy(), emb["adapted"].tgt[layer][rows_tgt].numpy())
    plot_projection(before, after, out / "projection_pca.png", method="pca", title=f"final layer {layer}")
    plot_projection(before, after, out / "projection_tsne.png", method="tsne", title=f"final layer {layer}")


def write_evaluate_run(out: Path, results: dict[str, Any], heading: str = "# tli evaluate") -> Path:
    """``pairs.csv``, ``layers_before_after.csv``, plots, ``report.md`` and ``results.json`` (last)."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out / "pairs.csv", results["per_pair"], PAIR_FIELDS)
    layer_rows = [
        {"state": state, **row}
        for state, rows in (("before", results["layers_pre"]), ("after", results["layers_post"]))
        for row in rows
    ]
    atomic_write_csv(out / "layers_before_after.csv", layer_rows, ["state", *LAYER_FIELDS])
    write_evaluate_plots(out, results)
    atomic_write_text(out / "report.md", evaluation_report(results, heading))
    atomic_write_json(out / "results.json", {k: v for k, v in results.items() if not k.startswith("_")})
    return out
