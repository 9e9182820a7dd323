"""The ablation table (one per model) and the verdict list, as Markdown."""

from __future__ import annotations

from typing import Any

import numpy as np

from tli.ablate.downstream import DOWNSTREAM
from tli.ablate.verdicts import BLI_SYSTEM, control_rr


def _mean_change(units: dict[int, dict], role: str, group: str, field: str) -> float:
    """Mean over seeds of the mean per-pair change of ``field`` (``sim``, ``gap``, ``centered_gap``)."""
    values = []
    for u in units.values():
        rows = [r for r in u["per_pair"] if r["layer_role"] == role and r["group"] == group]
        values.append(np.mean([r[f"{field}_post"] - r[f"{field}_pre"] for r in rows]))
    return float(np.mean(values))


def _mismatched_change(units: dict[int, dict], role: str, group: str) -> float:
    """Mean change of the mismatched similarity: ``Δsim − Δgap`` (the gap is sim − mean mismatched sim)."""
    return _mean_change(units, role, group, "sim") - _mean_change(units, role, group, "gap")


def _bli(units: dict[int, dict], role: str, system: str) -> tuple[float, float]:
    """(P@1, MRR) of ``system`` on the control queries, mean over seeds."""
    per_seed = control_rr(units, role, system)
    p1 = np.mean([np.mean([v == 1.0 for v in s.values()]) for s in per_seed])
    mrr = np.mean([np.mean(list(s.values())) for s in per_seed])
    return float(p1), float(mrr)


def _downstream(units: dict[int, dict], task: str) -> float | None:
    metric = DOWNSTREAM[task]["metric"]
    scored = [u for u in units.values() if "downstream" in u]
    if not scored:
        return None
    return float(np.mean([np.mean([r[metric] for r in u["downstream"][task]]) for u in scored]))


def summary_rows(units_by_variant: dict[str, dict[int, dict]]) -> list[dict[str, Any]]:
    """One row per variant and layer role: the table's figures (means over seeds)."""
    rows = []
    for variant, units in units_by_variant.items():
        for role in ("target", "final"):
            row: dict[str, Any] = {"variant": variant, "layer_role": role}
            row["layer"] = next(iter(units.values()))[f"{role}_layer"]
            for group in ("trained", "control"):
                row[f"{group}_sim_change"] = _mean_change(units, role, group, "sim")
                row[f"{group}_mismatched_change"] = _mismatched_change(units, role, group)
                row[f"{group}_centered_gap_change"] = _mean_change(units, role, group, "centered_gap")
            for system in ("base", "base_csls", "procrustes", "procrustes_csls", "adapted", "adapted_csls"):
                row[f"bli_{system}_p_at_1"], row[f"bli_{system}_mrr"] = _bli(units, role, system)
            for task in DOWNSTREAM:
                row[task] = _downstream(units, task)
            rows.append(row)
    return rows


def _f(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def markdown_table(rows: list[dict[str, Any]], base_downstream: dict[str, float]) -> str:
    """The table: lexical controls, BLI of unseen control words (CSLS; cosine MRR in brackets) and downstream."""
    head = (
        "| variant | layer | trained Δsim | trained Δmismatched | trained Δcentred gap | control Δsim | "
        "control Δmismatched | control Δcentred gap | BLI P@1 CSLS (base / Procrustes) | "
        "BLI MRR CSLS (base / Procrustes) | BLI MRR cosine | Mr. TyDi MRR@100 | XQuAD MRR@100 | XNLI acc |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    )
    lines = []
    first = rows[0] if rows else None
    if first is not None:
        for role in ("target", "final"):
            r = next(x for x in rows if x["layer_role"] == role)
            lines.append(
                f"| base model | {role} ({r['layer']}) | | | | | | | {_f(r['bli_base_csls_p_at_1'])} (Procrustes "
                f"{_f(r['bli_procrustes_csls_p_at_1'])}) | {_f(r['bli_base_csls_mrr'])} (Procrustes "
                f"{_f(r['bli_procrustes_csls_mrr'])}) | {_f(r['bli_base_mrr'])} | "
                + " | ".join(_f(base_downstream.get(t)) for t in DOWNSTREAM)
                + " |"
            )
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['layer_role']} ({r['layer']}) | {_f(r['trained_sim_change'], True)} | "
            f"{_f(r['trained_mismatched_change'], True)} | {_f(r['trained_centered_gap_change'], True)} | "
            f"{_f(r['control_sim_change'], True)} | {_f(r['control_mismatched_change'], True)} | "
            f"{_f(r['control_centered_gap_change'], True)} | {_f(r[f'bli_{BLI_SYSTEM}_p_at_1'])} | "
            f"{_f(r[f'bli_{BLI_SYSTEM}_mrr'])} | {_f(r['bli_adapted_mrr'])} | "
            + " | ".join(_f(r[t]) for t in DOWNSTREAM)
            + " |"
        )
    return head + "\n".join(lines) + "\n"


def markdown_verdicts(found: list[dict[str, Any]]) -> str:
    """One line per question: variant, question, difference [CI], test, adjusted p, verdict, seeds agreeing."""
    head = (
        "| variant | question | A | B | Δ [95 % CI] | n | test | p (floor) | p adj. (Holm) | verdict | seeds Δ>0 |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    )
    lines = []
    for q in found:
        seeds = "" if q["seeds_agree"] is None else f"{q['seeds_agree']}/{len(q['seed_differences'])}"
        lines.append(
            f"| {q['variant']} | {q['question']} | {q['a']:.3f} | {q['b']:.3f} | {q['difference']:+.3f} "
            f"[{q['ci95'][0]:+.3f}, {q['ci95'][1]:+.3f}] | {q['n']} | {q['test']} | {q['p']:.2g} "
            f"({q['p_floor']:.2g}) | {q['p_adjusted']:.2g} | **{q['verdict']}** | {seeds} |"
        )
    return head + "\n".join(lines) + "\n"
