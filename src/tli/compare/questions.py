"""Comparisons between strategies, and the research questions they answer.

Each comparison is a paired test of one strategy against another on the same examples
(:func:`tli.compare.significance.paired_difference`), phrased as a claim "A scores higher <metric> than B
on <task> (<language>)" and judged with the other comparisons of the run (:func:`tli.claims.judge`:
Holm by default). Every strategy is compared with the experiment's reference (``none`` = the zero-shot
base), and with full fine-tuning where a research question asks for it.

The research questions come from the briefs the project started from (``shared/seeds/``); each is answered
by the comparisons it needs, or marked "not measured" when the experiment lacks a strategy or task.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from tli.claims import Claim, across_seeds, judge
from tli.compare.cells import Cell, read_rows
from tli.compare.significance import paired_difference
from tli.tasks import get_task

PRIMARY_METRIC = {
    "xlsum": "rougeL",
    "xnli": "accuracy",
    "xquad": "mrr@10",
    "tydi": "mrr@10",
    "mrtydi": "mrr@100",
}
"""The metric a question and the score-vs-cost plot use for each task."""


@dataclass(frozen=True)
class Question:
    """A research question and the comparisons that answer it."""

    key: str
    text: str
    pairs: tuple[tuple[str, str], ...]
    """(strategy, compared with) pairs; the claim is "the first scores higher than the second"."""
    tasks: tuple[str, ...]
    metrics: tuple[str, ...] = ()
    """Metrics of the claim (default: the task's primary metric)."""


QUESTIONS = (
    Question(
        "finetuning-xlsum",
        "How do fine-tuning strategies (full fine-tuning vs LoRA) affect summarisation of a low-resource "
        "language (XL-Sum), and does that hold across models?",
        (("lora", "full"), ("qlora", "full")),
        ("xlsum",),
        ("rougeL", "bleu"),
    ),
    Question(
        "tli-xlsum",
        "Does early-layer LoRA / TLI beat full fine-tuning on Swahili XL-Sum (ROUGE, BLEU)?",
        (("tli+lora", "full"), ("lora-early", "full"), ("tli", "full")),
        ("xlsum",),
        ("rougeL", "bleu"),
    ),
    Question(
        "nli-preserved",
        "Does early-layer LoRA preserve zero-shot reasoning (XNLI) better than full fine-tuning?",
        (
            ("lora-early", "full"),
            ("tli+lora", "full"),
            ("tli", "full"),
            ("full", "none"),
            ("lora-early", "none"),
        ),
        ("xnli",),
        ("accuracy",),
    ),
    Question(
        "tli-retrieval",
        "How does early-layer LoRA for lexical alignment compare with full fine-tuning in zero-shot "
        "cross-lingual retrieval (XQuAD; TyDi / Mr. TyDi for Swahili)?",
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


def comparison_pairs(strategies: list[str], reference: str) -> list[tuple[str, str]]:
    """Every strategy against the reference, plus the pairs the research questions need."""
    pairs = [(s, reference) for s in strategies if s != reference]
    for question in QUESTIONS:
        for a, b in question.pairs:
            if a in strategies and b in strategies and (a, b) not in pairs:
                pairs.append((a, b))
    return pairs


def comparison_entry(
    result, *, text: str, test: str, p: float | None = None, extra: dict[str, Any] | None = None, **where: Any
) -> tuple[dict[str, Any], Claim]:
    """One paired comparison as a ``comparisons`` row and its :class:`Claim` (judged later, with the run's others).

    Args:
        result: a :class:`~tli.compare.significance.PairedResult` of ``strategy`` against ``reference``.
        p: the p-value the verdict uses (default: the randomisation test's).
        **where: ``model, task, language, metric, strategy, reference, seed``.
    """
    p = result.p_value if p is None else p
    claim = Claim(
        claim=text,
        kind="difference",
        metric=where["metric"],
        test=test,
        effect=result.difference,
        ci95_low=result.ci95_low,
        ci95_high=result.ci95_high,
        p=p,
        n=result.n,
    )
    row = {
        **where,
        "difference": result.difference,
        "ci95_low": result.ci95_low,
        "ci95_high": result.ci95_high,
        "p_value": p,
        "n": result.n,
        "score": result.score_a,
        "reference_score": result.score_b,
        **(extra or {}),
    }
    return row, claim


def _claim_text(a: str, b: str, metric: str, task: str, language: str, model: str) -> str:
    return f"{a} scores higher {metric} than {b} on {task} ({language}), model {model}"


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
) -> list[dict[str, Any]]:
    """Paired comparisons of every pair on every (model, task, language, metric), judged per seed.

    Retrieval cells (those with a ``system``) are compared system against system
    (:func:`tli.compare.retrieval.retrieval_comparisons`, with ``retrieval`` the experiment's plan); their
    claims are judged together with the others of the same seed.

    Returns:
        One row per comparison and seed: ``model, task, language, metric, strategy, reference, seed,
        difference, ci95_low, ci95_high, p_value, p_adjusted, verdict, n, score, reference_score``
        (retrieval rows name systems in ``strategy`` and ``reference``).
    """
    done = {
        (c.model, c.strategy, c.task, c.language, c.seed): c
        for c in cells
        if c.status == "done" and getattr(c, "system", None) is None
    }
    rows_cache: dict[str, list] = {}
    by_seed: dict[int, list[tuple[dict[str, Any], Claim]]] = defaultdict(list)
    keys = sorted({(c.model, c.task, c.language, c.seed) for c in done.values()})
    for model, task, language, cell_seed in keys:
        task_obj = get_task(task)
        for a, b in comparison_pairs(strategies, reference):
            cell_a, cell_b = (
                done.get((model, a, task, language, cell_seed)),
                done.get((model, b, task, language, cell_seed)),
            )
            if cell_a is None or cell_b is None:
                continue
            rows_a = rows_cache.setdefault(cell_a.predictions, read_rows(cell_a.predictions))
            rows_b = rows_cache.setdefault(cell_b.predictions, read_rows(cell_b.predictions))
            config = (task_configs or {}).get(task)
            for metric in task_obj.metrics:
                mean_of = task_obj.mean_metrics.get(metric) if hasattr(task_obj, "mean_metrics") else None
                result = paired_difference(
                    rows_a,
                    rows_b,
                    mean_of=mean_of,
                    corpus_score=None if mean_of else _scorer(task_obj, metric, config),
                    n_resamples=n_resamples,
                    rng=seed,
                )
                row, claim = comparison_entry(
                    result,
                    text=_claim_text(a, b, metric, task, language, model),
                    test="approximate randomisation (paired)",
                    model=model,
                    task=task,
                    language=language,
                    metric=metric,
                    strategy=a,
                    reference=b,
                    seed=cell_seed,
                )
                by_seed[cell_seed].append((row, claim))
    if retrieval is not None:
        from tli.compare.retrieval import retrieval_comparisons

        extra = retrieval_comparisons(
            cells,
            retrieval,
            strategies,
            reference,
            task_configs or {},
            seeds or sorted({c.seed for c in cells if c.seed is not None}) or [0],
            n_resamples=n_resamples,
            seed=seed,
        )
        for cell_seed, items in extra.items():
            by_seed[cell_seed].extend(items)
    rows = []
    for items in by_seed.values():
        judge([claim for _, claim in items], correction=correction, alpha=alpha)
        for row, claim in items:
            rows.append(
                row | {"p_adjusted": claim.p_adjusted, "verdict": claim.verdict, "claim": claim.claim}
            )
    return rows


def _scorer(task, metric: str, config):
    """rows → the task's corpus score of ``metric`` (a closure that binds its arguments now)."""
    return lambda rows: task.corpus_score(metric, rows, config)


def comparisons_across_seeds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per comparison: mean ± sd of the difference over seeds and the verdict every seed reached."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[
            (row["model"], row["task"], row["language"], row["metric"], row["strategy"], row["reference"])
        ].append(row)
    combined = []
    for key, versions in groups.items():
        claims = [
            [{**v, "kind": "difference", "effect": v["difference"], "p": v["p_value"], "expect": "increase"}]
            for v in sorted(versions, key=lambda v: v["seed"])
        ]
        summary = across_seeds(claims)[0]
        combined.append(
            dict(zip(("model", "task", "language", "metric", "strategy", "reference"), key, strict=True))
            | {
                "difference": summary["effect"],
                "difference_sd": summary.get("effect_sd", 0.0),
                "ci95_low": summary["ci95_low"],
                "ci95_high": summary["ci95_high"],
                "p_value": summary["p"],
                "p_adjusted": summary["p_adjusted"],
                "verdict": summary["verdict"],
                "verdicts": summary.get("verdicts", []),
                "n": summary["n"],
                "n_seeds": len(versions),
                "claim": versions[0]["claim"],
            }
        )
    return combined


def answer_questions(
    comparisons: list[dict[str, Any]], strategies: list[str], tasks: list[str], models: list[str]
) -> list[dict[str, Any]]:
    """The research questions with the claims that answer them (or why they are not measured here)."""
    claims = []
    for question in QUESTIONS:
        relevant = [
            c
            for c in comparisons
            if (c["strategy"], c["reference"]) in question.pairs
            and c["task"] in question.tasks
            and c["metric"] in (question.metrics or (PRIMARY_METRIC.get(c["task"]),))
        ]
        if not relevant:
            missing = _missing(question, strategies, tasks)
            claims.append(
                {
                    "question": question.text,
                    "key": question.key,
                    "claim": "not measured in this experiment",
                    "verdict": "not measured",
                    "n": 0,
                    "reason": missing,
                }
            )
            continue
        for c in relevant:
            claims.append(
                {
                    "question": question.text,
                    "key": question.key,
                    "claim": c["claim"],
                    "verdict": c["verdict"],
                    "n": c["n"],
                    "difference": c["difference"],
                    "p_adjusted": c["p_adjusted"],
                    "n_seeds": c.get("n_seeds", 1),
                }
            )
    return claims


def _missing(question: Question, strategies: list[str], tasks: list[str]) -> str:
    if not question.pairs:
        return "needs the dense-retrieval conditions of the retrieval tasks (xquad, mrtydi, tydi)"
    if not any(t in tasks for t in question.tasks):
        return f"needs task {' or '.join(question.tasks)}"
    names = {s for pair in question.pairs for s in pair}
    conditions = sorted(n.removeprefix("dense:") for n in names if n.removeprefix("dense:") in _CONDITIONS)
    if conditions:
        return (
            f"needs retrieval.dense_retriever with conditions {', '.join(conditions)} "
            "(no finished cells for its comparisons otherwise)"
        )
    needed = sorted({n.removeprefix("dense:") for n in names} - set(strategies))
    return f"needs strategies {', '.join(needed)}" if needed else "no finished cells for its comparisons"


_CONDITIONS = ("zero-shot", "direct-transfer", "synthetic", "mix")
