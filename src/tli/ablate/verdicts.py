"""The ablation's questions, tested on per-item paired rows with the project's tests, Holm-corrected per model.

**Design.** Every question compares two model states on the *same items* (control queries, control pairs,
downstream queries / examples). Seeds are averaged *per item* first (each item's score is the mean over the
seeds' adapters), then the items are paired: ``tli.compare.significance.paired_difference`` (exact sign-flip for
≤ 20 non-zero differences, paired t-test for ≥ 30, Monte Carlo randomisation between; 0/1 scores: exact McNemar)
and ``paired_noninferiority`` (one-sided t against ``−margin``). A test *across seeds* (3 adapters) could not
decide anything: the exact sign-flip test over 3 seed means has the floor ``2^{1−3} = 0.25``, above any α; over
~130 control queries the paired t-test has no floor. The seeds' spread is kept beside each verdict: the
direction of the difference in each seed (``seeds``: how many of them agree).

All p-values of one model (every variant × question) form one family, adjusted with Holm
(:func:`tli.stats.adjust_pvalues`); a question is **supported** when its adjusted p < α and its difference points
the asked way, **contradicted** when significant the other way, else **inconclusive**. A non-inferiority question
is contradicted when the opposite one-sided test (H0: not worse by more than the margin; ``p' = 1 − p``) rejects
after a Bonferroni factor of the family size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tli.ablate.downstream import DOWNSTREAM
from tli.compare.significance import paired_difference, paired_noninferiority
from tli.objectives import REFERENCE
from tli.stats import adjust_pvalues

BLI_SYSTEM = "adapted_csls"
"""The BLI score the questions test: reciprocal rank of the gold translation with CSLS (hubness-corrected)."""
NONINFERIORITY_MARGIN = {"mrtydi": 0.05, "xquad": 0.05, "xnli": 0.05, "centered_gap": 0.01}
"""Non-inferiority margins: 5 points of MRR@100 / accuracy downstream; 0.01 cosine for the centred gap."""


def _mean_rows(per_seed: list[dict[str, float]]) -> list[dict[str, Any]]:
    """``[{"id", "score"}]``: each item's score averaged over seeds (items present in every seed)."""
    keys = set.intersection(*(set(s) for s in per_seed))
    return [{"id": k, "score": float(np.mean([s[k] for s in per_seed]))} for k in sorted(keys)]


def control_rr(units: dict[int, dict], role: str, system: str) -> list[dict[str, float]]:
    """Per seed: ``{control word: reciprocal rank}`` of ``system`` at the ``role`` layer."""
    return [
        dict(zip(u["control_ranks"][role]["words"], u["control_ranks"][role][system], strict=True))
        for u in units.values()
    ]


def pair_values(units: dict[int, dict], role: str, group: str, field: str) -> list[dict[str, float]]:
    """Per seed: ``{source→target: post − pre}`` of a per-pair ``field`` (``sim``, ``gap``, ``centered_gap``)."""
    return [
        {
            f"{r['source']}→{r['target']}": r[f"{field}_post"] - r[f"{field}_pre"]
            for r in u["per_pair"]
            if r["layer_role"] == role and r["group"] == group
        }
        for u in units.values()
    ]


def downstream_values(units: dict[int, dict], task: str, metric: str) -> list[dict[str, float]]:
    return [{r["id"]: r[metric] for r in u["downstream"][task]} for u in units.values() if "downstream" in u]


def _test(rows_a, rows_b, *, margin: float | None = None, seed: int = 0):
    if margin is not None:
        return paired_noninferiority(rows_a, rows_b, mean_of="score", margin=margin, rng=seed)
    return paired_difference(rows_a, rows_b, mean_of="score", n_resamples=20_000, rng=seed)


def _seed_directions(a: list[dict], b: list[dict] | dict) -> list[float]:
    """Per seed: mean difference of A − B over the shared items (B fixed when it has no seeds)."""
    out = []
    for i, sa in enumerate(a):
        sb = b[i] if isinstance(b, list) else b
        keys = set(sa) & set(sb)
        out.append(float(np.mean([sa[k] - sb[k] for k in keys])))
    return out


def questions(
    variant: str, units: dict[int, dict], reference: dict[int, dict] | None, base_downstream: dict
) -> list[dict[str, Any]]:
    """Every question about ``variant`` (unadjusted): its rows, test result and per-seed directions."""
    found = []

    def ask(question: str, a: list[dict], b: list[dict] | dict, *, margin=None, expect="increase") -> None:
        rows_a = _mean_rows(a)
        rows_b = _mean_rows(b) if isinstance(b, list) else [{"id": k, "score": v} for k, v in b.items()]
        result = _test(rows_a, rows_b, margin=margin)
        found.append(
            {
                "variant": variant,
                "question": question,
                "expect": "non-inferior" if margin is not None else expect,
                "margin": margin,
                "n": result.n,
                "a": result.score_a,
                "b": result.score_b,
                "difference": result.difference,
                "ci95": [result.ci95_low, result.ci95_high],
                "test": result.test,
                "p": result.p_value,
                "p_floor": result.p_floor,
                "seed_differences": _seed_directions(a, b),
            }
        )

    zeros = lambda d: {k: 0.0 for k in d}  # noqa: E731 (a change of nothing: the base state)
    for role in ("target", "final"):
        adapted = control_rr(units, role, BLI_SYSTEM)
        base = control_rr(units, role, "base_csls")[0]
        ask(f"raises unseen-word BLI MRR (CSLS) over the base at the {role} layer", adapted, base)
        if role == "target":
            procrustes = control_rr(units, role, "procrustes_csls")[0]
            ask(
                "beats the Procrustes baseline's unseen-word BLI MRR (CSLS) at the target layer",
                adapted,
                procrustes,
            )
        if reference is not None and variant != REFERENCE:
            ask(
                f"raises unseen-word BLI MRR (CSLS) more than published TLI at the {role} layer",
                adapted,
                control_rr(reference, role, BLI_SYSTEM),
            )
    gap = pair_values(units, "target", "control", "gap")
    ask(
        "raises the control pairs' gap (matched rises more than mismatched) at the target layer",
        gap,
        zeros(gap[0]),
    )
    centred = pair_values(units, "target", "control", "centered_gap")
    ask(
        "does not lower the control pairs' centred gap at the target layer",
        centred,
        zeros(centred[0]),
        margin=NONINFERIORITY_MARGIN["centered_gap"],
    )
    for task, spec in DOWNSTREAM.items():
        if task not in base_downstream or not any("downstream" in u for u in units.values()):
            continue
        base_rows = {r["id"]: r[spec["metric"]] for r in base_downstream[task]}
        ask(
            f"does not lower {task} {spec['metric']} (margin {NONINFERIORITY_MARGIN[task]})",
            downstream_values(units, task, spec["metric"]),
            base_rows,
            margin=NONINFERIORITY_MARGIN[task],
        )
    return found


def judge_family(found: list[dict[str, Any]], *, alpha: float = 0.05, correction: str = "holm") -> list[dict]:
    """Adjust the family's p-values and give each question its verdict."""
    if not found:
        return found
    adjusted = adjust_pvalues(np.array([q["p"] for q in found], dtype=float), correction)
    for q, p_adj in zip(found, adjusted, strict=True):
        q["p_adjusted"] = float(p_adj)
        significant = bool(np.isfinite(p_adj) and p_adj < alpha)
        if q["expect"] == "non-inferior":
            # Worse by more than the margin: the opposite one-sided test (p' = 1 − p), Bonferroni over the family.
            worse = min(1.0, len(found) * (1.0 - q["p"])) < alpha
            q["verdict"] = "supported" if significant else "contradicted" if worse else "inconclusive"
        elif significant:
            q["verdict"] = "supported" if q["difference"] > 0 else "contradicted"
        else:
            q["verdict"] = "inconclusive"
        q["seeds_agree"] = sum(d > 0 for d in q["seed_differences"]) if q["expect"] == "increase" else None
    return found


def better_without_collapse(found: list[dict[str, Any]], variant: str) -> bool:
    """The issue's bar: unseen-word BLI rises over the base *and* over published TLI at the target layer, the
    gap rises, the centred gap does not fall, and no downstream score falls beyond its margin."""
    mine = {q["question"]: q["verdict"] for q in found if q["variant"] == variant}
    needed = [
        k
        for k in mine
        if k.startswith("raises unseen-word BLI MRR (CSLS) over the base at the target")
        or k.startswith("raises unseen-word BLI MRR (CSLS) more than published TLI at the target")
        or k.startswith("raises the control pairs' gap")
        or k.startswith("does not lower")
    ]
    return variant != REFERENCE and bool(needed) and all(mine[k] == "supported" for k in needed)
