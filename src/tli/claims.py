"""Claims: a measured effect, its interval, its test, and a verdict corrected over the claims of a family.

Every claim a report makes is a :class:`Claim`. Four kinds:

- ``change``: a paired before/after change within one group ("TLI raises the similarity of control pairs at
  layer 2"): effect = mean change, 95 % bootstrap CI (resampling source words, the clusters), p from the
  test that fits the data (named in ``test``).
- ``difference``: the change of trained pairs minus the change of unseen control pairs (Welch test on
  cluster means, bootstrap CI): does the gain generalise, or is it larger where TLI trained? (``tli compare``
  uses this kind for "A scores higher than B".)
- ``equivalence``: "control pairs gain as much as trained pairs" within a stated margin (two one-sided
  Welch tests, TOST; its 90 % CI must lie inside ±margin).
- ``non-inferiority``: "A is not worse than B by more than a margin" — what "preserves" means (XNLI accuracy
  after fine-tuning against the zero-shot base): the one-sided test of H0 ``Δ ≤ −margin``
  (:func:`noninferiority_claim`, :func:`tli.stats.noninferiority_paired`). A failed superiority test is not
  evidence of preservation; this test is.

:func:`judge` adjusts the p-values of one family's claims together (Holm by default, Benjamini–Hochberg by
option) and derives each verdict from the adjusted p-value:

- change / difference: *supported* when ``p_adjusted < alpha`` and the 95 % CI excludes 0 in the claimed
  direction, *contradicted* when the same holds in the other direction, otherwise *inconclusive*;
- equivalence: *supported* when ``p_adjusted < alpha`` (TOST), *contradicted* when the 90 % CI lies
  entirely outside ±margin, otherwise *inconclusive*;
- non-inferiority: *supported* when ``p_adjusted < alpha``, *contradicted* when the 95 % CI lies entirely
  below ``−margin`` (worse by more than the margin), otherwise *inconclusive*.

With several seeds, :func:`across_seeds` combines each claim's per-seed estimates by a random-effects
meta-analysis (:mod:`tli.seeds`): the effect a new training run is expected to have, an across-seed 95 % CI
that includes training variance (``t`` on ``k − 1`` df), and its p-value — then judges those p-values
together. A claim whose seeds reach different verdicts says so ("seeds disagree"), never "no measurable
change".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tli.seeds import METHOD as SEEDS_METHOD
from tli.seeds import random_effects
from tli.stats import adjust_pvalues, bootstrap_ci_mean, noninferiority_paired, verdict

KINDS = ("change", "difference", "equivalence", "non-inferiority")
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
    se: float | None = None
    """Standard error of ``effect`` from its test (what the across-seed combination weighs seeds by)."""
    interval: str = ""
    """What ``ci95_low``/``ci95_high`` span, in words (e.g. "95 % cluster-bootstrap CI over source words")."""
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


def _noninferiority_verdict(claim: Claim, alpha: float) -> str:
    if claim.p_adjusted < alpha:
        return "supported"
    if claim.margin is not None and claim.ci95_high < -claim.margin:
        return "contradicted"
    return "inconclusive"


def judge(claims: list[Claim], *, correction: str = "holm", alpha: float = 0.05) -> list[Claim]:
    """Adjust the p-values of one family's claims together and set each verdict (in place; returns them).

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
        elif claim.kind == "non-inferiority":
            claim.verdict = _noninferiority_verdict(claim, alpha)
        else:
            claim.verdict = verdict(
                claim.ci95_low, claim.ci95_high, claim.p_adjusted, alpha=alpha, expect=claim.expect
            )
    return claims


def outcome(claim: dict[str, Any] | Claim) -> str:
    """What the numbers say, in words that follow them: "rose", "fell", "no measurable change", ….

    A change whose claimed direction is contradicted is said the other way round ("fell"), never
    "does not improve"; an undecided claim whose seeds reached different verdicts reads "seeds disagree"
    (with each verdict's count), never "no measurable change".
    """
    c = claim.to_dict() if isinstance(claim, Claim) else claim
    verdicts = c.get("verdicts") or []
    if c["verdict"] == "inconclusive" and len(set(verdicts)) > 1:
        return f"seeds disagree ({seed_counts(verdicts)})"
    if c["kind"] == "equivalence":
        return {
            "supported": "gained as much (equivalent within the margin)",
            "contradicted": "did not gain as much (outside the margin)",
        }.get(c["verdict"], "undecided: neither shown equivalent nor different")
    if c["kind"] == "non-inferiority":
        return {
            "supported": "not worse by more than the margin (non-inferior)",
            "contradicted": "worse by more than the margin",
        }.get(c["verdict"], "undecided: not shown non-inferior")
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


def seed_counts(verdicts: list[str]) -> str:
    """``"1/3 contradicted, 2/3 supported"``: how many seeds reached each verdict."""
    return ", ".join(f"{verdicts.count(v)}/{len(verdicts)} {v}" for v in VERDICTS if v in verdicts)


def noninferiority_claim(
    claim: str,
    metric: str,
    differences,
    margin: float,
    *,
    n_boot: int = 10_000,
    rng: np.random.Generator | int | None = 0,
    **fields: Any,
) -> Claim:
    """A ``non-inferiority`` claim from paired differences ``d = a − b`` (one per example or pair): "A is not
    worse than B by more than ``margin``".

    ``p`` is the one-sided p of :func:`tli.stats.noninferiority_paired` (H0 ``mean(d) ≤ −margin``); the CI is
    the 95 % percentile bootstrap CI of ``mean(d)``. :func:`judge` then sets the verdict with the other claims
    of its family. Choose ``margin`` before looking at the data, in the units of ``d``.

    Args:
        claim: the claim in words.
        metric: the metric of ``d``.
        differences: 1-D array ``(n,)`` of paired differences.
        margin: the non-inferiority margin ``> 0``.
        **fields: other :class:`Claim` fields (``group``, ``layer``, ``note``, ...).
    """
    d = np.asarray(differences, dtype=float)
    result = noninferiority_paired(d, margin)
    low, high = bootstrap_ci_mean(d, n_boot=n_boot, rng=rng)
    return Claim(
        claim=claim,
        kind="non-inferiority",
        metric=metric,
        test=result.test,
        effect=result.difference,
        ci95_low=low,
        ci95_high=high,
        p=result.p,
        n=int(d.size),
        margin=float(margin),
        se=result.se,
        interval=fields.pop("interval", "95 % percentile bootstrap CI over examples"),
        **fields,
    )


ACROSS_SEEDS_INTERVAL = "across-seed 95 % CI (random effects, t on seeds − 1 df)"


@dataclass
class SeedSummary:
    """One claim across seeds: the random-effects estimate, its across-seed CI and p, and each seed's verdict."""

    claim: str
    kind: str
    metric: str
    group: str | None
    layer: int | None
    layer_role: str | None
    effect: float
    """Random-effects estimate of the effect over seeds (the mean effect when seeds weigh alike)."""
    effect_sd: float
    """Standard deviation of the per-seed effects."""
    ci95_low: float
    """Across-seed 95 % CI (random effects; includes training variance), see ``interval``."""
    ci95_high: float
    p: float
    """p-value of the across-seed test (two-sided; one-sided against the margin for non-inferiority, TOST for
    equivalence)."""
    p_adjusted: float
    """``p`` adjusted over the claims of the family (the run's claims)."""
    n: int
    expect: str
    verdicts: list[str] = field(default_factory=list)
    """Each seed's own verdict (judged with that seed's claims)."""
    n_seeds: int = 0
    verdict: str = "inconclusive"
    """The verdict of the across-seed test."""
    holds_across_seeds: bool = False
    """Every seed reached the same verdict."""
    test: str = ""
    cohens_d: float | None = None
    note: str = ""
    se: float | None = None
    """Standard error of ``effect`` across seeds."""
    tau2: float | None = None
    """Estimated between-seed (training) variance of the effect."""
    df: int | None = None
    interval: str = ACROSS_SEEDS_INTERVAL
    effects_per_seed: list[float] = field(default_factory=list)
    p_per_seed: list[float] = field(default_factory=list)
    test_per_seed: str = ""
    margin: float | None = None
    ci90_low: float | None = None
    ci90_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_Z975 = 1.959963984540054


def _standard_error(version: dict[str, Any]) -> float:
    """A seed's standard error: the one its test recorded (``se``), else its 95 % CI half-width / 1.96."""
    se = version.get("se")
    if se is not None and math.isfinite(se):
        return float(se)
    return float(version["ci95_high"] - version["ci95_low"]) / (2 * _Z975)


def summarise_seeds(versions: list[dict[str, Any]], *, alpha: float = 0.05) -> dict[str, Any]:
    """One claim measured with several seeds (its per-seed judged versions, same claim) combined, not yet
    judged: ``effect``, ``ci95_low/high``, ``p`` of the random-effects combination (:func:`tli.seeds.random_effects`).

    One seed: the claim itself (its per-seed interval and p). ``alpha`` sets the 90 % CI of equivalence claims.
    """
    first = versions[0]
    verdicts = [v["verdict"] for v in versions]
    if len(versions) == 1:
        return dict(first, verdicts=verdicts, n_seeds=1, holds_across_seeds=True, effect_sd=0.0)
    effects = np.array([v["effect"] for v in versions], dtype=float)
    ses = np.array([_standard_error(v) for v in versions], dtype=float)
    unanimous = len(set(verdicts)) == 1
    summary = SeedSummary(
        claim=first["claim"],
        kind=first["kind"],
        metric=first["metric"],
        group=first.get("group"),
        layer=first.get("layer"),
        layer_role=first.get("layer_role"),
        effect=float(effects.mean()),
        effect_sd=float(effects.std(ddof=1)),
        ci95_low=math.nan,
        ci95_high=math.nan,
        p=math.nan,
        p_adjusted=math.nan,
        n=int(first["n"]),
        expect=first.get("expect", "increase"),
        verdicts=verdicts,
        n_seeds=len(versions),
        holds_across_seeds=unanimous,
        test=f"{SEEDS_METHOD} over {len(versions)} seeds of: {first.get('test', '')}",
        test_per_seed=first.get("test", ""),
        cohens_d=float(np.mean([v["cohens_d"] for v in versions]))
        if first.get("cohens_d") is not None
        else None,
        note="" if unanimous else f"seeds disagree: {seed_counts(verdicts)}",
        effects_per_seed=[float(e) for e in effects],
        p_per_seed=[float(v["p"]) for v in versions],
    )
    p_seeds = [float(v["p"]) for v in versions]
    if not (np.all(np.isfinite(effects)) and np.all(np.isfinite(ses))) or any(math.isnan(p) for p in p_seeds):
        summary.note = "; ".join(filter(None, [summary.note, first.get("note") or "a seed has no estimate"]))
        return summary.to_dict()
    combined = random_effects(effects, ses, p_seeds=p_seeds)
    summary.effect, summary.se, summary.tau2, summary.df = (
        combined.effect,
        combined.se,
        combined.tau2,
        combined.df,
    )
    summary.ci95_low, summary.ci95_high = combined.interval(0.95)
    if first["kind"] == "equivalence":
        margin = float(np.mean([v["margin"] for v in versions]))
        summary.margin = margin
        summary.p = max(combined.p_value(-margin, "greater"), combined.p_value(margin, "less"))
        summary.ci90_low, summary.ci90_high = combined.interval(1 - 2 * alpha)
    elif first["kind"] == "non-inferiority":
        summary.margin = float(first["margin"])
        summary.p = combined.p_value(-summary.margin, "greater")
    else:
        summary.p = combined.p_value()
    return summary.to_dict()


def judge_summaries(
    summaries: list[dict[str, Any]],
    *,
    correction: str = "holm",
    alpha: float = 0.05,
    families: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Adjust the p-values of combined claims within each family (default: one family) and set verdicts, in
    place; returns ``summaries``."""
    keys = families if families is not None else ["run"] * len(summaries)
    fields = set(Claim.__dataclass_fields__) - {"p_adjusted", "verdict"}
    for family in dict.fromkeys(keys):
        members = [s for s, key in zip(summaries, keys, strict=True) if key == family]
        claims = [Claim(**{k: v for k, v in s.items() if k in fields}) for s in members]
        judge(claims, correction=correction, alpha=alpha)
        for s, c in zip(members, claims, strict=True):
            s["p_adjusted"], s["verdict"] = c.p_adjusted, c.verdict
    return summaries


def across_seeds(
    per_seed: list[list[dict[str, Any]]], *, correction: str = "holm", alpha: float = 0.05
) -> list[dict[str, Any]]:
    """Combine the judged claims of several seeds (same claims, same order) into one row per claim, then judge
    the combined claims together (one family, as each seed's were).

    Each row: the random-effects ``effect`` and across-seed 95 % CI (``interval`` says so), the across-seed
    ``p`` and ``p_adjusted``, the ``verdict`` of that test, each seed's own verdict (``verdicts``),
    ``holds_across_seeds`` (every seed reached the same verdict) and, when they did not, ``note`` "seeds
    disagree: …". One seed: the claims as they are.
    """
    if len(per_seed) == 1:
        return [summarise_seeds([c], alpha=alpha) for c in per_seed[0]]
    rows = [summarise_seeds(list(versions), alpha=alpha) for versions in zip(*per_seed, strict=True)]
    return judge_summaries(rows, correction=correction, alpha=alpha)
