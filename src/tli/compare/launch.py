"""How each training unit of an experiment is launched on a GPU cluster, and what it costs in GPU-hours.

For every unit (:mod:`tli.compare.units`) the plan of ``tli plan`` (:func:`tli.plan.plan`, from the model's
config alone) gives the GPUs its training needs and the GPUs its evaluation needs (the whole model, bf16,
``device_map``); the unit takes the larger. From that:

- **one process** when one GPU suffices, or when the experiment sets ``device_map`` and the strategy keeps the
  base frozen (LoRA family, TLI, none): ``device_map`` spreads the frozen base over the GPUs of one machine;
- **a sharded launcher** otherwise (``full`` on a model whose weights, gradients and AdamW state do not fit one
  GPU): ``accelerate launch`` with FSDP, the shipped ``8gpu-fsdp`` config on one node or ``multinode-fsdp`` over
  ``ceil(GPUs / 8)`` nodes of 8 GPUs (:func:`tli.compare.launch_context`: every process trains and evaluates
  its share of the examples, the main process writes).

A unit whose plan fits no split of the GPUs, or whose frozen base needs several GPUs while the experiment sets
no ``device_map``, is named as not runnable as configured, with what it would need, before anything loads.

GPU-hours are the training's: ``tokens × FLOPs per token ÷ (GPU peak × MFU) ÷ 3600``, with tokens = ``budget.steps
× budget.batch_size × seq_len`` and FLOPs per token from the plan (6N for full fine-tuning, less for frozen bases;
:mod:`tli.plan`). The MFU is :data:`MFU` (0.35): large dense bf16 training on H100s reports 38–43 % (Llama 3,
Dubey et al. 2024, Table 4); fine-tuning at small batches with gradient checkpointing reaches less, so 0.35 is an
optimistic-but-typical figure, and the estimate scales as 1/MFU if yours differs. Evaluation (generation and
scoring) is not counted: its cost depends on the tasks' sizes more than on the strategy.
"""

from __future__ import annotations

import fnmatch
import math
import shlex
from collections import defaultdict
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from tli.compare.schema import Experiment
from tli.compare.units import TrainingUnit, training_units
from tli.errors import ConfigError, TliError
from tli.plan import plan

GPUS_PER_NODE = 8
"""GPUs per machine assumed for node counts (the shipped accelerate configs' 8)."""
MFU = 0.35
"""Model FLOPs utilisation assumed for GPU-hours (see the module docstring)."""
SEQ_LEN = 512
"""Tokens per fine-tuning example assumed for memory and FLOPs (XL-Sum prompts are cut to 512 tokens)."""
GPU_MEMORY_GB = 80.0
GPU_TFLOPS = 989.0
"""One H100 SXM: 80 GiB, 989 dense bf16 TFLOPS."""

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
"""The ``tli plan`` estimate that bounds each strategy's training memory."""

FROZEN_BASE = frozenset(name for name, planned in PLAN_STRATEGY.items() if planned != "full")
"""Strategies that never update the base weights: a ``device_map`` over one machine's GPUs can hold them."""

SLURM_TEMPLATE = "compare-array.sbatch"
"""The shipped SLURM array script, next to the accelerate configs (:func:`slurm_template` gives its path)."""


def slurm_template() -> Path:
    """Path of the shipped SLURM array script (one training unit per array task), to copy and edit."""
    return Path(str(files("tli.accelerate_configs") / SLURM_TEMPLATE))


@dataclass
class UnitLaunch:
    """How one training unit runs: its GPUs, launcher, command and training GPU-hours."""

    unit: str
    model: str
    strategy: str
    seed: int
    train_gpus: int | None
    eval_gpus: int | None
    gpus: int | None
    memory_gb_per_gpu: float | None
    launcher: str
    """``python`` (one process) or ``accelerate`` (FSDP over ``world_size`` processes)."""
    world_size: int
    nodes: int
    accelerate_config: str | None
    command: str
    gpu_hours: float | None
    runnable: bool
    why_not: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _plans(experiment: Experiment) -> dict[str, dict[str, Any]]:
    """Model → its plan (``{"error": ...}`` when it cannot be planned, e.g. an unknown local model)."""
    budget = experiment.budget
    plans = {}
    for model in experiment.models:
        try:
            plans[model] = plan(
                "smollm2-135m" if model == "default" else model,
                batch_size=budget.batch_size,
                seq_len=SEQ_LEN,
                tokens=budget.steps * budget.batch_size * SEQ_LEN,
                gpu_memory_gb=GPU_MEMORY_GB,
                gpu_tflops=GPU_TFLOPS,
                mfu=MFU,
            ).to_dict()
        except TliError as exc:
            plans[model] = {"error": str(exc)}
    return plans


def _command(
    experiment_ref: str,
    out: str,
    unit: TrainingUnit,
    launcher: str,
    config: str | None,
    world: int,
    nodes: int,
) -> str:
    """The unit's command; on several nodes the same command runs on each, with its ``NODE_RANK`` and the
    first node's address as ``MAIN_IP`` (the shipped SLURM script fills both)."""
    run = f"tli compare {experiment_ref} --out {out} --only {unit.id}"
    if launcher == "python":
        return run
    machines = (
        "" if nodes == 1 else f" --num_machines {nodes} --machine_rank NODE_RANK --main_process_ip MAIN_IP"
    )
    return f"accelerate launch --config_file {config} --num_processes {world}{machines} -m {run}"


def _gpu_hours(strategy_plan: dict[str, Any], strategy: str) -> float | None:
    """Training GPU-hours: FLOPs ÷ (peak × MFU), independent of how many GPUs share them; none for no training."""
    if strategy == "none" or strategy_plan.get("flops") is None:
        return 0.0 if strategy == "none" else None
    return strategy_plan["flops"] / (GPU_TFLOPS * 1e12 * MFU) / 3600


def unit_launch(
    experiment: Experiment, unit: TrainingUnit, model_plan: dict[str, Any], experiment_ref: str, out: str
) -> UnitLaunch:
    """The launch of one unit from its model's plan (see the module docstring for the rules)."""
    strategies = model_plan.get("strategies", {})
    trained = strategies.get(PLAN_STRATEGY[unit.strategy], {})
    evaluated = strategies.get("inference", {})
    train_gpus = trained.get("devices") if unit.strategy != "none" else 0
    eval_gpus = evaluated.get("devices")
    gpus = None if train_gpus is None or eval_gpus is None else max(train_gpus, eval_gpus, 1)
    memory = trained.get("memory_gb") if unit.strategy != "none" else evaluated.get("memory_gb")
    launcher, world, nodes, config, why_not = "python", 1, 1, None, ""
    if gpus is None:
        why_not = (
            model_plan.get("error") or f"{unit.strategy} does not fit any split of {GPU_MEMORY_GB:g} GiB GPUs"
        )
    elif gpus > 1 and unit.strategy in FROZEN_BASE:
        if experiment.device_map is None:
            why_not = f"the frozen base needs {gpus} GPUs: set device_map: auto in the experiment"
    elif gpus > 1:
        nodes = math.ceil(gpus / GPUS_PER_NODE)
        world = gpus if nodes == 1 else nodes * GPUS_PER_NODE
        launcher, config = "accelerate", "8gpu-fsdp.yaml" if nodes == 1 else "multinode-fsdp.yaml"
    return UnitLaunch(
        unit=unit.id,
        model=unit.model,
        strategy=unit.strategy,
        seed=unit.seed,
        train_gpus=train_gpus,
        eval_gpus=eval_gpus,
        gpus=gpus,
        memory_gb_per_gpu=memory,
        launcher=launcher,
        world_size=world,
        nodes=nodes,
        accelerate_config=config,
        command=_command(experiment_ref, out, unit, launcher, config, world, nodes),
        gpu_hours=_gpu_hours(trained, unit.strategy),
        runnable=not why_not,
        why_not=why_not,
    )


def launch_plan(
    experiment: Experiment, *, experiment_ref: str | None = None, out: str = "OUT"
) -> list[UnitLaunch]:
    """Every unit's launch, in run order. ``experiment_ref`` is how commands name the experiment (default: its
    name when shipped, else its file)."""
    ref = experiment_ref or experiment.name
    plans = _plans(experiment)
    return [unit_launch(experiment, u, plans[u.model], ref, out) for u in training_units(experiment)]


@dataclass(frozen=True)
class Launched:
    """What the launcher started, as this process sees it (:func:`tli.compare.launch_context`)."""

    world_size: int
    """Processes of the whole launch (``WORLD_SIZE``)."""
    kind: str
    """``single`` | ``ddp`` | ``fsdp`` | ``deepspeed`` (from the accelerate config)."""
    local_processes: int
    """Processes on this machine (``LOCAL_WORLD_SIZE``)."""
    local_gpus: int
    """CUDA GPUs this machine shows the process."""


def refuse_unfit_launch(experiment: Experiment, units: list[TrainingUnit], launched: Launched) -> None:
    """Before anything loads, on CUDA: a launch that does not fit the machine or the units' plans would fail
    mid-run (two processes on one GPU, or a ``full`` unit out of memory after its base has loaded).

    Raises:
        ConfigError: more processes on this machine than it has GPUs; or the first unit whose plan needs FSDP
            over more GPUs than were launched, or that was launched without a sharding config (DDP would put the
            whole model and its AdamW state on every GPU) — with the command that runs it.
    """
    if launched.local_processes > launched.local_gpus:
        raise ConfigError(
            f"the launcher started {launched.local_processes} processes on this machine but it has "
            f"{launched.local_gpus} CUDA GPU(s): launch at most {launched.local_gpus} per machine "
            "(--num_processes / --nproc_per_node, or CUDA_VISIBLE_DEVICES)"
        )
    if experiment.device_map is not None:  # one process spreads the model (and its AdamW state) over its GPUs
        return
    plans = _plans(experiment)
    for unit in units:
        launch = unit_launch(experiment, unit, plans[unit.model], experiment.name, "OUT")
        if launch.launcher != "accelerate" or not launch.gpus:
            continue
        needs = f"{unit.id} needs FSDP over {launch.gpus} GPUs of {GPU_MEMORY_GB:g} GiB (tli plan)"
        if launched.world_size < launch.gpus:
            raise ConfigError(
                f"{needs} but {launched.world_size} process(es) were launched: run it as `{launch.command}` "
                "(tli compare --list-cells lists them)"
            )
        if launched.kind not in ("fsdp", "deepspeed"):
            raise ConfigError(
                f"{needs} but was launched without a sharding config ({launched.kind}: every process would hold "
                f"the whole model and its AdamW state): run it as `{launch.command}`"
            )


def slurm_arrays(launches: list[UnitLaunch], *, experiment_ref: str, out: str) -> list[str]:
    """``sbatch`` lines: one job array per (nodes, GPUs per node, accelerate config) group of runnable units,
    array task ``i`` running the ``i``-th unit its selection names (:func:`unit_selection`); then the
    ``--collect`` job once every array has finished."""
    groups: dict[tuple, list[UnitLaunch]] = defaultdict(list)
    for launch in launches:
        if launch.runnable:
            per_node = min(launch.gpus or 1, GPUS_PER_NODE)
            groups[(launch.nodes, per_node, launch.accelerate_config or "")].append(launch)
    every_id = [launch.unit for launch in launches]
    lines = []
    for (nodes, per_node, config), members in groups.items():
        selection = shlex.quote(unit_selection([m.unit for m in members], every_id))
        lines.append(
            f"sbatch --array=0-{len(members) - 1} --nodes={nodes} --gpus-per-node={per_node} "
            f"{SLURM_TEMPLATE} {experiment_ref} {out} {selection}" + (f" {config}" if config else "")
        )
    if lines:
        lines.append("# when every array has finished (sbatch --dependency=afterok:JOBIDS …):")
        lines.append(f"tli compare {experiment_ref} --out {out} --collect")
    return lines


def unit_selection(members: list[str], every_id: list[str]) -> str:
    """Comma-separated ``--only`` patterns that name exactly the unit ids ``members`` among ``every_id``: one
    ``*/STRATEGY/*`` where a strategy's units of every model are members, else ``MODEL/STRATEGY/*`` where all
    its seeds are, else the ids themselves."""
    wanted = set(members)

    def exact(pattern: str) -> bool:
        return set(fnmatch.filter(every_id, pattern)) <= wanted

    patterns: list[str] = []
    for unit in members:
        model, strategy, _ = unit.rsplit("/", 2)
        for pattern in (f"*/{strategy}/*", f"{model}/{strategy}/*", unit):
            if fnmatch.fnmatchcase(unit, pattern) and exact(pattern):
                if pattern not in patterns and not any(fnmatch.fnmatchcase(unit, p) for p in patterns):
                    patterns.append(pattern)
                break
    return ",".join(patterns)


def _blocked(launches: list[UnitLaunch]) -> list[str]:
    """One line per (model, strategy) whose units cannot run as configured: the seeds and the reason."""
    seeds: dict[tuple[str, str], list[int]] = defaultdict(list)
    for launch in launches:
        if not launch.runnable:
            seeds[(launch.unit.rsplit("/", 1)[0], launch.why_not)].append(launch.seed)
    return [f"{unit} (seeds {', '.join(map(str, s))}): {why}" for (unit, why), s in seeds.items()]


def launch_summary(launches: list[UnitLaunch]) -> dict[str, Any]:
    """Totals: units, runnable units, GPU-hours of the units that have an estimate, and the blocked units."""
    hours = [launch.gpu_hours for launch in launches if launch.gpu_hours is not None]
    return {
        "units": len(launches),
        "runnable": sum(launch.runnable for launch in launches),
        "gpu_hours": sum(hours),
        "gpu_hours_complete": len(hours) == len(launches),
        "not_runnable": _blocked(launches),
        "mfu": MFU,
        "gpu": f"{GPU_MEMORY_GB:g} GiB, {GPU_TFLOPS:g} bf16 TFLOPS (H100 SXM)",
    }
