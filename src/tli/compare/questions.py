"""The research questions a comparison answers, the families its hypotheses are corrected in, and the answers.

Each comparison is a paired test of one strategy (or retrieval system) against another on the same examples
(:mod:`tli.compare.comparisons`), phrased as a claim and judged with the other hypotheses of its **family**:

- every research question (:data:`QUESTIONS`, from the briefs the project started from) is its own family:
  its pairs × task-languages × models, on each task's primary metric (:func:`primary_metric`) only;
- every other comparison — other metrics, every strategy against the experiment's reference, systems
  against BM25, fusion against its dense part, conditions against zero-shot, the model × strategy
  interactions — is one family labelled :data:`EXPLORATORY`.

So a question's answer depends only on its own hypotheses: adding a diagnostic comparison, a metric or a
baseline changes the exploratory family, never a question's (``tests/test_compare.py`` checks this). Within a
family p-values are adjusted by the experiment's ``correction`` (Holm by default).

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

from tli.compare.results import Comparison
from tli.retrieval.biencoder import CONDITIONS
from tli.tasks.harness import KEY as HARNESS_KEY
from tli.tasks.harness import PREFIX as HARNESS_PREFIX

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
"""Default non-inferiority margin: 1 accuracy point (why: docs/concepts/statistics.md, "Non-inferiority")."""
ZERO_SHOT = "none"


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
        "reasoning-preserved",
        "Does early-layer LoRA / TLI preserve the base model's zero-shot reasoning and comprehension on the "
        "lm-evaluation-harness tasks of the experiment (Belebele, XCOPA, AfroBench…) better than full "
        "fine-tuning?",
        (("lora-early", "full"), ("tli+lora", "full"), ("tli", "full")),
        (HARNESS_KEY,),
        noninferior=(("lora-early", ZERO_SHOT), ("tli+lora", ZERO_SHOT), ("tli", ZERO_SHOT)),
        note="every `lm-eval:<task>` of the experiment, on its primary metric (acc when it has one); "
        "'preserves' = not worse than the zero-shot base by more than the margin (non-inferiority)",
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
    if task.startswith(HARNESS_PREFIX):
        return harness_primary_metric(getattr(config, "metrics", None) or ("acc",))
    metric = PRIMARY_METRIC.get(task, "")
    compared = getattr(config, "compare_metrics", None)
    if compared and metric not in compared:
        return compared[0]
    return metric


def harness_primary_metric(metrics: tuple[str, ...] | list[str]) -> str:
    """A harness task's primary metric: ``acc`` when it has one (the harness's headline for multiple choice),
    else its first metric."""
    return "acc" if "acc" in metrics else metrics[0]


def covers(question: Question, task: str) -> bool:
    """Whether ``question`` asks about ``task`` (a question citing ``lm-eval`` asks about every harness task)."""
    return task in question.tasks or (task.startswith(HARNESS_PREFIX) and HARNESS_KEY in question.tasks)


def family_of(kind: str, a: str, b: str, task: str, metric: str, config: Any = None) -> str:
    """The family a hypothesis is corrected in: the question that asks it, else :data:`EXPLORATORY`."""
    if kind == "interaction" or metric != primary_metric(task, config):
        return EXPLORATORY
    for question in QUESTIONS:
        pairs = question.noninferior if kind == "non-inferiority" else question.pairs
        if covers(question, task) and (a, b) in pairs:
            return question.key
    return EXPLORATORY


def question_of(key: str) -> Question | None:
    return next((q for q in QUESTIONS if q.key == key), None)


# --------------------------------------------------------------------------------------------------
# Families and answers
# --------------------------------------------------------------------------------------------------


def families(comparisons: list[Comparison], *, correction: str, alpha: float) -> list[dict[str, Any]]:
    """Each family of the run: its size, tests, correction and **floor** — the smallest adjusted p any of its
    hypotheses could reach on these examples whatever the data (``m · min(p_floor)`` under Holm or BH, the
    smallest ``p_floor`` without correction; with several seeds the across-seed t test has none, and
    ``smallest_adjusted_p_per_seed`` is the per-seed tests' floor). A floor at or above ``alpha`` means no
    verdict was reachable."""
    out = []
    names = [q.key for q in QUESTIONS] + [EXPLORATORY]
    for name in names:
        rows = [c for c in comparisons if c.family == name]
        if not rows:
            continue
        m = len(rows)
        floor = min(r.p_floor for r in rows)
        smallest = floor if correction == "none" else min(1.0, m * floor)
        seed_floor = min(r.p_floor_per_seed for r in rows)
        question = question_of(name)
        out.append(
            {
                "name": name,
                "question": question.text if question else "comparisons no research question asks",
                "hypotheses": m,
                "correction": correction,
                "alpha": alpha,
                "tests": sorted({r.test for r in rows}),
                "metrics": sorted({r.metric for r in rows}),
                "n_resamples": max(r.n_resamples for r in rows),
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
    comparisons: list[Comparison], strategies: list[str], tasks: list[str], models: list[str]
) -> list[dict[str, Any]]:
    """The research questions with the claims of their families (or why they are not measured here)."""
    claims = []
    for question in QUESTIONS:
        relevant = [c for c in comparisons if c.family == question.key]
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
                    "claim": c.claim,
                    "kind": c.kind,
                    "verdict": c.verdict,
                    "n": c.n,
                    "difference": c.difference,
                    "ci95_low": c.ci95_low,
                    "ci95_high": c.ci95_high,
                    "p_adjusted": c.p_adjusted,
                    "n_seeds": c.n_seeds,
                    "family": question.key,
                }
            )
    return claims


def question_answers(
    comparisons: list[Comparison], strategies: list[str], tasks: list[str], models: list[str]
) -> list[dict[str, Any]]:
    """One overall answer per research question (:func:`overall_answer` over its family's claims), with the
    counts behind it and, for questions that ask, whether it holds in every model."""
    out = []
    for question in QUESTIONS:
        rows = [c for c in comparisons if c.family == question.key]
        verdicts = [r.verdict for r in rows]
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


def _across_models(question: Question, rows: list[Comparison], comparisons: list[Comparison]) -> str:
    """Does the answer hold in every model? Shown only by a claim supported in every model (an intersection–
    union test: every per-model claim is already corrected in the family); the interaction rows say whether
    the effect's size differs between models."""
    models = sorted({r.model for r in rows})
    if len(models) < 2:
        return "one model: not tested across models"
    by_claim: dict[tuple, dict[str, str]] = defaultdict(dict)
    for r in rows:
        by_claim[(r.strategy, r.reference, r.task, r.language, r.kind)][r.model] = r.verdict
    held = [
        f"{a} vs {b} on {task} ({language})"
        for (a, b, task, language, _), verdicts in by_claim.items()
        if len(verdicts) == len(models) and set(verdicts.values()) == {"supported"}
    ]
    interactions = [
        c for c in comparisons if c.kind == "interaction" and (c.strategy, c.reference) in question.pairs
    ]
    differing = [c for c in interactions if c.verdict != "inconclusive"]
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
    if not any(covers(question, t) for t in tasks):
        return f"needs task {' or '.join(question.tasks)}"
    names = {s for pair in question.pairs + question.noninferior for s in pair}
    conditions = sorted(n.removeprefix("dense:") for n in names if n.removeprefix("dense:") in CONDITIONS)
    if conditions:
        return (
            f"needs retrieval.dense_retriever with conditions {', '.join(conditions)} "
            "(no finished cells for its comparisons otherwise)"
        )
    needed = sorted({n.removeprefix("dense:") for n in names} - set(strategies))
    return f"needs strategies {', '.join(needed)}" if needed else "no finished cells for its comparisons"
