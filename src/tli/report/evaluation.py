"""An evaluation's run directory: ``pairs.csv``, ``layers_before_after.csv``, the plots, ``report.md`` (claims,
what the numbers say, before / after, BLI) and ``results.json`` (last)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tli.claims import outcome
from tli.io import atomic_write_csv, atomic_write_json, atomic_write_text
from tli.metrics import artifact_layers
from tli.plots import plot_before_after, plot_layer_curves, plot_projection
from tli.report.scan import ALL_LAYER_FIELDS, bos_phrase
from tli.report.tables import bli_table, claims_table, evaluation_table
from tli.runs import mark_complete

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
