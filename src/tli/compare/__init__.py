"""``tli compare``: fine-tuning strategies × downstream tasks × models, with paired statistics.

    from tli.compare import compare
    results = compare("demo", out="runs/compare")          # a shipped experiment, or a YAML path

Output (``OUT/``): ``results.json`` (``cells``, ``comparisons``, ``claims`` and provenance), ``report.md``,
``score_vs_cost.png``, ``experiment.yaml`` (the experiment as run) and ``runs/`` (one resumable directory per
training unit and cell, see :mod:`tli.compare.cell_store`).

Modules, from the leaf up: :mod:`~tli.compare.schema` (the experiment and its cells), :mod:`~tli.compare.experiment`
and :mod:`~tli.compare.retrieval_settings` (reading the YAML), :mod:`~tli.compare.cell_store` (cells on disk),
:mod:`~tli.compare.significance` (paired tests), :mod:`~tli.compare.questions`, :mod:`~tli.compare.hypotheses` and
:mod:`~tli.compare.comparisons` (what is compared, tested and answered), :mod:`~tli.compare.power`,
:mod:`~tli.compare.report`, :mod:`~tli.compare.retrieval_runner` and :mod:`~tli.compare.runner` (running it).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from tli.compare.experiment import parse_experiment, shipped_experiments
from tli.compare.power import format_power, power_report
from tli.compare.runner import analyse, run_experiment
from tli.compare.schema import Cell, Experiment
from tli.errors import TliError
from tli.plan import plan
from tli.runs import check_writable, holding_run_dir

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


def dry_run(experiment: Experiment) -> dict[str, Any]:
    """The plan of an experiment without running it: cells, steps and estimated memory per strategy, and the
    power of its families (:func:`tli.compare.power.power_report`)."""
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
    wants_cuda = str(experiment.device).startswith("cuda") or any(
        str(spec.device or "").startswith("cuda") for spec in experiment.strategies
    )
    note = (
        "device: CUDA (not on this machine: the run itself needs a GPU)"
        if wants_cuda and not torch.cuda.is_available()
        else ""
    )
    return {
        "experiment": experiment.to_dict(),
        "cells": len(experiment.cells()),
        "units": units,
        "retrieval_units": retrieval_units(experiment),
        "device_note": note,
        **power_report(experiment),
    }


def retrieval_units(experiment: Experiment) -> list[dict[str, Any]]:
    """The retrieval work beyond the strategies: BM25 indexes and the dense-retriever conditions."""
    settings = experiment.retrieval
    if settings is None:
        return []
    units = []
    if "bm25" in settings.systems:
        units.append({"system": "bm25", "model": "—", "seeds": "—", "steps": 0})
    if settings.dense_retriever is not None:
        options = settings.dense_retriever.options
        for encoder in settings.dense_retriever.encoders(experiment.models):
            for condition in settings.dense_retriever.conditions:
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
    if not isinstance(experiment, Experiment):
        experiment = parse_experiment(experiment)
    out = check_writable(Path(out))
    with holding_run_dir(out):  # a second `tli compare` on this --out refuses
        return run_experiment(experiment, out, track, tracking_uri, progress)


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
