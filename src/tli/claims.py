"""Claims: a measured effect, its interval, its test, and a verdict corrected over the claims of a run.

Every claim a report makes is a :class:`Claim`. Three kinds:

- ``change``: a paired before/after change within one group ("TLI raises the similarity of control pairs at
  layer 2"): effect = mean change, 95 % bootstrap CI (resampling source words, the clusters), p from the
  test that fits the data (named in ``test``).
- ``difference``: the change of trained pairs minus the change of unseen control pairs (Welch test on
  cluster means, bootstrap CI): does the gain generalise, or is it larger where TLI trained?
- ``equivalence``: "control pairs gain as much as trained pairs" within a stated margin (two one-sided
  Welch tests, TOST; its 90 % CI must lie inside ±margin).

:func:`judge` adjusts the p-values of one run's claims together (Holm by default, Benjamini–Hochberg by
option) and derives each verdict from the adjusted p-value:

- change / difference: *supported* when ``p_adjusted < alpha`` and the 95 % CI excludes 0 in the claimed
  direction, *contradicted* when the same holds in the other direction, otherwise *inconclusive*;
- equivalence: *supported* when ``p_adjusted < alpha`` (TOST), *contradicted* when the 90 % CI lies
  entirely outside ±margin, otherwise *inconclusive*.

With several seeds, :func:`across_seeds` says which claims hold in every seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tli.stats import adjust_pvalues, verdict

KINDS = ("change", "difference", "equivalence")
VERDICTS = ("supported", "contradicted", "inconclusive")


@dataclass
class Claim:
    """One claim with its evidence. Fields become ``results.json`` keys and report columns."""

    claim: str
    """The claim in words, e.g. "TLI raises similarity of control pairs at the target layer (2)"."""
    kind: str
    metric: str
    test: str
    """The test behind ``p`` (e.g. "t-test on source-word means", "Wilcoxon signed-rank", "McNemar exact")."""
    effect: float
    ci95_low: float
    ci95_high: float
    p: float
    n: int
    expect: str = "increase"
    group: str | None = None
    layer: int | None = None
    layer_role: str | None = None
    cohens_d: float | None = None
    n_clusters: int | None = None
    margin: float | None = None
    """Equivalence margin (equivalence claims)."""
    ci90_low: float | None = None
    ci90_high: float | None = None
    tests_disagree: bool = False
    """The pair-level t-test and the Wilcoxon signed-rank test decide differently at alpha."""
    p_adjusted: float = math.nan
    verdict: str = "inconclusive"
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _equivalence_verdict(claim: Claim, alpha: float) -> str:
    if claim.p_adjusted < alpha:
        return "supported"
    low, high, margin = claim.ci90_low, claim.ci90_high, claim.margin
    if None not in (low, high, margin) and (low > margin or high < -margin):
        return "contradicted"
    return "inconclusive"


def judge(claims: list[Claim], *, correction: str = "holm", alpha: float = 0.05) -> list[Claim]:
    """Adjust the p-values of one run's claims together and set each verdict (in place; returns them).

    Args:
        correction: ``holm`` (family-wise error), ``bh`` (false discovery rate) or ``none``.
        alpha: significance level applied to the adjusted p-values.
    """
    raw = np.array([c.p for c in claims], dtype=float)
    adjusted = raw if correction == "none" or not len(claims) else adjust_pvalues(raw, method=correction)
    for claim, p_adj in zip(claims, adjusted, strict=True):
        claim.p_adjusted = float(p_adj)
        if claim.kind == "equivalence":
            claim.verdict = _equivalence_verdict(claim, alpha)
        else:
            claim.verdict = verdict(
                claim.ci95_low, claim.ci95_high, claim.p_adjusted, alpha=alpha, expect=claim.expect
            )
    return claims


def outcome(claim: dict[str, Any] | Claim) -> str:
    """What the numbers say, in words that follow them: "rose", "fell", "no measurable change", ….

    A change whose claimed direction is contradicted is said the other way round ("fell"), never
    "does not improve".
    """
    c = claim.to_dict() if isinstance(claim, Claim) else claim
    if c["kind"] == "equivalence":
        return {
            "supported": "gained as much (equivalent within the margin)",
            "contradicted": "did not gain as much (outside the margin)",
        }.get(c["verdict"], "undecided: neither shown equivalent nor different")
    if c["kind"] == "difference":
        return {
            "supported": "gained more than control pairs",
            "contradicted": "gained less than control pairs",
        }.get(c["verdict"], "no measurable difference between trained and control pairs")
    rising = c["expect"] == "increase"
    return {
        "supported": "rose" if rising else "fell",
        "contradicted": "fell" if rising else "rose",
    }.get(c["verdict"], "no measurable change")


@dataclass
class SeedSummary:
    """One claim across seeds: the effect's mean ± sd and each seed's verdict."""

    claim: str
    kind: str
    metric: str
    group: str | None
    layer: int | None
    layer_role: str | None
    effect: float
    """Mean effect over seeds."""
    effect_sd: float
    ci95_low: float
    """Lowest per-seed CI bound: the envelope of every seed's 95 % CI."""
    ci95_high: float
    p: float
    """Largest raw p over seeds."""
    p_adjusted: float
    """Largest adjusted p over seeds."""
    n: int
    expect: str
    verdicts: list[str] = field(default_factory=list)
    n_seeds: int = 0
    verdict: str = "inconclusive"
    """The verdict every seed reached, or *inconclusive* when seeds disagree."""
    holds_across_seeds: bool = False
    test: str = ""
    cohens_d: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def across_seeds(per_seed: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Combine the judged claims of several seeds (same claims, same order) into one row per claim.

    A claim *holds across seeds* when every seed reached the same verdict; the combined verdict is then that
    verdict, otherwise *inconclusive* (with the count of each verdict in ``note``).
    """
    if len(per_seed) == 1:
        return [
            dict(c, verdicts=[c["verdict"]], n_seeds=1, holds_across_seeds=True, effect_sd=0.0)
            for c in per_seed[0]
        ]
    rows = []
    for versions in zip(*per_seed, strict=True):
        first = versions[0]
        effects = np.array([v["effect"] for v in versions], dtype=float)
        verdicts = [v["verdict"] for v in versions]
        unanimous = len(set(verdicts)) == 1
        counts = ", ".join(f"{verdicts.count(v)}/{len(verdicts)} {v}" for v in VERDICTS if v in verdicts)
        rows.append(
            SeedSummary(
                claim=first["claim"],
                kind=first["kind"],
                metric=first["metric"],
                group=first.get("group"),
                layer=first.get("layer"),
                layer_role=first.get("layer_role"),
                effect=float(effects.mean()),
                effect_sd=float(effects.std(ddof=1)),
                ci95_low=float(min(v["ci95_low"] for v in versions)),
                ci95_high=float(max(v["ci95_high"] for v in versions)),
                p=float(max(v["p"] for v in versions)),
                p_adjusted=float(max(v["p_adjusted"] for v in versions)),
                n=int(first["n"]),
                expect=first["expect"],
                verdicts=verdicts,
                n_seeds=len(versions),
                verdict=verdicts[0] if unanimous else "inconclusive",
                holds_across_seeds=unanimous,
                test=first.get("test", ""),
                cohens_d=float(np.mean([v["cohens_d"] for v in versions]))
                if first.get("cohens_d") is not None
                else None,
                note="" if unanimous else f"seeds disagree: {counts}",
            ).to_dict()
        )
    return rows
