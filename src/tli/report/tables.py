"""The Markdown tables of an evaluation report: before / after per group and layer, the claims with their
verdicts, and the retrieval (BLI) of unseen control words."""

from __future__ import annotations

from tli.report.formatting import _pct
from tli.stats import format_p


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
