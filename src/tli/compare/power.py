"""Power before the run: can an experiment's families reach a verdict, and how large an effect can they see?

For every family of an experiment (:mod:`tli.compare.questions`), from its design alone (``tli compare
EXPERIMENT --dry-run``):

- the **floor**: the smallest adjusted p any of its hypotheses can reach whatever the data — ``m`` times the
  smallest per-hypothesis p (Holm's first step; BH's too): ``2^{1−n}`` for exact McNemar and exact sign-flip
  tests, ``1/(R + 1)`` for Monte Carlo randomisation with ``R = max(n_resamples, ⌈20·m/α⌉)``, none (0) for
  the paired t-test and for the random-effects combination over ``k ≥ 2`` seeds (a t statistic);
- the **minimum detectable effect** (MDE) at 80 % power of the family's strictest test, two-sided at level
  ``α/m`` (Holm's first step; Bonferroni, so conservative for Holm's later steps):
  ``MDE = λ · σ_d / √(k·n)``, where ``σ_d`` is the per-example standard deviation of the paired differences
  (:data:`ASSUMED_SD`), ``n`` the test-set size, ``k`` the seeds, and ``λ`` the noncentrality at which the test
  has 80 % power: ``z_{1−α/2m} + z_{0.8}`` for one seed (normal approximation), and for ``k ≥ 2`` seeds the
  ``λ`` solving ``P(|T_{k−1}(λ)| > t_{k−1, 1−α/2m}) = 0.8`` for the noncentral t of the across-seed test,
  assuming no training variance (``τ = 0``: the best case; training variance only raises the MDE);
- the ``n`` needed to detect a stated effect (:data:`STATED_EFFECT`: 1 ROUGE-L point, 2 accuracy points,
  0.02 MRR) with the experiment's seeds;
- for non-inferiority hypotheses, the true difference at which non-inferiority within the margin is shown
  with 80 % power (one-sided at ``α/m``): ``−margin + λ · σ_d / √(k·n)``.

``n`` is counted from the data when it is on this machine (or tli's samples), else taken from the official
split sizes (:data:`OFFICIAL_SIZES`), capped by ``limit``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import integrate, optimize
from scipy import stats as sps

from tli.compare.hypotheses import plan_hypotheses
from tli.compare.questions import DEFAULT_MARGIN, EXPLORATORY, QUESTIONS, question_of
from tli.compare.significance import EXACT_MAX, T_TEST_MIN, TESTS, family_resamples, smallest_p
from tli.tasks import get_task, is_retrieval
from tli.tasks.harness import PREFIX as HARNESS_PREFIX

POWER = 0.8
DISCORDANCE = 0.2
"""Default share of examples on which two strategies' 0/1 outcomes differ (XNLI correct/incorrect): the
per-example sd of the paired differences is then ``√0.2 ≈ 0.45``. Measured on the shipped demo (30 XNLI
examples, 5 strategies of SmolLM2-135M, 2026-11-24): 0.07–0.27 between strategies, median 0.17."""
ASSUMED_SD = {
    "accuracy": math.sqrt(DISCORDANCE),
    "rougeL": 0.12,
    "rouge1": 0.14,
    "rouge2": 0.10,
    "bleu": 25.0,
    "chrf": 25.0,
    "macro_f1": 0.6,
    "mrr@10": 0.35,
    "mrr@100": 0.35,
    "recall@1": 0.45,
    "recall@5": 0.45,
    "recall@10": 0.45,
    "recall@100": 0.35,
    "ndcg@10": 0.35,
}
"""Per-example standard deviation ``σ_d`` of the paired differences between two strategies, per metric (the
standard error of a difference of means is ``σ_d/√n``; for corpus metrics, ``σ_d`` is the equivalent: the
bootstrap standard error times ``√n``). Defaults stated in docs/concepts/statistics.md: rounded up from the shipped
demos' prediction files (SmolLM2-135M, 2026-11-24) — ROUGE-L differences between fine-tuned strategies
0.05–0.12; reciprocal-rank differences between retrieval systems 0.2–0.35 — so that the MDEs err large."""
STATED_EFFECT = {
    "rougeL": 0.01,
    "rouge1": 0.01,
    "rouge2": 0.01,
    "accuracy": 0.02,
    "macro_f1": 0.02,
    "bleu": 1.0,
    "chrf": 1.0,
    "mrr@10": 0.02,
    "mrr@100": 0.02,
    "recall@1": 0.02,
    "recall@5": 0.02,
    "recall@10": 0.02,
    "recall@100": 0.02,
    "ndcg@10": 0.02,
}
"""The effect whose required ``n`` the power report gives: 1 ROUGE-L point, 2 accuracy points, 0.02 MRR, 1
BLEU / chrF point."""
BINARY_METRICS = {"accuracy"}
"""Metrics whose per-example scores are 0/1 (tested by exact McNemar)."""
HARNESS_BINARY = {"acc", "acc_norm", "exact_match"}
"""lm-evaluation-harness metrics whose per-example scores are 0/1, planned as ``accuracy``."""
OFFICIAL_SIZES = {
    ("xnli", "*", "test"): 5010,
    ("xnli", "*", "validation"): 2490,
    ("xquad", "*", "test"): 1190,
    ("xlsum", "sw", "test"): 987,
    ("xlsum", "sw", "validation"): 987,
    ("mrtydi", "sw", "test"): 482,
    ("mrtydi", "sw", "validation"): 802,
    ("tydi", "sw", "test"): 499,
    ("tydi", "sw", "validation"): 499,
    ("tydi", "en", "test"): 440,
    ("tydi", "en", "validation"): 440,
    # lm-evaluation-harness tasks on the hub (the split each scores)
    ("lm-eval:belebele_swh_Latn", "sw", "test"): 900,
    ("lm-eval:xcopa_sw", "sw", "test"): 500,
    ("lm-eval:xstorycloze_sw", "sw", "eval"): 1511,
    ("lm-eval:afrixnli_native_direct_swa", "sw", "test"): 600,
    ("lm-eval:afrimmlu_direct_swa_prompt_1", "sw", "test"): 500,
    ("lm-eval:afrimgsm_swa_prompt_1", "sw", "test"): 250,
}
"""Test-set sizes of the official releases (examples, or queries for retrieval): XNLI 1.0 (Conneau et al.
2018: 5,010 test / 2,490 dev pairs per language), XQuAD (Artetxe et al. 2020: 1,190 questions per language),
XL-Sum Swahili (Hasan et al. 2021: 987 test / 987 validation), Mr. TyDi v1.1 Swahili (Zhang et al. 2021: 482
test / 802 dev topics), TyDi QA GoldP v1.1 dev (Clark et al. 2020; Swahili 499, English 440 questions; tli's
``tydi`` task reads the dev file for ``test``)."""


# --------------------------------------------------------------------------------------------------
# Power of one test
# --------------------------------------------------------------------------------------------------


def _power(lam: float, critical: float, df: int | None, sides: int) -> float:
    """P(reject) of a z (``df`` None) or t test with noncentrality ``lam`` and critical value ``critical``."""
    if df is None:
        return float(sps.norm.sf(critical - lam) + (sps.norm.cdf(-critical - lam) if sides == 2 else 0.0))

    def integrand(v: float) -> float:
        c = critical * math.sqrt(v / df)
        tail = sps.norm.sf(c - lam) + (sps.norm.cdf(-c - lam) if sides == 2 else 0.0)
        return tail * sps.chi2.pdf(v, df)

    return float(integrate.quad(integrand, 0, np.inf, limit=200)[0])


@lru_cache(maxsize=256)
def noncentrality(alpha: float, df: int | None, power: float = POWER, sides: int = 2) -> float:
    """The noncentrality ``λ`` (effect / standard error) at which a level-``alpha`` z test (``df`` None) or t
    test on ``df`` degrees of freedom rejects with probability ``power``."""
    if df is None:
        return float(sps.norm.ppf(1 - alpha / sides) + sps.norm.ppf(power))
    critical = float(sps.t.ppf(1 - alpha / sides, df))
    return float(optimize.brentq(lambda lam: _power(lam, critical, df, sides) - power, 0.0, 1e4, xtol=1e-6))


def minimum_detectable_effect(
    sd: float, n: int, *, seeds: int = 1, alpha: float = 0.05, m: int = 1, sides: int = 2
) -> float:
    """``λ · sd / √(seeds · n)`` at level ``alpha/m`` (see the module docstring); one seed: z test, several:
    the across-seed t test on ``seeds − 1`` df with no training variance."""
    df = None if seeds < 2 else seeds - 1
    return noncentrality(alpha / max(m, 1), df, POWER, sides) * sd / math.sqrt(seeds * n)


def n_needed(
    effect: float, sd: float, *, seeds: int = 1, alpha: float = 0.05, m: int = 1, sides: int = 2
) -> int:
    """The smallest test-set size whose MDE is at most ``effect``: ``⌈(λ · sd / effect)² / seeds⌉``."""
    df = None if seeds < 2 else seeds - 1
    lam = noncentrality(alpha / max(m, 1), df, POWER, sides)
    return max(2, math.ceil((lam * sd / effect) ** 2 / seeds))


# --------------------------------------------------------------------------------------------------
# An experiment's families
# --------------------------------------------------------------------------------------------------


def planned_size(experiment: Any, task: str, language: str) -> tuple[int | None, str]:
    """``(n, where it comes from)``: counted from local data or tli's samples, else the official size."""
    config = experiment.tasks[task]
    split = getattr(config, "split", "test")
    limit = getattr(config, "limit", None)
    hub_harness = task.startswith(HARNESS_PREFIX) and config.path is None  # read only when it runs
    if not hub_harness and (config.path is None or Path(config.path).exists()):
        extra = {"config": config} if is_retrieval(task) else {}
        data = get_task(task).load(config.path, language, split=split, limit=limit, **extra)
        n = len(data.queries) if hasattr(data, "queries") else len(data)
        return n, "counted in the data"
    for key in ((task, language, split), (task, "*", split)):
        if key in OFFICIAL_SIZES:
            n = OFFICIAL_SIZES[key]
            return (min(n, limit) if limit else n), "official split size"
    return (limit, "limit") if limit else (None, "unknown (data not on this machine)")


def planned_groups(experiment: Any) -> dict[tuple[str, str, str], set[str]]:
    """(model, task, language) → the strategies or systems the experiment will score there."""
    cells = experiment.cells()
    models = list(experiment.models)
    strategies = {spec.name for spec in experiment.strategies}
    groups: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for model, name, task, language, _ in cells:
        if is_retrieval(task) and name in strategies:
            name = f"dense:{name}"
        for owner in [model] if model is not None else models:
            groups[(owner, task, language)].add(name)
    return groups


def planning_metric(task: str, metric: str) -> str:
    """The metric whose assumptions plan ``metric``: a harness task's 0/1 per-example metrics (``acc``,
    ``acc_norm``, ``exact_match`` under any filter) are planned as ``accuracy`` (McNemar, σ_d = √0.2)."""
    if task.startswith(HARNESS_PREFIX) and metric.partition(",")[0] in HARNESS_BINARY:
        return "accuracy"
    return metric


def planned_test(metric: str, task: str, n: int | None, statistic: bool) -> str:
    """The per-seed test key the rule of :func:`tli.compare.significance.choose_test` will pick on ``n``
    examples (assuming every paired difference non-zero)."""
    if statistic:
        return "randomisation"
    if metric in BINARY_METRICS:
        return "mcnemar"
    if n is None or n >= T_TEST_MIN:
        return "t-test"
    return "sign-flip" if n <= EXACT_MAX else "randomisation"


def power_report(experiment: Any, *, margin: float | None = None) -> dict[str, Any]:
    """Every family of ``experiment`` with its floor, MDEs and required ``n`` (see the module docstring)."""
    margin = getattr(experiment, "noninferiority_margin", None) or margin or DEFAULT_MARGIN
    strategies = [spec.name for spec in experiment.strategies]
    hypotheses = plan_hypotheses(
        planned_groups(experiment),
        strategies,
        experiment.reference,
        task_configs=experiment.tasks,
        retrieval=experiment.retrieval,
        models=list(experiment.models),
    )
    sizes = {key: planned_size(experiment, *key) for key in {(h.task, h.language) for h in hypotheses}}
    k, alpha = len(experiment.seeds), experiment.alpha
    by_family: dict[str, list] = defaultdict(list)
    for h in hypotheses:
        by_family[h.family].append(h)
    families = []
    for name in [q.key for q in QUESTIONS] + [EXPLORATORY]:
        members = by_family.get(name, [])
        if not members:
            continue
        families.append(_family(name, members, sizes, k, alpha, experiment, margin))
    return {
        "families": families,
        "assumptions": {
            "power": POWER,
            "alpha": alpha,
            "correction": experiment.correction,
            "seeds": k,
            "seed_sd": 0.0,
            "per_example_sd": {m: round(v, 4) for m, v in ASSUMED_SD.items()},
            "stated_effect": STATED_EFFECT,
            "noninferiority_margin": margin,
            "sizes": {
                f"{t} ({lang})": {"n": n, "source": src} for (t, lang), (n, src) in sorted(sizes.items())
            },
        },
    }


def _family(name, members, sizes, k, alpha, experiment, margin) -> dict[str, Any]:
    m = len(members)
    resamples = family_resamples(m, alpha, experiment.n_resamples)
    tests, floors, per_seed_floors, mde, needed, details = set(), [], [], {}, {}, []
    worst_noninferiority = None
    for h in members:
        n, _ = sizes[(h.task, h.language)]
        statistic = h.metric in get_task(h.task).statistic_metrics
        planned = planning_metric(h.task, h.metric)
        key = planned_test(planned, h.task, n, statistic) if h.kind != "non-inferiority" else "noninferiority"
        tests.add(TESTS[key])
        seed_floor = 0.0 if n is None else smallest_p(key, n, resamples)
        per_seed_floors.append(seed_floor)
        floors.append(0.0 if k > 1 else seed_floor)
        sd = ASSUMED_SD.get(planned)
        if n is None or sd is None:
            continue
        if h.kind == "interaction":
            sd *= math.sqrt(2)  # a difference of two independent-ish paired differences
        if h.kind == "non-inferiority":
            shown = -margin + minimum_detectable_effect(sd, n, seeds=k, alpha=alpha, m=m, sides=1)
            worst_noninferiority = max(
                shown, worst_noninferiority if worst_noninferiority is not None else -1e9
            )
            continue
        effect = minimum_detectable_effect(sd, n, seeds=k, alpha=alpha, m=m)
        mde[h.metric] = max(effect, mde.get(h.metric, 0.0))
        if planned in STATED_EFFECT:
            need = n_needed(STATED_EFFECT[planned], sd, seeds=k, alpha=alpha, m=m)
            needed[h.metric] = {"effect": STATED_EFFECT[planned], "n": need}
        details.append({"hypothesis": h.text(margin), "n": n, "mde": effect})
    correction = experiment.correction
    floor = min(floors) if floors else 1.0
    smallest = floor if correction == "none" else min(1.0, m * floor)
    seed_floor = min(per_seed_floors) if per_seed_floors else 1.0
    question = question_of(name)
    record = {
        "name": name,
        "question": question.text if question else "comparisons no research question asks",
        "hypotheses": m,
        "test": sorted(tests),
        "across_seeds": f"random effects over {k} seeds (t on {k - 1} df)" if k > 1 else None,
        "n_resamples": resamples,
        "smallest_adjusted_p": smallest,
        "smallest_adjusted_p_per_seed": seed_floor if correction == "none" else min(1.0, m * seed_floor),
        "reaches_alpha_over_10": smallest <= alpha / 10,
        "minimum_detectable_effect": {k_: round(v, 5) for k_, v in sorted(mde.items())},
        "n_needed": needed,
        "n": sorted({sizes[(h.task, h.language)][0] or 0 for h in members}),
    }
    if worst_noninferiority is not None:
        record["noninferiority"] = {
            "margin": margin,
            "shown_when_true_difference_at_least": round(worst_noninferiority, 5),
        }
    return record


def _floor(p: float) -> str:
    return "0 (no floor)" if p == 0 else f"{p:.3g}"


def format_power(report: dict[str, Any]) -> str:
    """The power report as Markdown (the dry run and the report print it)."""
    assumptions = report["assumptions"]
    k = assumptions["seeds"]
    lines = [
        f"Power ({int(assumptions['power'] * 100)} %), per family: the smallest adjusted p its tests can reach, the "
        f"minimum detectable effect (MDE) at level alpha/m (alpha {assumptions['alpha']}, "
        f"{assumptions['correction']}), {k} seed(s)"
        + (" and no training variance (the best case)" if k > 1 else "")
        + ", and the n a stated effect needs.",
        "",
        "| family | hypotheses | test (per seed; across seeds) | smallest adjusted p | MDE | n for the stated "
        "effect | n in the experiment |",
        "|---|---|---|---|---|---|---|",
    ]
    for family in report["families"]:
        mde = ", ".join(
            f"{metric} {value:.3g}" for metric, value in family["minimum_detectable_effect"].items()
        )
        if "noninferiority" in family:
            ni = family["noninferiority"]
            mde += (
                f"; non-inferiority within {ni['margin']:g} shown when the true difference ≥ "
                f"{ni['shown_when_true_difference_at_least']:+.3g}"
            )
        needed = ", ".join(
            f"{metric} {v['effect']:g}: {v['n']:,}" for metric, v in family["n_needed"].items()
        )
        floor = family["smallest_adjusted_p"]
        lines.append(
            f"| {family['name']} | {family['hypotheses']} | {'; '.join(family['test'])}"
            + (f"; then {family['across_seeds']}" if family.get("across_seeds") else "")
            + " "
            f"| {_floor(floor)}"
            + (f" (one seed's tests: {_floor(family['smallest_adjusted_p_per_seed'])})" if k > 1 else "")
            + f" | {mde or '—'} | {needed or '—'} "
            f"| {', '.join(str(n) for n in family['n']) or '—'} |"
        )
    sd = ", ".join(f"{metric} {value:g}" for metric, value in assumptions["per_example_sd"].items())
    sizes = "; ".join(f"{name}: {v['n']} ({v['source']})" for name, v in assumptions["sizes"].items())
    lines += [
        "",
        f"Assumed per-example sd of paired differences: {sd}. Test-set sizes: {sizes}.",
    ]
    return "\n".join(lines)


__all__ = [
    "ASSUMED_SD",
    "OFFICIAL_SIZES",
    "STATED_EFFECT",
    "format_power",
    "minimum_detectable_effect",
    "n_needed",
    "noncentrality",
    "power_report",
]
