"""``tli compare``: fine-tuning strategies × downstream tasks × models, with paired statistics.

    from tli.compare import compare
    results = compare("demo", out="runs/compare")          # a shipped experiment, or a YAML path

Output (``OUT/``): ``results.json`` (``cells``, ``comparisons``, ``claims`` and provenance), ``report.md``,
``score_vs_cost.png``, ``experiment.yaml`` (the experiment as run) and ``runs/`` (one resumable directory per
training unit and cell, see :mod:`tli.compare.runner`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from tli.compare.experiment import Experiment, parse_experiment, shipped_experiments
from tli.compare.power import power_report
from tli.compare.questions import (
    answer_questions,
    compare_cells,
    comparisons_across_seeds,
    families,
    question_answers,
)
from tli.compare.runner import Cell, Runner
from tli.errors import TliError

log = logging.getLogger(__name__)

PLAN_STRATEGY = {
    "none": "inference",
    "full": "full",
    "lora": "lora",
    "lora-early": "lora",
    "lora-late": "lora",
    "tli": "tli",
    "tli+lora": "lora",
    "qlora": "qlora",
}
"""The ``tli plan`` estimate that bounds each strategy's memory."""


def experiment_record(experiment: Experiment) -> dict[str, Any]:
    """The experiment as it ran, for ``results.json``."""
    return {
        "name": experiment.name,
        "description": experiment.description,
        "source": experiment.source,
        "models": experiment.models,
        "strategies": [spec.name for spec in experiment.strategies],
        "strategy_options": {spec.name: dataclasses.asdict(spec.options) for spec in experiment.strategies},
        "tasks": {name: dataclasses.asdict(config) for name, config in experiment.tasks.items()},
        "seeds": experiment.seeds,
        "train": dataclasses.asdict(experiment.train) if experiment.train else None,
        "budget": dataclasses.asdict(experiment.budget),
        "reference": experiment.reference,
        "correction": experiment.correction,
        "alpha": experiment.alpha,
        "n_resamples": experiment.n_resamples,
        "noninferiority_margin": experiment.noninferiority_margin,
        "retrieval": experiment.retrieval.describe() if experiment.retrieval is not None else None,
    }


def dry_run(experiment: Experiment) -> dict[str, Any]:
    """The plan of an experiment without running it: cells, steps and estimated memory per strategy, and the
    power of its families (:func:`tli.compare.power.power_report`)."""
    from tli.plan import plan

    units = []
    for model in experiment.models:
        try:
            estimate = plan(
                "smollm2-135m" if model == "default" else model, batch_size=experiment.budget.batch_size
            ).to_dict()
        except TliError as exc:
            estimate = {"error": str(exc)}
        for spec in experiment.strategies:
            memory = estimate.get("strategies", {}).get(PLAN_STRATEGY[spec.name], {})
            units.append(
                {
                    "model": model,
                    "strategy": spec.name,
                    "seeds": experiment.seeds,
                    "steps": experiment.budget.steps if spec.name not in ("none", "tli") else 0,
                    "estimated_memory_gb": memory.get("memory_gb"),
                    "estimated_devices": memory.get("devices"),
                    "estimate": PLAN_STRATEGY[spec.name] if memory else estimate.get("error", "no estimate"),
                }
            )
    import torch

    wants_cuda = str(experiment.device).startswith("cuda") or any(
        str(spec.device or "").startswith("cuda") for spec in experiment.strategies
    )
    note = (
        "device: CUDA (not on this machine: the run itself needs a GPU)"
        if wants_cuda and not torch.cuda.is_available()
        else ""
    )
    return {
        "experiment": experiment_record(experiment),
        "cells": len(experiment.cells()),
        "units": units,
        "retrieval_units": retrieval_units(experiment),
        "device_note": note,
        **power_report(experiment),
    }


def retrieval_units(experiment: Experiment) -> list[dict[str, Any]]:
    """The retrieval work beyond the strategies: BM25 indexes and the dense-retriever conditions."""
    plan = experiment.retrieval
    if plan is None:
        return []
    units = []
    if "bm25" in plan.systems:
        units.append({"system": "bm25", "model": "—", "seeds": "—", "steps": 0})
    if plan.dense_retriever is not None:
        options = plan.dense_retriever.options
        encoders = experiment.models if options.encoder == "model" else [options.encoder]
        for encoder in encoders:
            for condition in plan.dense_retriever.conditions:
                trained = condition != "zero-shot"
                units.append(
                    {
                        "system": f"dense:{condition}",
                        "model": encoder,
                        "seeds": experiment.seeds if trained else "—",
                        "steps": options.steps if trained else 0,
                    }
                )
    return units


def format_dry_run(planned: dict[str, Any]) -> str:
    experiment = planned["experiment"]
    task_languages = sum(len(t["languages"]) for t in experiment["tasks"].values())
    strategy_cells = (
        len(experiment["models"]) * len(experiment["strategies"]) * task_languages * len(experiment["seeds"])
    )
    others = planned["cells"] - strategy_cells
    extra = f" + {others} retrieval-system cells (BM25, fusion, dense retrievers)" if others > 0 else ""
    lines = [
        f"experiment {experiment['name']} ({experiment['source']}): valid",
        f"{planned['cells']} cells = {len(experiment['models'])} model(s) × {len(experiment['strategies'])} "
        f"strategies × {task_languages} task-languages × {len(experiment['seeds'])} seed(s){extra}",
        "",
        "| model | strategy | steps | estimated memory (GiB, per GPU) | GPUs |",
        "|---|---|---|---|---|",
    ]
    if planned.get("device_note"):
        lines.insert(2, planned["device_note"])
    for unit in planned["units"]:
        memory = (
            f"{unit['estimated_memory_gb']:.1f}"
            if unit["estimated_memory_gb"] is not None
            else unit["estimate"]
        )
        devices = unit["estimated_devices"] or "—"
        lines.append(f"| {unit['model']} | {unit['strategy']} | {unit['steps']} | {memory} | {devices} |")
    if planned.get("retrieval_units"):
        lines += ["", "| retrieval system | model / encoder | seeds | steps |", "|---|---|---|---|"]
        lines += [
            f"| {u['system']} | {u['model']} | {u['seeds']} | {u['steps']} |"
            for u in planned["retrieval_units"]
        ]
    if planned.get("families"):
        from tli.compare.power import format_power

        lines += ["", format_power(planned)]
    return "\n".join(lines)


def compare(
    experiment: str | Path | Experiment,
    *,
    out: str | Path,
    track: str | None = None,
    tracking_uri: str | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run an experiment (skipping cells an earlier run finished) and write its report.

    Returns:
        The ``results.json`` content: ``cells``, ``comparisons`` (one row per hypothesis, over seeds; each with
        its ``family`` and ``test``), ``comparisons_per_seed``, ``claims`` (each research question's claims with
        verdicts), ``answers`` (one overall answer per question), ``families`` (size, tests, correction and the
        smallest adjusted p each could reach), ``power`` (the MDEs of :func:`tli.compare.power.power_report`)
        and provenance.
    """
    from tli.runs import check_writable, holding_run_dir

    if not isinstance(experiment, Experiment):
        experiment = parse_experiment(experiment)
    out = check_writable(Path(out))
    with holding_run_dir(out):  # a second `tli compare` on this --out refuses
        return _compare_locked(experiment, out, track, tracking_uri, progress)


def _compare_locked(
    experiment: Experiment, out: Path, track: str | None, tracking_uri: str | None, progress: bool | None
) -> dict[str, Any]:
    """:func:`compare` once ``out`` is locked: run the missing cells, then compare, report and mark complete."""
    import yaml

    from tli.compare.report import compare_report, plot_score_vs_cost
    from tli.io import atomic_write_json, atomic_write_text
    from tli.runs import COMPLETE, mark_complete, provenance
    from tli.tracking import make_tracker

    out.mkdir(parents=True, exist_ok=True)
    (out / COMPLETE).unlink(missing_ok=True)  # cells may be added: complete again only at the end
    record = experiment_record(experiment)
    atomic_write_text(
        out / "experiment.yaml", yaml.safe_dump(experiment.raw, sort_keys=False, allow_unicode=True)
    )
    tracker = make_tracker(
        track, out, experiment.name, {k: v for k, v in record.items() if k != "tasks"}, tracking_uri
    )
    try:
        cells = Runner(experiment, out, progress=progress, tracker=tracker).run()
        results = {
            "experiment": record,
            "cells": [c.to_dict() for c in cells],
            **analyse(experiment, cells),
            **provenance("compare", record, experiment.seeds[0]),
        }
        if experiment.retrieval is not None:
            from tli.compare.report import plot_layer_curves

            results["retrieval"] = retrieval_summary(experiment, out)
            plot_layer_curves(results["cells"], out / "retrieval_layers.png")
        plot_score_vs_cost(results["cells"], out / "score_vs_cost.png")
        atomic_write_text(out / "report.md", compare_report(results))
        atomic_write_json(out / "results.json", results)
        mark_complete(out, "comparison")
        if tracker is not None:
            done = [c for c in cells if c.status == "done"]
            tracker.log_results({"cells_done": float(len(done))}, [out / "report.md", out / "results.json"])
    finally:
        if tracker is not None:
            tracker.close()
    return results


def analyse(experiment: Experiment, cells: list[Cell]) -> dict[str, Any]:
    """Every statistic of a comparison derived from its cells' prediction files: the paired comparisons per seed
    (``comparisons_per_seed``), their summary over seeds (``comparisons``) and the research questions' claims.

    The one entry point of the statistics: ``tli compare`` writes what it returns, and ``tli verify`` calls it
    again on a finished run's cells to re-derive every figure of its ``results.json`` and report.
    """
    strategies = [spec.name for spec in experiment.strategies]
    per_seed = compare_cells(
        cells,
        strategies,
        experiment.reference,
        n_resamples=experiment.n_resamples,
        correction=experiment.correction,
        alpha=experiment.alpha,
        task_configs=experiment.tasks,
        retrieval=experiment.retrieval,
        seeds=experiment.seeds,
        margin=experiment.noninferiority_margin,
        models=experiment.models,
    )
    combined = comparisons_across_seeds(per_seed, correction=experiment.correction, alpha=experiment.alpha)
    tasks = list(experiment.tasks)
    return {
        "comparisons": combined,
        "comparisons_per_seed": per_seed,
        "claims": answer_questions(combined, strategies, tasks, experiment.models),
        "answers": question_answers(combined, strategies, tasks, experiment.models),
        "families": families(combined, correction=experiment.correction, alpha=experiment.alpha),
        "power": power_report(experiment),
    }


def retrieval_summary(experiment: Experiment, out: Path) -> dict[str, Any]:
    """What the report says about retrieval beyond the cells: synthetic data, published baselines."""
    import json

    from tli.tasks.retrieval.mrtydi import PUBLISHED_MRR100

    summary: dict[str, Any] = {"plan": experiment.retrieval.describe(), "published_mrr100": {}}
    meta = out / "synthetic" / "synthetic.meta.json"
    if meta.is_file():
        record = json.loads(meta.read_text(encoding="utf-8"))
        summary["synthetic"] = {
            "file": str(out / "synthetic" / "synthetic.jsonl"),
            "kept": record.get("kept"),
            "counts": record.get("counts"),
            "generator": record.get("generator"),
        }
    if "mrtydi" in experiment.tasks:
        summary["published_mrr100"] = {
            lang: PUBLISHED_MRR100[lang]
            for lang in experiment.tasks["mrtydi"].languages
            if lang in PUBLISHED_MRR100
        }
    return summary


__all__ = [
    "Cell",
    "Experiment",
    "analyse",
    "compare",
    "dry_run",
    "format_dry_run",
    "parse_experiment",
    "shipped_experiments",
]
