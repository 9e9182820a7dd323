"""``tli compare``: fine-tuning strategies × downstream tasks × models, with paired statistics.

    from tli.compare import compare
    results = compare("demo", out="runs/compare")          # a shipped experiment, or a YAML path

Output (``OUT/``): ``results.json`` (``cells``, ``comparisons``, ``claims`` and provenance), ``report.md``,
``score_vs_cost.png``, ``experiment.yaml`` (the experiment as run) and ``runs/`` (one resumable directory per
training unit and cell, see :mod:`tli.compare.cells`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from tli.compare.cells import Cell, Runner
from tli.compare.experiment import Experiment, parse_experiment, shipped_experiments
from tli.compare.questions import answer_questions, compare_cells, comparisons_across_seeds
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
    }


def dry_run(experiment: Experiment) -> dict[str, Any]:
    """The plan of an experiment without running it: cells, steps and estimated memory per strategy."""
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
        "device_note": note,
    }


def format_dry_run(planned: dict[str, Any]) -> str:
    experiment = planned["experiment"]
    lines = [
        f"experiment {experiment['name']} ({experiment['source']}): valid",
        f"{planned['cells']} cells = {len(experiment['models'])} model(s) × {len(experiment['strategies'])} strategies × "
        f"{sum(len(t['languages']) for t in experiment['tasks'].values())} task-languages × {len(experiment['seeds'])} seed(s)",
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
        lines.append(
            f"| {unit['model']} | {unit['strategy']} | {unit['steps']} | {memory} | {unit['estimated_devices'] or '—'} |"
        )
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
        The ``results.json`` content: ``cells``, ``comparisons`` (per seed), ``comparisons_across_seeds``,
        ``claims`` (research questions with verdicts) and provenance.
    """
    import yaml

    from tli.compare.report import compare_report, plot_score_vs_cost
    from tli.io import atomic_write_json, atomic_write_text
    from tli.runs import check_writable, provenance
    from tli.tracking import make_tracker

    if not isinstance(experiment, Experiment):
        experiment = parse_experiment(experiment)
    out = check_writable(Path(out))
    out.mkdir(parents=True, exist_ok=True)
    record = experiment_record(experiment)
    atomic_write_text(
        out / "experiment.yaml", yaml.safe_dump(experiment.raw, sort_keys=False, allow_unicode=True)
    )
    tracker = make_tracker(
        track, out, experiment.name, {k: v for k, v in record.items() if k != "tasks"}, tracking_uri
    )
    try:
        cells = Runner(experiment, out, progress=progress, tracker=tracker).run()
        strategies = [spec.name for spec in experiment.strategies]
        per_seed = compare_cells(
            cells,
            strategies,
            experiment.reference,
            n_resamples=experiment.n_resamples,
            correction=experiment.correction,
            alpha=experiment.alpha,
            task_configs=experiment.tasks,
        )
        combined = comparisons_across_seeds(per_seed)
        claims = answer_questions(combined, strategies, list(experiment.tasks), experiment.models)
        results = {
            "experiment": record,
            "cells": [c.to_dict() for c in cells],
            "comparisons": combined,
            "comparisons_per_seed": per_seed,
            "claims": claims,
            **provenance("compare", record, experiment.seeds[0]),
        }
        plot_score_vs_cost(results["cells"], out / "score_vs_cost.png")
        atomic_write_text(out / "report.md", compare_report(results))
        atomic_write_json(out / "results.json", results)
        if tracker is not None:
            done = [c for c in cells if c.status == "done"]
            tracker.log_results({"cells_done": float(len(done))}, [out / "report.md", out / "results.json"])
    finally:
        if tracker is not None:
            tracker.close()
    return results


__all__ = [
    "Cell",
    "Experiment",
    "compare",
    "dry_run",
    "format_dry_run",
    "parse_experiment",
    "shipped_experiments",
]
