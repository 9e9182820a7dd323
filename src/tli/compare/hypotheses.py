"""The hypotheses of a run: which strategies and retrieval systems are compared where, and in which family.

:func:`plan_hypotheses` lists them from what was scored where (one seed): every strategy against the
experiment's reference and the research questions' pairs on every task metric, non-inferiority against the
zero-shot base, the retrieval systems' comparisons (:func:`system_pairs`), and the model × strategy
interactions of the questions that ask about several models. Each is phrased as a claim
(:meth:`Hypothesis.text`) and tested by :mod:`tli.compare.comparisons`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tli.compare.questions import (
    EXPLORATORY,
    NONINFERIORITY_METRIC,
    QUESTIONS,
    ZERO_SHOT,
    family_of,
    primary_metric,
)
from tli.compare.schema import RetrievalSettings
from tli.tasks import get_task, is_retrieval
from tli.tasks.harness import PREFIX as HARNESS_PREFIX


def comparison_pairs(strategies: list[str], reference: str) -> list[tuple[str, str]]:
    """Every strategy against the reference, plus the pairs the research questions need."""
    pairs = [(s, reference) for s in strategies if s != reference]
    for question in QUESTIONS:
        for a, b in question.pairs:
            if a in strategies and b in strategies and (a, b) not in pairs:
                pairs.append((a, b))
    return pairs


def system_pairs(
    present: set[str], settings: RetrievalSettings, strategies: list[str], reference: str
) -> list[tuple[str, str]]:
    """The system comparisons of one (model, task, language): every system against the retrieval reference,
    every strategy against the reference strategy, each fusion against its dense part, each trained
    condition against zero-shot, and the research questions' pairs — those whose two systems both ran."""
    pairs: list[tuple[str, str]] = []

    def add(a: str, b: str) -> None:
        if a != b and a in present and b in present and (a, b) not in pairs:
            pairs.append((a, b))

    if settings.reference:
        for system in sorted(present):
            add(system, settings.reference)
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
    retrieval: RetrievalSettings | None = None,
    models: list[str] | None = None,
) -> list[Hypothesis]:
    """Every hypothesis of a run (one seed) from what was scored where, each with its family.

    Non-retrieval tasks: :func:`comparison_pairs` on every task metric, and non-inferiority of every strategy
    against the zero-shot base on :data:`NONINFERIORITY_METRIC` (on a harness task, its primary metric).
    Retrieval tasks: :func:`system_pairs` on the task's ``compare_metrics``. Questions that ask about several
    models add model × strategy interactions.
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
        if task.startswith(HARNESS_PREFIX):  # "reasoning preserved" on every harness task
            metric = primary_metric(task, config)
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
