"""Run-directory writers: ``results.json``, CSV tables, ``report.md`` and plots, all atomic.

``results.json`` is always written last, so a directory holding it is a complete run. Report sentences are
generated from the verdicts (:func:`tli.claims.outcome`), so the wording follows the numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tli.claims import outcome
from tli.io import atomic_write_csv, atomic_write_json, atomic_write_text, read_json_lines
from tli.metrics import ARTIFACT_MISMATCHED, ARTIFACT_RELATIVE_GAP, artifact_layers
from tli.plots import plot_before_after, plot_layer_curves, plot_loss_curve, plot_projection
from tli.runs import mark_complete, provenance
from tli.stats import format_p

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


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _pct(value: float) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.2f}"


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


# ---------------------------------------------------------------------------------------------------
# Scan


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


# ---------------------------------------------------------------------------------------------------
# Training


def read_metrics(path: Path) -> list[dict]:
    """Records of a ``metrics.jsonl`` log ([] before the first step was logged)."""
    return read_json_lines(path) if path.is_file() else []


def write_train_run(out: Path, record: dict[str, Any], config=None) -> Path:
    """Loss curve (with validation points and the loss's tell-tale level) and ``results.json`` (last)."""
    records = read_metrics(out / "metrics.jsonl")
    steps = [r for r in records if "loss" in r]
    validation = [(r["step"], r["validation_loss"]) for r in records if "validation_loss" in r]
    reference = None
    if config is not None:
        reference = (
            (config.margin, "triplet margin: a loss stuck here = collapse")
            if config.loss == "triplet"
            else (math.log(config.batch_size), f"InfoNCE chance: ln({config.batch_size})")
        )
    if steps:
        plot_loss_curve(
            [r["step"] for r in steps],
            [r["loss"] for r in steps],
            out / "loss.png",
            validation=validation or None,
            reference=reference,
        )
    atomic_write_json(out / "results.json", record)
    mark_complete(out, "training")
    return out


# ---------------------------------------------------------------------------------------------------
# Evaluation

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
    "centered_gap_pre",
    "centered_gap_post",
]


def _sd(entry: dict, key: str, digits: int = 4) -> str:
    sd = entry.get(f"{key}_sd")
    return f" ± {sd:.{digits}f}" if sd else ""


def evaluation_table(evaluation: list[dict]) -> str:
    """Markdown table: one row per (group, layer); ``± sd`` over seeds where there are several. The header
    names the interval: one seed's cluster bootstrap, or (over seeds) the mean of the seeds' bootstrap bounds,
    which spans word sampling only — the across-seed CI is the claims table's."""
    several = any("change_sd" in e for e in evaluation)
    interval = (
        "mean of the seeds' 95 % cluster-bootstrap CIs (word sampling only)"
        if several
        else "95 % cluster-bootstrap CI over source words"
    )
    lines = [
        f"| group | layer | n (words) | similarity before → after | change [{interval}] | % | centred gap change "
        f"[{interval}] | raw gap change | P@1 before → after | MRR before → after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in evaluation:
        lines.append(
            f"| {e['group']} | {e['layer_role']} ({e['layer']}) | {e['n']} ({e.get('n_clusters', '—')}) "
            f"| {e['mean_pre']:.4f} → {e['mean_post']:.4f}{_sd(e, 'mean_post')} "
            f"| {e['change']:+.4f} [{e['ci95_low']:+.4f}, {e['ci95_high']:+.4f}] | {_pct(e['change_pct'])} "
            f"| {e['centered_gap_change']:+.4f}{_sd(e, 'centered_gap_change')} "
            f"[{e['centered_gap_ci95_low']:+.4f}, {e['centered_gap_ci95_high']:+.4f}] "
            f"| {e['gap_change']:+.4f} | {e['p_at_1_pre']:.3f} → {e['p_at_1_post']:.3f}{_sd(e, 'p_at_1_post', 3)} "
            f"| {e['mrr_pre']:.3f} → {e['mrr_post']:.3f}{_sd(e, 'mrr_post', 3)} |"
        )
    return "\n".join(lines)


def claim_n(claim: dict) -> str:
    """What a verdict rests on: ``"146 pairs (102 words)"`` — pairs and their source-word clusters — or
    ``"102 words"`` for retrieval claims, whose unit is the query word."""
    if claim.get("metric") in ("mrr", "p_at_1") and claim.get("kind") == "change":
        return f"{claim['n']:,} words"
    clusters = claim.get("n_clusters")
    return f"{claim['n']:,} pairs" + (f" ({clusters:,} words)" if clusters else "")


def claims_table(claims: list[dict]) -> str:
    """Markdown table of claims: effect and CI, test, the n it rests on, raw and adjusted p, verdict (and seeds,
    when several)."""
    seeds = any(c.get("n_seeds", 1) > 1 for c in claims)
    interval = (
        "± sd over seeds [across-seed 95 % CI: random effects, t on seeds − 1 df]"
        if seeds
        else "[95 % bootstrap CI over words (source-word clusters), this seed]"
    )
    head = f"| claim | effect {interval} | test | n | p | p adjusted | verdict |" + (
        " each seed's verdict |" if seeds else ""
    )
    lines = [head, "|---|---|---|---|---|---|---|" + ("---|" if seeds else "")]
    for c in claims:
        effect = f"{c['effect']:+.4f}"
        if seeds:
            effect += f" ± {c.get('effect_sd', 0):.4f}"
        if c["kind"] == "equivalence":
            effect += (
                f"; 90 % CI [{c['ci90_low']:+.4f}, {c['ci90_high']:+.4f}] vs ±{c['margin']:.4f}"
                if c.get("ci90_low") is not None
                else ""
            )
        flag = " ⚠" if c.get("tests_disagree") else ""
        row = (
            f"| {c['claim']} | {effect} [{c['ci95_low']:+.4f}, {c['ci95_high']:+.4f}] | {c['test']}{flag} "
            f"| {claim_n(c)} | {format_p(c['p'])} | {format_p(c['p_adjusted'])} | **{c['verdict']}** |"
        )
        if seeds:
            row += f" {', '.join(c.get('verdicts', []))} |"
        lines.append(row)
    return "\n".join(lines)


BLI_SYSTEMS = (
    ("base", "base model, cosine"),
    ("base_csls", "base model, CSLS"),
    ("procrustes", "Procrustes map (centred) fitted on the trained pairs (base model)"),
    ("adapted", "TLI-adapted, cosine"),
    ("adapted_csls", "TLI-adapted, CSLS"),
)


def bli_table(rows: list[dict]) -> str:
    """Retrieval of unseen control words per layer and system: P@k with Wilson 95 % CIs, MRR with a bootstrap 95 %
    CI, chance levels; over several seeds, mean ± sd over seeds and the envelope of the seeds' intervals."""
    seeds = max((row.get("n_seeds", 1) for row in rows), default=1)
    if seeds > 1:
        head = (
            f"| layer | system | P@1, mean ± sd over {seeds} seeds [lowest, highest bound of the seeds' 95 % Wilson "
            f"CIs] | P@5 | P@10 | MRR, mean ± sd [seeds' 95 % bootstrap CIs, envelope] | chance P@1 |"
        )
    else:
        head = "| layer | system | P@1 [95 % Wilson CI] | P@5 | P@10 | MRR [95 % bootstrap CI] | chance P@1 |"
    lines = [head, "|---|---|---|---|---|---|---|"]

    def value(r: dict, key: str) -> str:  # over seeds every figure shows its sd, 0 included
        return f"{r[key]:.3f}" + (f" ± {r.get(f'{key}_sd', 0.0):.3f}" if seeds > 1 else "")

    for row in rows:
        for key, label in BLI_SYSTEMS:
            r = row["systems"][key]
            lines.append(
                f"| {row['layer_role']} ({row['layer']}) | {label} | {value(r, 'p_at_1')} "
                f"[{r['p_at_1_ci_low']:.3f}, {r['p_at_1_ci_high']:.3f}] | {value(r, 'p_at_5')} "
                f"| {value(r, 'p_at_10')} | {value(r, 'mrr')} [{r['mrr_ci_low']:.3f}, {r['mrr_ci_high']:.3f}] "
                f"| {r['p_at_1_chance']:.4f} |"
            )
    return "\n".join(lines)


def what_the_numbers_say(claims: list[dict]) -> list[str]:
    """One sentence per claim, worded from its verdict and direction."""
    lines = []
    for c in claims:
        where = f"{c['layer_role']} layer {c['layer']}"
        metric = {"similarity": "similarity", "centered_gap": "centred gap", "mrr": "MRR", "p_at_1": "P@1"}[
            c["metric"]
        ]
        if c["kind"] == "change":
            lines.append(
                f"{c['group'].capitalize()} pairs, {where}: {metric} {outcome(c)} ({c['effect']:+.4f})."
            )
        elif c["kind"] == "difference":
            lines.append(f"{where.capitalize()}, {metric}: trained pairs {outcome(c)} ({c['effect']:+.4f}).")
        else:
            lines.append(f"{where.capitalize()}, {metric}: control pairs {outcome(c)}.")
    return lines


def uniform_shift_notes(evaluation: list[dict], claims: list[dict]) -> list[str]:
    """Where similarity rose but the centred gap did not: every pair moved alike, not translations apart."""
    verdicts = {
        (c["group"], c["layer_role"], c["metric"]): c["verdict"] for c in claims if c["kind"] == "change"
    }
    notes = []
    for e in evaluation:
        key = (e["group"], e["layer_role"])
        if (
            verdicts.get((*key, "similarity")) == "supported"
            and verdicts.get((*key, "centered_gap")) != "supported"
        ):
            notes.append(
                f"{e['group']} pairs, {e['layer_role']} layer {e['layer']}: similarity rose by {e['change']:+.4f} "
                f"and mismatched pairs by {e['mismatched_post'] - e['mismatched_pre']:+.4f}; the centred gap did "
                f"not rise ({e['centered_gap_change']:+.4f}) — the gain lifts every pair alike and is not evidence "
                "of better alignment."
            )
    return notes


def evaluation_report(results: dict[str, Any], heading: str = "# tli evaluate", link_prefix: str = "") -> str:
    """``report.md`` of an evaluation (one seed, or the summary over seeds)."""
    claims, evaluation = results["claims"], results["evaluation"]
    statistics = results.get("statistics", {})
    notes = uniform_shift_notes(evaluation, claims)
    disagree = [c["claim"] for c in claims if c.get("tests_disagree")]
    seeds = results.get("seeds")
    lines = [heading, "", *_evaluation_setup(results, claims, statistics)]
    lines += ["", "## Claims", "", claims_table(claims), ""]
    if disagree:
        lines += [
            f"⚠ The pair-level t-test and the Wilcoxon signed-rank test disagree for {len(disagree)} claim(s); the "
            "verdict uses the test named in the table.",
            "",
        ]
    lines += ["## What the numbers say", "", *[f"- {line}" for line in what_the_numbers_say(claims)], ""]
    for warning in dict.fromkeys(results.get("warnings", [])):
        lines += [f"**Warning:** {warning}.", ""]
    for skipped in results.get("skipped_groups", []):
        lines += [
            f"**Not evaluated:** the {skipped['group']} group has {skipped['n']} pair(s); paired statistics need at "
            "least 2 (use a larger lexicon or another split).",
            "",
        ]
    if notes:
        lines += ["**Uniform shifts:**", "", *[f"- {n}" for n in notes], ""]
    lines += [
        "## Before / after",
        "",
        "Similarity = cosine of a translation pair; gap = similarity minus the source word's mean cosine to "
        "non-translations (centred: after mean-centring each language); P@1 / MRR = retrieval of the translation "
        "among all lexicon targets. n (words) = pairs (source-word clusters).",
        "",
        evaluation_table(evaluation),
        "",
    ]
    lines += _bli_section(results.get("bli"))
    if not seeds or len(seeds) == 1:
        for name, alt in EVALUATE_PLOTS:
            lines += [f"![{alt}]({link_prefix}{name})", ""]
    return "\n".join(lines)


def _evaluation_setup(results: dict[str, Any], claims: list, statistics: dict[str, Any]) -> list[str]:
    """The set-up bullets of :func:`evaluation_report`: model, layers, pooling, how the claims are judged and,
    over several seeds, how the seeds are combined."""
    roles = results.get("layer_roles", [])
    seeds = results.get("seeds")
    lines = [
        f"- model: `{results['model']['name']}`"
        + (f" with adapter `{results['adapter']['path']}` (unmerged)" if "adapter" in results else ""),
        f"- target layer {results['target_layer']}, final layer {results['final_layer']}"
        + (
            "; the target layer is the final layer, so each claim is made once"
            if roles == ["target = final"]
            else ""
        ),
        f"- pooling `{results['pooling']['pooling']}` (excluded: {results['pooling']['excluded_tokens']}), "
        "start token: "
        f"{bos_phrase(results['pooling'])}; embeddings in float32",
        f"- {statistics.get('n_claims', len(claims))} claims judged together: p-values adjusted by "
        f"{statistics.get('correction', 'holm')}, verdicts at alpha {statistics.get('alpha', 0.05)} on the adjusted "
        "p: *supported* = significant and the 95 % CI excludes 0 in the claimed direction; *contradicted* = the "
        "same in the other direction; *inconclusive* otherwise. Equivalence (TOST): supported when the 90 % CI "
        f"lies inside ±{statistics.get('equivalence_margin', 0.2):.0%} of the trained gain.",
        "- pairs that share a source word are one cluster: similarity and gap p-values come from a t-test on "
        "source-word means, CIs from a cluster bootstrap; MRR: paired randomisation test; P@1: exact McNemar.",
    ]
    if seeds and len(seeds) > 1:
        lines.append(
            f"- seeds {', '.join(map(str, seeds))}: each claim's seeds are combined by a random-effects "
            "meta-analysis (DerSimonian–Laird between-seed variance, modified Hartung–Knapp t interval on "
            f"{len(seeds) - 1} df), so the CI and p include training variance; the verdict is that test's, "
            "corrected over the claims; each seed's own verdict is in the last column, and a claim whose seeds "
            "disagree says so."
        )
    return lines


def _bli_section(bli: list[dict[str, Any]] | None) -> list[str]:
    """The BLI section of :func:`evaluation_report` (none without BLI results)."""
    if not bli:
        return []
    first = bli[0]
    return [
        "## Retrieval of the unseen control words (BLI)",
        "",
        f"{first['n_queries']} control source words, each ranked against {first['n_candidates']} candidates "
        f"({first['candidates']['source']}); the Procrustes baseline is an orthogonal map fitted on the trained "
        "pairs at the same layer — the classic, cheap method TLI has to beat on unseen words.",
        "",
        bli_table(bli),
        "",
    ]


EVALUATE_PLOTS = (
    ("before_after.png", "per pair, before vs after: similarity and centred gap"),
    ("layers_before_after.png", "layer curves before and after"),
    ("projection_pca.png", "PCA projection at the target and final layers"),
    ("projection_tsne.png", "t-SNE projection at the target and final layers"),
)
"""The plots of every evaluation directory, with what each shows."""


def plot_index(seeds: list[int], stage_dir, plots: list[tuple[str, str, str]]) -> str:
    """A Markdown table linking every plot of every seed: one row per plot, one column per seed.

    Args:
        stage_dir: ``(stage, seed) -> relative directory`` (``evaluate/seed-1``, or ``evaluate`` with one seed).
        plots: ``(stage, file, what it shows)``; stage ``""`` = a plot shared by all seeds (linked once).
    """
    head = "| plot | " + " | ".join(f"seed {s}" for s in seeds) + " |"
    lines = [head, "|---|" + "---|" * len(seeds)]
    for stage, name, what in plots:
        if not stage:
            cells = [f"[{name}]({name})"] + [""] * (len(seeds) - 1)
        else:
            cells = [f"[{name}]({stage_dir(stage, s)}/{name})" for s in seeds]
        lines.append(f"| {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def projection_sample(lexicon, limit: int = 120) -> list[int]:
    """Pair rows for the 2-D maps: every control pair up to ``limit``, then trained pairs up to ``limit``."""
    control = [i for i, p in enumerate(lexicon.pairs) if p.group == "control"][:limit]
    trained = [i for i, p in enumerate(lexicon.pairs) if p.group == "trained"][:limit]
    return trained + control


def write_evaluate_plots(out: Path, results: dict[str, Any], embeddings) -> None:
    """Scatter, layer curves before/after and 2-D projections (PCA and t-SNE) at the target and final layers."""
    plot_before_after(results["per_pair"], out / "before_after.png")
    plot_layer_curves(
        results["layers_pre"],
        out / "layers_before_after.png",
        selected=results["target_layer"],
        criterion="target",
        compare=results["layers_post"],
        labels=("before", "after"),
        artifact_layers=artifact_layers(results["layers_pre"]),
    )
    if embeddings is None:
        return
    index, lexicon = embeddings.index, embeddings.lexicon
    sample = projection_sample(lexicon)
    rows_src, rows_tgt = index.src[sample], index.tgt[sample]
    groups = [lexicon.pairs[k].group for k in sample]

    def states(layer: int) -> tuple[tuple, tuple]:
        base, adapted = embeddings.base, embeddings.adapted
        return (
            (base.src[layer][rows_src].numpy(), base.tgt[layer][rows_tgt].numpy()),
            (adapted.src[layer][rows_src].numpy(), adapted.tgt[layer][rows_tgt].numpy()),
        )

    # The target layer first (where the loss acts), then the final layer (what the output sees).
    roles = dict.fromkeys((e["layer_role"], e["layer"]) for e in results["evaluation"])
    rows = [
        (f"{role} layer {layer}", *states(layer))
        for role, layer in roles or [("target", results["target_layer"])]
    ]
    (title, before, after), *more = rows
    languages = (lexicon.source_lang, lexicon.target_lang)
    for method in ("pca", "tsne"):
        plot_projection(
            before,
            after,
            out / f"projection_{method}.png",
            method=method,
            title=title,
            groups=groups,
            languages=languages,
            more=more,
        )


def write_evaluate_run(
    out: Path, results: dict[str, Any], embeddings=None, heading: str = "# tli evaluate"
) -> Path:
    """``pairs.csv``, ``layers_before_after.csv``, plots, ``report.md`` and ``results.json`` (last)."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out / "pairs.csv", results["per_pair"], PAIR_FIELDS)
    layer_rows = [
        {"state": state, **row}
        for state, rows in (("before", results["layers_pre"]), ("after", results["layers_post"]))
        for row in rows
    ]
    atomic_write_csv(out / "layers_before_after.csv", layer_rows, ["state", *ALL_LAYER_FIELDS])
    write_evaluate_plots(out, results, embeddings)
    atomic_write_text(out / "report.md", evaluation_report(results, heading))
    atomic_write_json(out / "results.json", results)
    mark_complete(out, "evaluation")
    return out


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


# ---------------------------------------------------------------------------------------------------
# tli run


def run_report(results: dict[str, Any], scan) -> str:
    """Top-level ``report.md``: scan findings, training summary, then the evaluation's claims."""
    seeds = results["seeds"]
    several = len(seeds) > 1
    train_dir = f"train/seed-{seeds[0]}" if several else "train"
    body = evaluation_report(
        {**results, "warnings": []},  # listed once, under Training
        heading="## 3. Evaluation",
        link_prefix=f"evaluate/seed-{seeds[0]}/" if several else "evaluate/",
    ).replace("\n## ", "\n### ")
    given = results.get("target_layer_given")
    layer_line = (
        f"- target layer {results['target_layer']} (given by --target-layer; the scan's `{results['criterion']}` "
        f"criterion would pick {results['selected_layer']})"
        if given
        else f"- target layer {results['target_layer']} (selected by `{results['criterion']}`)"
    )
    train_lines = []
    for run in results["train"]:
        losses = ", ".join(f"{loss:.4f}" for loss in run["epoch_losses"])
        validation = ""
        if run.get("validation"):
            validation = "; validation MRR per epoch: " + ", ".join(
                f"{v['mrr']:.3f}" for v in run["validation"]
            )
        train_lines.append(
            f"- seed {run['seed']}: {run['timing']['steps']} steps in {run['timing']['train_seconds']:.0f} s on "
            f"{run['n_train_pairs']} pairs ({run['n_validation_pairs']} held out for validation); mean loss per "
            f"epoch: {losses}{validation}"
        )
    warnings = [f"- Warning: {w}." for w in dict.fromkeys(results.get("warnings", []))]
    split = results.get("split") or {}
    audit = split.get("audit") or {}
    lines = [
        "# tli run",
        "",
        f"Model `{results['model']['name']}`, lexicon `{results['lexicon']['path']}` "
        f"({results['lexicon']['n_trained']} trained / {results['lexicon']['n_control']} control pairs, "
        f"{split.get('origin', 'stored')} split; control pairs sharing a source, target or word with a trained "
        f"pair: {audit.get('n_leaking', 0)}). Seeds: {', '.join(map(str, seeds))}.",
        "",
        "## 1. Scan (trained pairs only)",
        "",
        *[f"- {finding}" for finding in scan_findings(scan)],
        "",
        "![layer curves](scan/layers.png)",
        "",
        "## 2. Training",
        "",
        layer_line,
        *train_lines,
        *warnings,
        "",
        f"![loss]({train_dir}/loss.png)",
        "",
        body,
    ]
    if several:
        lines += ["", "### Per seed", "", seeds_table(results["per_seed"]), ""]

    def stage_dir(stage: str, seed: int) -> str:
        return f"{stage}/seed-{seed}" if several else stage

    plots = [
        ("", "scan/layers.png", "scan: layer curves of the trained pairs (cosines, gaps, retrieval)"),
        ("train", "loss.png", "training loss with validation points"),
        *[("evaluate", name, what) for name, what in EVALUATE_PLOTS],
    ]
    lines += ["", "## 4. Plots", "", plot_index(seeds, stage_dir, plots), ""]
    return "\n".join(lines)
