"""Comparisons between strategies, the research questions they answer, and the families they are corrected in.

Each comparison is a paired test of one strategy (or retrieval system) against another on the same examples
(:mod:`tli.compare.significance`), phrased as a claim ("A scores higher <metric> than B on <task>
(<language>)", or "A is not worse than B by more than <margin>") and judged with the other hypotheses of
its **family**:

- every research question (:data:`QUESTIONS`, from the briefs the project started from) is its own family:
  its pairs × task-languages × models, on each task's primary metric (:func:`primary_metric`) only;
- every other comparison — other metrics, every strategy against the experiment's reference, systems
  against BM25, fusion against its dense part, conditions against zero-shot, the model × strategy
  interactions — is one family labelled :data:`EXPLORATORY`.

So a question's answer depends only on its own hypotheses: adding a diagnostic comparison, a metric or a
baseline changes the exploratory family, never a question's (``tests/test_compare.py`` checks this). Within a
family p-values are adjusted by the experiment's ``correction`` (Holm by default).

With several seeds, each hypothesis is tested per seed (and judged per seed, within its family) and then
combined over seeds by the random-effects meta-analysis of :mod:`tli.seeds`; the combined rows are judged
within their family again, and they are the verdicts (``comparisons`` in ``results.json``).

Each question gets one overall answer from its claims (:func:`overall_answer`): *supported* when every claim
of its family is supported (every pair, task-language and model it covers), *contradicted* when every claim
is contradicted, *partly supported* / *partly contradicted* when some are and none goes the other way,
*mixed* when some are supported and some contradicted, *inconclusive* when none is decided, *not measured*
when the experiment lacks what it needs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from tli.claims import Claim, judge, judge_summaries, summarise_seeds
from tli.compare.runner import Cell, read_rows
from tli.compare.significance import (
    PairedDifference,
    align,
    family_resamples,
    paired_difference,
    paired_noninferiority,
)
from tli.tasks import get_task, is_retrieval

PRIMARY_METRIC = {
    "xlsum": "rougeL",
    "xnli": "accuracy",
    "xquad": "mrr@10",
    "tydi": "mrr@10",
    "mrtydi": "mrr@100",
}
"""The metric a question and the score-vs-cost plot use for each task."""
EXPLORATORY = "exploratory"
"""The family of every comparison no research question asks."""
NONINFERIORITY_METRIC = {"xnli": "accuracy"}
"""Tasks where each strategy is also tested for non-inferiority to the zero-shot base ("preserves")."""
DEFAULT_MARGIN = 0.01
"""Default non-inferiority margin: 1 accuracy point (see README, "Statistics")."""
ZERO_SHOT = "none"
ONE_SEED_INTERVAL = "95 % paired-bootstrap CI over examples (one seed)"


@dataclass(frozen=True)
class Question:
    """A research question and the hypotheses that answer it."""

    key: str
    text: str
    pairs: tuple[tuple[str, str], ...]
    """(strategy, compared with) pairs; the claim is "the first scores higher than the second"."""
    tasks: tuple[str, ...]
    noninferior: tuple[tuple[str, str], ...] = ()
    """(strategy, base) pairs; the claim is "the first is not worse than the second by more than the margin"."""
    across_models: bool = False
    """The question asks whether its answer holds across models (answered per model, with the model × strategy
    interaction reported beside it)."""
    note: str = ""


QUESTIONS = (
    Question(
        "finetuning-xlsum",
        "How do fine-tuning strategies (full fine-tuning vs LoRA) affect summarisation of a low-resource "
        "language (XL-Sum), and does that hold across models?",
        (("lora", "full"), ("qlora", "full")),
        ("xlsum",),
        across_models=True,
        note="primary metric ROUGE-L; BLEU and chrF are exploratory",
    ),
    Question(
        "tli-xlsum",
        "Does early-layer LoRA / TLI beat full fine-tuning on Swahili XL-Sum (ROUGE, BLEU)?",
        (("tli+lora", "full"), ("lora-early", "full"), ("tli", "full")),
        ("xlsum",),
        note="primary metric ROUGE-L; BLEU and chrF are exploratory",
    ),
    Question(
        "nli-preserved",
        "Does early-layer LoRA preserve zero-shot reasoning (XNLI) better than full fine-tuning?",
        (("lora-early", "full"), ("tli+lora", "full"), ("tli", "full")),
        ("xnli",),
        noninferior=(("lora-early", ZERO_SHOT), ("tli+lora", ZERO_SHOT), ("tli", ZERO_SHOT)),
        note="'preserves' = not worse than the zero-shot base by more than the margin (non-inferiority); "
        "'better than full' = higher accuracy than full fine-tuning",
    ),
    Question(
        "tli-retrieval",
        "How does early-layer LoRA for lexical alignment compare with full fine-tuning in zero-shot retrieval "
        "— cross-lingual (XQuAD, queries and passages in different languages) and monolingual Swahili "
        "(TyDi GoldP, Mr. TyDi)?",
        (("dense:lora-early", "dense:full"), ("dense:tli", "dense:full"), ("dense:tli+lora", "dense:full")),
        ("xquad", "tydi", "mrtydi"),
    ),
    Question(
        "synthetic-dense",
        "How does a dense retriever fine-tuned on synthetic low-resource data compare with direct cross-lingual "
        "transfer?",
        (("dense:synthetic", "dense:direct-transfer"), ("dense:mix", "dense:direct-transfer")),
        ("xquad", "mrtydi", "tydi"),
    ),
)


def primary_metric(task: str, config: Any = None) -> str:
    """The metric a question uses on ``task``: :data:`PRIMARY_METRIC`, or a retrieval task's first
    ``compare_metrics`` when those leave it out."""
    metric = PRIMARY_METRIC.get(task, "")
    compared = getattr(config, "compare_metrics", None)
    if compared and metric not in compared:
        return compared[0]
    return metric


def family_of(kind: str, a: str, b: str, task: str, metric: str, config: Any = None) -> str:
    """The family a hypothesis is corrected in: the question that asks it, else :data:`EXPLORATORY`."""
    if kind == "interaction" or metric != primary_metric(task, config):
        return EXPLORATORY
    for question in QUESTIONS:
        pairs = question.noninferior if kind == "non-inferiority" else question.pairs
        if task in question.tasks and (a, b) in pairs:
            return question.key
    return EXPLORATORY


def question_of(key: str) -> Question | None:
    return next((q for q in QUESTIONS if q.key == key), None)


def comparison_pairs(strategies: list[str], reference: str) -> list[tuple[str, str]]:
    """Every strategy against the reference, plus the pairs the research questions need."""
    pairs = [(s, reference) for s in strategies if s != reference]
    for question in QUESTIONS:
        for a, b in question.pairs:
            if a in strategies and b in strategies and (a, b) not in pairs:
                pairs.append((a, b))
    return pairs


def system_pairs(
    present: set[str], plan: Any, strategies: list[str], reference: str
) -> list[tuple[str, str]]:
    """The system comparisons of one (model, task, language): every system against the retrieval reference,
    every strategy against the reference strategy, each fusion against its dense part, each trained
    condition against zero-shot, and the research questions' pairs — those whose two systems both ran."""
    pairs: list[tuple[str, str]] = []

    def add(a: str, b: str) -> None:
        if a != b and a in present and b in present and (a, b) not in pairs:
            pairs.append((a, b))

    if plan.reference:
        for system in sorted(present):
            add(system, plan.reference)
    for strategy in strategies:
        add(f"dense:{strategy}", f"dense:{reference}")
    for system in sorted(present):
        if system.startswith("fusion:bm25+"):
            add(system, system.removeprefix("fusion:bm25+"))
    for condition in ("direct-transfer", "synthetic", "mix"):
        add(f"dense:{condition}", "dense:zero-shot")
    for question in QUESTIONS:
        for a, b in question.pairs:
            if a.startswith("dense:"):
                add(a, b)
    return pairs


# --------------------------------------------------------------------------------------------------
# Hypotheses: what is compared, in which family
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hypothesis:
    """One comparison (tested per seed): ``strategy`` against ``reference`` on one metric and task-language."""

    family: str
    kind: str
    """``difference`` (A scores higher than B), ``non-inferiority`` (A not worse than B by more than the
    margin) or ``interaction`` (the A − B difference is larger with ``model`` than with ``other_model``)."""
    model: str
    task: str
    language: str
    metric: str
    strategy: str
    reference: str
    other_model: str | None = None

    @property
    def key(self) -> tuple:
        return (
            self.model,
            self.task,
            self.language,
            self.metric,
            self.strategy,
            self.reference,
            self.kind,
            self.other_model,
        )

    def text(self, margin: float) -> str:
        where = f"on {self.task} ({self.language})"
        if self.kind == "non-inferiority":
            return (
                f"{self.strategy} is not worse than {self.reference} by more than {margin:g} {self.metric} "
                f"{where}, model {self.model}"
            )
        if self.kind == "interaction":
            return (
                f"the {self.strategy} − {self.reference} difference in {self.metric} is larger with model "
                f"{self.model} than with {self.other_model} {where}"
            )
        return (
            f"{self.strategy} scores higher {self.metric} than {self.reference} {where}, model {self.model}"
        )


Groups = dict[tuple[str, str, str], set[str]]
"""(model, task, language) → the strategies (or retrieval systems) scored there."""


def plan_hypotheses(
    groups: Groups,
    strategies: list[str],
    reference: str,
    *,
    task_configs: dict[str, Any],
    retrieval: Any = None,
    models: list[str] | None = None,
) -> list[Hypothesis]:
    """Every hypothesis of a run (one seed) from what was scored where, each with its family.

    Non-retrieval tasks: :func:`comparison_pairs` on every task metric, and non-inferiority of every strategy
    against the zero-shot base on :data:`NONINFERIORITY_METRIC`. Retrieval tasks: :func:`system_pairs` on the
    task's ``compare_metrics``. Questions that ask about several models add model × strategy interactions.
    """
    out: list[Hypothesis] = []
    for (model, task, language), present in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        config = task_configs.get(task)
        if is_retrieval(task):
            pairs = system_pairs(present, retrieval, strategies, reference) if retrieval is not None else []
            metrics = list(getattr(config, "compare_metrics", None) or [primary_metric(task)])
        else:
            names = [s for s in strategies if s in present]
            pairs = comparison_pairs(names, reference)
            metrics = list(get_task(task).metrics)
        for a, b in pairs:
            for metric in metrics:
                family = family_of("difference", a, b, task, metric, config)
                out.append(Hypothesis(family, "difference", model, task, language, metric, a, b))
        metric = NONINFERIORITY_METRIC.get(task)
        if metric and ZERO_SHOT in present:
            for a in [s for s in strategies if s in present and s != ZERO_SHOT]:
                family = family_of("non-inferiority", a, ZERO_SHOT, task, metric, config)
                out.append(Hypothesis(family, "non-inferiority", model, task, language, metric, a, ZERO_SHOT))
    out += _interactions(groups, models or sorted({m for m, _, _ in groups}), task_configs)
    return out


def _interactions(groups: Groups, models: list[str], task_configs: dict[str, Any]) -> list[Hypothesis]:
    """Model × strategy interactions of the questions that ask about several models (exploratory)."""
    out = []
    for question in (q for q in QUESTIONS if q.across_models):
        for task in question.tasks:
            languages = sorted({lang for (_, t, lang) in groups if t == task})
            metric = primary_metric(task, task_configs.get(task))
            for language in languages:
                for a, b in question.pairs:
                    having = [m for m in models if {a, b} <= groups.get((m, task, language), set())]
                    for i, first in enumerate(having):
                        for second in having[i + 1 :]:
                            out.append(
                                Hypothesis(
                                    EXPLORATORY, "interaction", first, task, language, metric, a, b, second
                                )
                            )
    return out


# --------------------------------------------------------------------------------------------------
# Running the tests of one run, per seed
# --------------------------------------------------------------------------------------------------


def _name(cell: Cell) -> str:
    return cell.system or cell.strategy


def seed_groups(cells: list[Cell], seed: int) -> dict[tuple[str, str, str], dict[str, Cell]]:
    """(model, task, language) → name → the finished cell of ``seed`` (cells without a seed, such as BM25, in
    every seed; cells without a model, BM25, in every model's groups)."""
    done = [c for c in cells if c.status == "done" and c.seed in (seed, None)]
    models = sorted({c.model for c in done if c.model is not None})
    out: dict[tuple[str, str, str], dict[str, Cell]] = defaultdict(dict)
    for c in done:
        for model in [c.model] if c.model is not None else models:
            out[(model, c.task, c.language)][_name(c)] = c
    return out


class _Rows:
    """Prediction rows read once per file."""

    def __init__(self) -> None:
        self.cache: dict[str, list] = {}

    def __call__(self, cell: Cell) -> list:
        return self.cache.setdefault(cell.predictions, read_rows(cell.predictions))


def _mean_field(task: str, metric: str) -> str | None:
    return get_task(task).mean_metrics.get(metric)


def _test_option(task: str, retrieval: Any) -> str:
    if not is_retrieval(task) or retrieval is None:
        return "auto"
    return {"t-test": "t-test-ranx", "randomisation": "randomisation"}.get(retrieval.test, "auto")


def run_hypothesis(
    h: Hypothesis,
    group: dict[str, Cell],
    rows: _Rows,
    *,
    other: dict[str, Cell] | None,
    n_resamples: int,
    n_boot: int,
    seed: int,
    task_configs: dict[str, Any],
    retrieval: Any,
    margin: float,
) -> PairedDifference:
    """The per-seed test of one hypothesis on its cells' prediction rows."""
    task, config = get_task(h.task), task_configs.get(h.task)
    rows_a, rows_b = rows(group[h.strategy]), rows(group[h.reference])
    field = _mean_field(h.task, h.metric)
    if h.kind == "non-inferiority":
        return paired_noninferiority(rows_a, rows_b, mean_of=field, margin=margin, n_boot=n_boot, rng=seed)
    if h.kind == "interaction":
        first = _differences(rows_a, rows_b, field)
        second = _differences(rows(other[h.strategy]), rows(other[h.reference]), field)
        return paired_difference(first, second, mean_of="d", n_resamples=n_resamples, n_boot=n_boot, rng=seed)
    common = {"n_resamples": n_resamples, "n_boot": n_boot, "rng": seed}
    if field is not None:
        return paired_difference(
            rows_a, rows_b, mean_of=field, test=_test_option(h.task, retrieval), **common
        )
    if h.metric in task.statistic_metrics:
        return paired_difference(
            rows_a, rows_b, corpus_statistics=lambda r: task.corpus_statistics(h.metric, r, config), **common
        )
    return paired_difference(
        rows_a, rows_b, corpus_score=lambda r: task.corpus_score(h.metric, r, config), **common
    )


def _differences(rows_a: list, rows_b: list, field: str) -> list[dict[str, Any]]:
    a, b = align(rows_a, rows_b)
    return [{"id": x["id"], "d": float(x[field]) - float(y[field])} for x, y in zip(a, b, strict=True)]


def _row(
    h: Hypothesis, result: PairedDifference, seed: int, margin: float, extra: dict
) -> tuple[dict, Claim]:
    kind = "non-inferiority" if h.kind == "non-inferiority" else "difference"
    claim = Claim(
        claim=h.text(margin),
        kind=kind,
        metric=h.metric,
        test=result.test,
        effect=result.difference,
        ci95_low=result.ci95_low,
        ci95_high=result.ci95_high,
        p=result.p_value,
        n=result.n,
        margin=result.margin,
        se=result.se,
        interval=ONE_SEED_INTERVAL,
    )
    row = {
        "model": h.model,
        "task": h.task,
        "language": h.language,
        "metric": h.metric,
        "strategy": h.strategy,
        "reference": h.reference,
        "seed": seed,
        "kind": h.kind,
        "family": h.family,
        "test": result.test,
        "difference": result.difference,
        "ci95_low": result.ci95_low,
        "ci95_high": result.ci95_high,
        "interval": ONE_SEED_INTERVAL,
        "p_value": result.p_value,
        "p_floor": result.p_floor,
        "n_resamples": result.n_resamples,
        "se": result.se,
        "n": result.n,
        "score": result.score_a,
        "reference_score": result.score_b,
        **({"margin": result.margin} if result.margin is not None else {}),
        **({"other_model": h.other_model} if h.other_model else {}),
        **extra,
    }
    return row, claim


def compare_cells(
    cells: list[Cell],
    strategies: list[str],
    reference: str,
    *,
    n_resamples: int,
    seed: int = 0,
    correction: str = "holm",
    alpha: float = 0.05,
    task_configs: dict[str, Any] | None = None,
    retrieval: Any = None,
    seeds: list[int] | None = None,
    margin: float = DEFAULT_MARGIN,
    models: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Every hypothesis of the run tested on every seed, judged per seed within its family.

    Monte Carlo tests get :func:`~tli.compare.significance.family_resamples` resamples for their family
    (at least ``n_resamples``); bootstrap CIs use ``n_resamples``.

    Returns:
        One row per hypothesis and seed: ``model, task, language, metric, strategy, reference, seed, kind,
        family, test, difference, ci95_low, ci95_high, interval, p_value, p_floor, n_resamples, se,
        p_adjusted, verdict, n, score, reference_score, claim`` (``margin`` for non-inferiority,
        ``other_model`` for interactions; retrieval rows name systems in ``strategy`` and ``reference`` and add
        ``system``, ``p_randomisation``, ``seed_independent``).
    """
    task_configs = task_configs or {}
    seeds = seeds or sorted({c.seed for c in cells if c.seed is not None}) or [0]
    rows = _Rows()
    out: list[dict[str, Any]] = []
    for cell_seed in seeds:
        groups = seed_groups(cells, cell_seed)
        hypotheses = plan_hypotheses(
            {key: set(names) for key, names in groups.items()},
            strategies,
            reference,
            task_configs=task_configs,
            retrieval=retrieval,
            models=models,
        )
        sizes = defaultdict(int)
        for h in hypotheses:
            sizes[h.family] += 1
        judged: dict[str, list[tuple[dict, Claim]]] = defaultdict(list)
        for h in hypotheses:
            group = groups[(h.model, h.task, h.language)]
            other = groups.get((h.other_model, h.task, h.language)) if h.other_model else None
            result = run_hypothesis(
                h,
                group,
                rows,
                other=other,
                n_resamples=family_resamples(sizes[h.family], alpha, n_resamples),
                n_boot=n_resamples,
                seed=seed,
                task_configs=task_configs,
                retrieval=retrieval,
                margin=margin,
            )
            extra: dict[str, Any] = {}
            if is_retrieval(h.task) and h.kind != "interaction":
                cell_a, cell_b = group[h.strategy], group[h.reference]
                extra = {
                    "system": True,
                    "p_randomisation": result.p_randomisation,
                    "seed_independent": cell_a.seed is None and cell_b.seed is None,
                }
            judged[h.family].append(_row(h, result, cell_seed, margin, extra))
        for items in judged.values():
            judge([claim for _, claim in items], correction=correction, alpha=alpha)
            for row, claim in items:
                out.append(
                    row | {"p_adjusted": claim.p_adjusted, "verdict": claim.verdict, "claim": claim.claim}
                )
    return out


# --------------------------------------------------------------------------------------------------
# Across seeds
# --------------------------------------------------------------------------------------------------

_KEY = ("model", "task", "language", "metric", "strategy", "reference", "kind", "other_model")


def comparisons_across_seeds(
    rows: list[dict[str, Any]], *, correction: str = "holm", alpha: float = 0.05
) -> list[dict[str, Any]]:
    """One row per hypothesis: the per-seed results combined by :func:`tli.claims.summarise_seeds`
    (random effects over seeds; one seed: that seed's test), judged again within each family.

    A comparison whose two systems have no seed (BM25 against a zero-shot retriever) is one result repeated in
    every seed: it is counted once, not as independent replications.
    """
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row.get(k) for k in _KEY)].append(row)
    summaries, combined = [], []
    for versions in groups.values():
        versions = sorted(versions, key=lambda v: v["seed"])
        if versions[0].get("seed_independent"):
            versions = versions[:1]
        claims = [
            {
                "claim": v["claim"],
                "kind": "non-inferiority" if v["kind"] == "non-inferiority" else "difference",
                "metric": v["metric"],
                "test": v["test"],
                "effect": v["difference"],
                "ci95_low": v["ci95_low"],
                "ci95_high": v["ci95_high"],
                "p": v["p_value"],
                "n": v["n"],
                "se": v["se"],
                "margin": v.get("margin"),
                "expect": "increase",
                "verdict": v["verdict"],
                "p_adjusted": v["p_adjusted"],
                "interval": v["interval"],
                "note": "",
            }
            for v in versions
        ]
        summary = summarise_seeds(claims, alpha=alpha)
        summaries.append(summary)
        first = versions[0]
        several = len(versions) > 1
        combined.append(
            {k: first.get(k) for k in _KEY if first.get(k) is not None}
            | {
                "family": first["family"],
                "n_seeds": len(versions),
                "seeds": [v["seed"] for v in versions],
                "n": first["n"],
                "score": float(np.mean([v["score"] for v in versions])),
                "reference_score": float(np.mean([v["reference_score"] for v in versions])),
                "p_floor": 0.0 if several else first["p_floor"],
                "p_floor_per_seed": max(v["p_floor"] for v in versions),
                "n_resamples": first["n_resamples"],
                **{k: first[k] for k in ("margin", "system") if k in first},
            }
        )
    judge_summaries(summaries, correction=correction, alpha=alpha, families=[c["family"] for c in combined])
    for row, summary in zip(combined, summaries, strict=True):
        row.update(
            difference=summary["effect"],
            difference_sd=summary.get("effect_sd", 0.0),
            ci95_low=summary["ci95_low"],
            ci95_high=summary["ci95_high"],
            interval=summary.get("interval", ONE_SEED_INTERVAL),
            p_value=summary["p"],
            p_adjusted=summary["p_adjusted"],
            verdict=summary["verdict"],
            verdicts=summary.get("verdicts", []),
            test=summary["test"],
            se=summary.get("se"),
            tau2=summary.get("tau2"),
            note=summary.get("note", ""),
            claim=summary["claim"],
        )
    return combined


# --------------------------------------------------------------------------------------------------
# Families and questions
# --------------------------------------------------------------------------------------------------


def families(comparisons: list[dict[str, Any]], *, correction: str, alpha: float) -> list[dict[str, Any]]:
    """Each family of the run: its size, tests, correction and **floor** — the smallest adjusted p any of its
    hypotheses could reach on these examples whatever the data (``m · min(p_floor)`` under Holm or BH, the
    smallest ``p_floor`` without correction; with several seeds the across-seed t test has none, and
    ``smallest_adjusted_p_per_seed`` is the per-seed tests' floor). A floor at or above ``alpha`` means no
    verdict was reachable."""
    out = []
    names = [q.key for q in QUESTIONS] + [EXPLORATORY]
    for name in names:
        rows = [c for c in comparisons if c["family"] == name]
        if not rows:
            continue
        m = len(rows)
        floor = min(r["p_floor"] for r in rows)
        smallest = floor if correction == "none" else min(1.0, m * floor)
        seed_floor = min(r.get("p_floor_per_seed", r["p_floor"]) for r in rows)
        question = question_of(name)
        out.append(
            {
                "name": name,
                "question": question.text if question else "comparisons no research question asks",
                "hypotheses": m,
                "correction": correction,
                "alpha": alpha,
                "tests": sorted({r["test"] for r in rows}),
                "metrics": sorted({r["metric"] for r in rows}),
                "n_resamples": max(r["n_resamples"] for r in rows),
                "smallest_adjusted_p": smallest,
                "smallest_adjusted_p_per_seed": seed_floor
                if correction == "none"
                else min(1.0, m * seed_floor),
                "can_reach_alpha": smallest < alpha,
            }
        )
    return out


def overall_answer(verdicts: list[str]) -> str:
    """A question's answer from its claims' verdicts (the rule in the module docstring)."""
    if not verdicts:
        return "not measured"
    supported, contradicted = verdicts.count("supported"), verdicts.count("contradicted")
    if supported == len(verdicts):
        return "supported"
    if contradicted == len(verdicts):
        return "contradicted"
    if supported and contradicted:
        return "mixed"
    if supported:
        return "partly supported"
    if contradicted:
        return "partly contradicted"
    return "inconclusive"


def answer_questions(
    comparisons: list[dict[str, Any]], strategies: list[str], tasks: list[str], models: list[str]
) -> list[dict[str, Any]]:
    """The research questions with the claims of their families (or why they are not measured here)."""
    claims = []
    for question in QUESTIONS:
        relevant = [c for c in comparisons if c.get("family") == question.key]
        if not relevant:
            claims.append(
                {
                    "question": question.text,
                    "key": question.key,
                    "claim": "not measured in this experiment",
                    "verdict": "not measured",
                    "n": 0,
                    "reason": _missing(question, strategies, tasks),
                }
            )
            continue
        for c in relevant:
            claims.append(
                {
                    "question": question.text,
                    "key": question.key,
                    "claim": c["claim"],
                    "kind": c.get("kind", "difference"),
                    "verdict": c["verdict"],
                    "n": c["n"],
                    "difference": c["difference"],
                    "ci95_low": c["ci95_low"],
                    "ci95_high": c["ci95_high"],
                    "p_adjusted": c["p_adjusted"],
                    "n_seeds": c.get("n_seeds", 1),
                    "family": question.key,
                }
            )
    return claims


def question_answers(
    comparisons: list[dict[str, Any]], strategies: list[str], tasks: list[str], models: list[str]
) -> list[dict[str, Any]]:
    """One overall answer per research question (:func:`overall_answer` over its family's claims), with the
    counts behind it and, for questions that ask, whether it holds in every model."""
    out = []
    for question in QUESTIONS:
        rows = [c for c in comparisons if c.get("family") == question.key]
        verdicts = [r["verdict"] for r in rows]
        answer = {
            "key": question.key,
            "question": question.text,
            "answer": overall_answer(verdicts),
            "claims": len(rows),
            "supported": verdicts.count("supported"),
            "contradicted": verdicts.count("contradicted"),
            "inconclusive": verdicts.count("inconclusive"),
            "note": question.note,
        }
        if not rows:
            answer["reason"] = _missing(question, strategies, tasks)
        if question.across_models and rows:
            answer["across_models"] = _across_models(question, rows, comparisons)
        out.append(answer)
    return out


def _across_models(question: Question, rows: list[dict[str, Any]], comparisons: list[dict[str, Any]]) -> str:
    """Does the answer hold in every model? Shown only by a claim supported in every model (an intersection–
    union test: every per-model claim is already corrected in the family); the interaction rows say whether
    the effect's size differs between models."""
    models = sorted({r["model"] for r in rows})
    if len(models) < 2:
        return "one model: not tested across models"
    by_claim: dict[tuple, dict[str, str]] = defaultdict(dict)
    for r in rows:
        by_claim[(r["strategy"], r["reference"], r["task"], r["language"], r.get("kind"))][r["model"]] = r[
            "verdict"
        ]
    held = [
        f"{a} vs {b} on {task} ({language})"
        for (a, b, task, language, _), verdicts in by_claim.items()
        if len(verdicts) == len(models) and set(verdicts.values()) == {"supported"}
    ]
    interactions = [
        c
        for c in comparisons
        if c.get("kind") == "interaction" and (c["strategy"], c["reference"]) in question.pairs
    ]
    differing = [c for c in interactions if c["verdict"] != "inconclusive"]
    text = (
        f"supported in every model ({len(models)}) for: {'; '.join(held)}"
        if held
        else f"no claim supported in every model ({len(models)})"
    )
    if interactions:
        text += (
            f"; model × strategy interaction (exploratory): {len(differing)} of {len(interactions)} "
            "differ significantly between models"
        )
    return text


def _missing(question: Question, strategies: list[str], tasks: list[str]) -> str:
    if not any(t in tasks for t in question.tasks):
        return f"needs task {' or '.join(question.tasks)}"
    names = {s for pair in question.pairs + question.noninferior for s in pair}
    conditions = sorted(n.removeprefix("dense:") for n in names if n.removeprefix("dense:") in _CONDITIONS)
    if conditions:
        return (
            f"needs retrieval.dense_retriever with conditions {', '.join(conditions)} "
            "(no finished cells for its comparisons otherwise)"
        )
    needed = sorted({n.removeprefix("dense:") for n in names} - set(strategies))
    return f"needs strategies {', '.join(needed)}" if needed else "no finished cells for its comparisons"


_CONDITIONS = ("zero-shot", "direct-transfer", "synthetic", "mix")
