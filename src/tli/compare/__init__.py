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

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import torch

from tli.compare.experiment import parse_experiment, shipped_experiments
from tli.compare.launch import (
    PLAN_STRATEGY,
    Launched,
    launch_plan,
    launch_summary,
    refuse_unfit_launch,
    slurm_arrays,
    slurm_template,
)
from tli.compare.power import format_power, power_report
from tli.compare.runner import analyse, run_experiment, run_units
from tli.compare.schema import Cell, Experiment
from tli.compare.units import select_units, training_units
from tli.distributed import DistributedContext, current_context, distributed_context, launched
from tli.errors import ConfigError
from tli.models import resolve_device
from tli.runs import check_writable, holding_run_dir
from tli.train import process_device

log = logging.getLogger(__name__)


def dry_run(experiment: Experiment, *, out: str = "OUT") -> dict[str, Any]:
    """The plan of an experiment without running it: cells; per (model, strategy) the steps, estimated memory
    and GPUs, how its units launch and their training GPU-hours (:mod:`tli.compare.launch`); the SLURM arrays
    that run it on a cluster; and the power of its families (:func:`tli.compare.power.power_report`)."""
    ref = experiment_ref(experiment)
    launches = launch_plan(experiment, experiment_ref=ref, out=out)
    units = []
    for model in experiment.models:
        for spec in experiment.strategies:
            mine = [launch for launch in launches if launch.model == model and launch.strategy == spec.name]
            first = mine[0]
            units.append(
                {
                    "model": model,
                    "strategy": spec.name,
                    "seeds": experiment.seeds,
                    "steps": experiment.budget.steps if spec.name not in ("none", "tli") else 0,
                    "estimated_memory_gb": first.memory_gb_per_gpu,
                    "estimated_devices": first.gpus,
                    "estimate": PLAN_STRATEGY[spec.name] if first.gpus is not None else first.why_not,
                    "launcher": first.launcher,
                    "world_size": first.world_size,
                    "nodes": first.nodes,
                    "accelerate_config": first.accelerate_config,
                    "commands": [launch.command for launch in mine],
                    "gpu_hours": None
                    if any(launch.gpu_hours is None for launch in mine)
                    else sum(launch.gpu_hours for launch in mine),
                    "runnable": first.runnable,
                    "why_not": first.why_not,
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
        "launch": {
            **launch_summary(launches),
            "slurm": slurm_arrays(launches, experiment_ref=ref, out=out),
            "slurm_template": str(slurm_template()),
        },
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
        "| model | strategy | steps | estimated memory (GiB, per GPU) | GPUs | launcher | nodes | GPU-hours |",
        "|---|---|---|---|---|---|---|---|",
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
        launcher = unit["launcher"] if unit["runnable"] else f"{unit['launcher']} (cannot run as configured)"
        hours = "—" if unit["gpu_hours"] is None else f"{unit['gpu_hours']:.2f}"
        lines.append(
            f"| {unit['model']} | {unit['strategy']} | {unit['steps']} | {memory} | {devices} | {launcher} "
            f"| {unit['nodes']} | {hours} |"
        )
    lines += format_launch(planned["launch"])
    if planned.get("retrieval_units"):
        lines += ["", "| retrieval system | model / encoder | seeds | steps |", "|---|---|---|---|"]
        lines += [
            f"| {u['system']} | {u['model']} | {u['seeds']} | {u['steps']} |"
            for u in planned["retrieval_units"]
        ]
    if planned.get("families"):
        lines += ["", format_power(planned)]
    return "\n".join(lines)


def format_launch(launch: dict[str, Any]) -> list[str]:
    """The launch part of the dry run: GPU-hours, the units that cannot run as configured, the SLURM arrays."""
    total = f"{launch['gpu_hours']:.2f}" + (
        "" if launch["gpu_hours_complete"] else " (units without an estimate not counted)"
    )
    lines = [
        "",
        f"training GPU-hours, all units and seeds: {total} (FLOPs ÷ ({launch['gpu']} × MFU {launch['mfu']:g}); "
        "evaluation not counted)",
    ]
    if launch["not_runnable"]:
        lines += ["", f"cannot run as configured ({launch['units'] - launch['runnable']} unit(s)):"]
        lines += [f"  {line}" for line in launch["not_runnable"]]
    if launch["slurm"]:
        lines += ["", f"on a SLURM cluster ({launch['slurm_template']}, one unit per array task):"]
        lines += [f"  {line}" for line in launch["slurm"]]
    return lines


def compare(
    experiment: str | Path | Experiment,
    *,
    out: str | Path,
    track: str | None = None,
    tracking_uri: str | None = None,
    progress: bool | None = None,
    only: list[str] | None = None,
    shard: str | None = None,
    collect: bool = False,
) -> dict[str, Any]:
    """Run an experiment (skipping cells an earlier run finished) and write its report.

    On a cluster, each job runs some training units into the same ``out`` — ``only`` (unit ids, see
    :func:`list_units`) or ``shard`` (``"i/N"``: every N-th unit from the i-th) — and returns
    ``{"units", "cells"}`` without comparisons; a last job with ``collect=True`` reads every unit's cells
    (refusing while any is unfinished, naming them), runs the retrieval systems and writes the comparisons.

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
    if (only or shard is not None) and collect:
        raise ConfigError("--collect writes the comparisons of every unit: give it without --only / --shard")
    units = select_units(training_units(experiment), only=only, shard=shard) if only or shard else None
    context = launch_context(experiment)
    if resolve_device(process_device(experiment.device)).type == "cuda":
        refuse_unfit_launch(experiment, units or training_units(experiment), launched_here(context))
    # Only the main process locks and writes; under a launcher the others train and evaluate beside it.
    with holding_run_dir(out, shared=units is not None) if context.is_main else contextlib.nullcontext():
        if (
            units is not None
        ):  # one job of a cluster run: other jobs' units may run beside these, a full run not
            return run_units(experiment, out, units, progress)
        return run_experiment(experiment, out, track, tracking_uri, progress, collect=collect)


def launch_context(experiment: Experiment) -> DistributedContext:
    """This process's place under ``accelerate launch`` / ``torchrun`` (a one-process context alone).

    Every process runs the same units in the same order: each training unit trains through Accelerate (DDP,
    or FSDP / DeepSpeed ZeRO-3 per the launcher's config; :func:`tli.strategies.finetune.finetune`), each
    process evaluates its share of a cell's examples and gets every share back
    (:func:`tli.distributed.score_in_shares`; a sharded model takes every process into every forward), a step
    that fails on one process fails on all, and only the main process locks ``out`` and writes.

    Raises:
        ConfigError: a sharding the device cannot run (FSDP / DeepSpeed on a CPU).
    """
    if not launched():
        return current_context()
    if experiment.backend == "vllm":
        raise ConfigError(
            "backend vllm runs in one process (vLLM spreads the model over the GPUs itself): launch tli compare "
            "without accelerate launch / torchrun, or use backend: hf"
        )
    return distributed_context(resolve_device(process_device(experiment.device)))


def launched_here(context: DistributedContext) -> Launched:
    """What the launcher started (``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, the sharding) and the CUDA GPUs this
    machine shows, for :func:`tli.compare.launch.refuse_unfit_launch`."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", context.world_size))
    return Launched(context.world_size, context.kind, local, torch.cuda.device_count())


def list_units(
    experiment: Experiment, *, out: str = "OUT", only: list[str] | None = None, shard: str | None = None
) -> list[dict[str, Any]]:
    """Every training unit (or those ``only`` and ``shard`` select, as :func:`compare` would run them) with the
    GPUs, launcher, command and training GPU-hours it needs (:func:`tli.compare.launch.launch_plan`), in the
    order a one-process run trains them."""
    chosen = {u.id for u in select_units(training_units(experiment), only=only, shard=shard)}
    launches = launch_plan(experiment, experiment_ref=experiment_ref(experiment), out=out)
    return [launch.to_dict() for launch in launches if launch.unit in chosen]


def format_units(units: list[dict[str, Any]]) -> str:
    """``--list-cells``: one line per training unit (id, GPUs, launcher, training GPU-hours, command or why not)."""
    lines = []
    for unit in units:
        hours = "—" if unit["gpu_hours"] is None else f"{unit['gpu_hours']:.2f} GPU-h"
        gpus = "—" if unit["gpus"] is None else f"{unit['gpus']} GPU(s)"
        what = unit["command"] if unit["runnable"] else f"cannot run as configured: {unit['why_not']}"
        lines.append(f"{unit['unit']}  {gpus}  {unit['launcher']}×{unit['world_size']}  {hours}  {what}")
    return "\n".join(lines)


def experiment_ref(experiment: Experiment) -> str:
    """How commands name the experiment: its name when it is a shipped one, else its file."""
    shipped = shipped_experiments()
    source = Path(experiment.source)
    if experiment.name in shipped and shipped[experiment.name].resolve() == source.resolve():
        return experiment.name
    return str(source)


__all__ = [
    "Cell",
    "Experiment",
    "analyse",
    "compare",
    "dry_run",
    "format_dry_run",
    "format_units",
    "list_units",
    "parse_experiment",
    "shipped_experiments",
]
