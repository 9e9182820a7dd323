"""Testing the hypotheses of a run on its cells' prediction files: per seed, then combined over seeds.

Each hypothesis (:mod:`tli.compare.hypotheses`) is tested per seed by the paired tests of
:mod:`tli.compare.significance` and judged per seed within its family (:mod:`tli.compare.questions`). With
several seeds the per-seed results are then combined by the random-effects meta-analysis of :mod:`tli.seeds`
(:func:`tli.claims.summarise_seeds`); the combined rows are judged within their family again, and they are
the verdicts (``comparisons`` in ``results.json``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from tli.claims import Claim, judge, judge_summaries, summarise_seeds
from tli.compare.cell_store import read_rows
from tli.compare.hypotheses import Hypothesis, plan_hypotheses
from tli.compare.questions import DEFAULT_MARGIN
from tli.compare.results import ONE_SEED_INTERVAL, Comparison, SeedComparison
from tli.compare.schema import Cell
from tli.compare.significance import (
    PairedDifference,
    align,
    family_resamples,
    paired_difference,
    paired_noninferiority,
)
from tli.tasks import get_task, is_retrieval


def seed_groups(cells: list[Cell], seed: int) -> dict[tuple[str, str, str], dict[str, Cell]]:
    """(model, task, language) → name → the finished cell of ``seed`` (cells without a seed, such as BM25, in
    every seed; cells without a model, BM25, in every model's groups)."""
    done = [c for c in cells if c.status == "done" and c.seed in (seed, None)]
    models = sorted({c.model for c in done if c.model is not None})
    out: dict[tuple[str, str, str], dict[str, Cell]] = defaultdict(dict)
    for c in done:
        for model in [c.model] if c.model is not None else models:
            out[(model, c.task, c.language)][c.name] = c
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
    h: Hypothesis, result: PairedDifference, seed: int, margin: float, retrieval: dict[str, Any]
) -> tuple[SeedComparison, Claim]:
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
    row = SeedComparison(
        model=h.model,
        task=h.task,
        language=h.language,
        metric=h.metric,
        strategy=h.strategy,
        reference=h.reference,
        seed=seed,
        kind=h.kind,
        family=h.family,
        test=result.test,
        difference=result.difference,
        ci95_low=result.ci95_low,
        ci95_high=result.ci95_high,
        interval=ONE_SEED_INTERVAL,
        p_value=result.p_value,
        p_floor=result.p_floor,
        n_resamples=result.n_resamples,
        se=result.se,
        n=result.n,
        score=result.score_a,
        reference_score=result.score_b,
        margin=result.margin,
        other_model=h.other_model,
        **retrieval,
    )
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
) -> list[SeedComparison]:
    """Every hypothesis of the run tested on every seed, judged per seed within its family.

    Monte Carlo tests get :func:`~tli.compare.significance.family_resamples` resamples for their family
    (at least ``n_resamples``); bootstrap CIs use ``n_resamples``.

    Returns:
        One :class:`SeedComparison` per hypothesis and seed (retrieval rows name systems in ``strategy`` and
        ``reference``).
    """
    task_configs = task_configs or {}
    seeds = seeds or sorted({c.seed for c in cells if c.seed is not None}) or [0]
    rows = _Rows()
    out: list[SeedComparison] = []
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
        judged: dict[str, list[tuple[SeedComparison, Claim]]] = defaultdict(list)
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
            retrieval_fields: dict[str, Any] = {}
            if is_retrieval(h.task) and h.kind != "interaction":
                cell_a, cell_b = group[h.strategy], group[h.reference]
                retrieval_fields = {
                    "system": True,
                    "p_randomisation": result.p_randomisation,
                    "seed_independent": cell_a.seed is None and cell_b.seed is None,
                }
            judged[h.family].append(_row(h, result, cell_seed, margin, retrieval_fields))
        for items in judged.values():
            judge([claim for _, claim in items], correction=correction, alpha=alpha)
            for row, claim in items:
                row.p_adjusted, row.verdict, row.claim = claim.p_adjusted, claim.verdict, claim.claim
                out.append(row)
    return out


# --------------------------------------------------------------------------------------------------
# Across seeds
# --------------------------------------------------------------------------------------------------


def _hypothesis_key(row: SeedComparison) -> tuple:
    return (
        row.model,
        row.task,
        row.language,
        row.metric,
        row.strategy,
        row.reference,
        row.kind,
        row.other_model,
    )


def _seed_claim(v: SeedComparison) -> dict[str, Any]:
    """A per-seed result as :func:`tli.claims.summarise_seeds` reads it."""
    return {
        "claim": v.claim,
        "kind": "non-inferiority" if v.kind == "non-inferiority" else "difference",
        "metric": v.metric,
        "test": v.test,
        "effect": v.difference,
        "ci95_low": v.ci95_low,
        "ci95_high": v.ci95_high,
        "p": v.p_value,
        "n": v.n,
        "se": v.se,
        "margin": v.margin,
        "expect": "increase",
        "verdict": v.verdict,
        "p_adjusted": v.p_adjusted,
        "interval": v.interval,
        "note": "",
    }


def comparisons_across_seeds(
    rows: list[SeedComparison], *, correction: str = "holm", alpha: float = 0.05
) -> list[Comparison]:
    """One :class:`Comparison` per hypothesis: the per-seed results combined by
    :func:`tli.claims.summarise_seeds` (random effects over seeds; one seed: that seed's test), judged again
    within each family.

    A comparison whose two systems have no seed (BM25 against a zero-shot retriever) is one result repeated in
    every seed: it is counted once, not as independent replications.
    """
    groups: dict[tuple, list[SeedComparison]] = defaultdict(list)
    for row in rows:
        groups[_hypothesis_key(row)].append(row)
    summaries, combined = [], []
    for versions in groups.values():
        versions = sorted(versions, key=lambda v: v.seed)
        if versions[0].seed_independent:
            versions = versions[:1]
        summaries.append(summarise_seeds([_seed_claim(v) for v in versions], alpha=alpha))
        first = versions[0]
        combined.append(
            Comparison(
                model=first.model,
                task=first.task,
                language=first.language,
                metric=first.metric,
                strategy=first.strategy,
                reference=first.reference,
                kind=first.kind,
                other_model=first.other_model,
                family=first.family,
                n_seeds=len(versions),
                seeds=[v.seed for v in versions],
                n=first.n,
                score=float(np.mean([v.score for v in versions])),
                reference_score=float(np.mean([v.reference_score for v in versions])),
                p_floor=0.0 if len(versions) > 1 else first.p_floor,
                p_floor_per_seed=max(v.p_floor for v in versions),
                n_resamples=first.n_resamples,
                margin=first.margin,
                system=first.system,
            )
        )
    judge_summaries(summaries, correction=correction, alpha=alpha, families=[c.family for c in combined])
    for row, summary in zip(combined, summaries, strict=True):
        row.difference = summary["effect"]
        row.difference_sd = summary.get("effect_sd", 0.0)
        row.ci95_low, row.ci95_high = summary["ci95_low"], summary["ci95_high"]
        row.interval = summary.get("interval", ONE_SEED_INTERVAL)
        row.p_value, row.p_adjusted = summary["p"], summary["p_adjusted"]
        row.verdict, row.verdicts = summary["verdict"], summary.get("verdicts", [])
        row.test, row.se, row.tau2 = summary["test"], summary.get("se"), summary.get("tau2")
        row.note, row.claim = summary.get("note", ""), summary["claim"]
    return combined
