"""Several processes and GPUs for training: Hugging Face Accelerate's DDP, FSDP and DeepSpeed, not a home-made
loop.

``tli train`` and the task fine-tuning of ``tli compare`` (:func:`tli.strategies.finetune.finetune`) get a
:class:`DistributedContext` from :func:`distributed_context`. Launched alone it does nothing (plain PyTorch,
one process). Under ``torchrun`` or ``accelerate launch`` it holds an :class:`accelerate.Accelerator`, and the
model and optimiser go through ``accelerator.prepare``: the library wraps the model in

- ``DistributedDataParallel`` (the default; ``gloo`` on CPU, ``nccl`` on GPUs): gradients are averaged by
DDP's
  bucketed all-reduce during the backward;
- FSDP (``accelerate launch --config_file fsdp*.yaml``): parameters, gradients and optimiser state sharded
over
  the processes — full fine-tuning of 70B models, LoRA / QLoRA on sharded bases;
- DeepSpeed ZeRO-3 (``--config_file deepspeed-zero3.yaml``, needs ``pip install deepspeed``).

Each process trains on its own share of every step's examples (:func:`shard` for TLI batches,
:func:`split_examples` for task batches), so ``W`` processes take the optimiser steps of one process on the
same global batch: DDP averages the ``W`` gradients, which equals one process accumulating them.

FSDP and DeepSpeed need CUDA GPUs: Accelerate runs them only on GPU backends, so on CPU they are refused in
one line (torch itself can shard on ``gloo``; Accelerate does not offer it).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.utils import DistributedType

from tli.errors import ConfigError

T = TypeVar("T")

KINDS = ("single", "ddp", "fsdp", "deepspeed")
SHARDED = ("fsdp", "deepspeed")
"""Kinds where no process holds every parameter: state dicts must be gathered to be saved."""


@dataclass
class DistributedContext:
    """This process's place among the training processes, and the library wrapper that trains them."""

    rank: int = 0
    world_size: int = 1
    kind: str = "single"
    """``single`` (no launcher) | ``ddp`` | ``fsdp`` | ``deepspeed``."""
    accelerator: Any = None
    """The :class:`accelerate.Accelerator` under a launcher; None alone."""

    @property
    def is_main(self) -> bool:
        """Only the main process writes files."""
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        """Parameters are sharded over processes (FSDP, ZeRO-3)."""
        return self.kind in SHARDED

    def prepare(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[Any, Any]:
        """Wrap the model (DDP / FSDP / DeepSpeed engine) and its optimiser; unchanged when alone.

        Model and optimiser go in together so FSDP2 can point the optimiser at the sharded parameters. The
        learning-rate scheduler stays tli's (built on the returned optimiser): Accelerate's scheduler wrapper
        would step it once per process.
        """
        if self.accelerator is None:
            return model, optimizer
        return self.accelerator.prepare(model, optimizer)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, through Accelerate when launched (DeepSpeed's engine must run it).

        tli's loops already divide each micro-batch's loss by the accumulation steps ``k``; Accelerate divides it
        by its ``gradient_accumulation_steps`` (``k``, set by :func:`distributed_context`) again, and DeepSpeed's
        engine likewise. Their division is undone here, so a launched step's gradient is the one-process one.
        """
        if self.accelerator is None:
            loss.backward()
        else:
            self.accelerator.backward(loss * self.accelerator.gradient_accumulation_steps)

    def no_sync(self, model: Any):
        """Skip DDP's gradient all-reduce on a micro-batch that does not end an accumulation: the local sums
        are reduced once, at the step (the same average, one all-reduce instead of several)."""
        if self.kind != "ddp":
            return contextlib.nullcontext()
        return self.accelerator.no_sync(model)

    def clip_grad_norm_(self, parameters: Any, max_norm: float) -> None:
        """Clip the global gradient norm (over every shard under FSDP)."""
        if self.accelerator is None:
            torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        else:
            self.accelerator.clip_grad_norm_(parameters, max_norm)

    def unwrap(self, model: Any) -> Any:
        """The module inside a DDP / FSDP / DeepSpeed wrapper."""
        return model if self.accelerator is None else self.accelerator.unwrap_model(model)

    def full_state_dict(self, model: Any) -> dict[str, torch.Tensor] | None:
        """Every parameter of ``model`` on the main process (gathered from the shards under FSDP / ZeRO-3; all
        processes must call it). None when nothing needs gathering (alone, DDP): save the module directly."""
        if not self.sharded:
            return None
        from torch.distributed.tensor import DTensor

        state = self.accelerator.get_state_dict(model)
        # FSDP2 on CPU tensors hands back some shards as DTensors: gather those too (in the same key order on
        # every process, so the collectives match).
        return {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in state.items()}

    def mean(self, value: float) -> float:
        """The mean of a scalar over all processes (for logging the loss of the whole step)."""
        return self.sum(value) / self.world_size

    def sum(self, value: float) -> float:
        """The sum of a scalar over all processes (token counts)."""
        if self.world_size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._reduce_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return float(tensor.item())

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def gather_objects(self, value: Any) -> list[Any]:
        """Every process's ``value`` (picklable), in rank order, on every process (``[value]`` alone)."""
        if self.world_size == 1:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def main_value(self, value: Any) -> Any:
        """The main process's ``value`` (picklable) on every process, so all of them take its branch."""
        if self.world_size == 1:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _reduce_device(self) -> torch.device:
        """``nccl`` reduces CUDA tensors only; ``gloo`` CPU tensors."""
        if dist.is_initialized() and dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def describe(self) -> dict[str, Any]:
        """For ``results.json``: how the run was spread."""
        return {"kind": self.kind, "world_size": self.world_size}


def requested_kind() -> str:
    """What the launcher asked for: ``fsdp`` / ``deepspeed`` (``accelerate launch`` with such a config sets
    ``ACCELERATE_USE_FSDP`` / ``ACCELERATE_USE_DEEPSPEED``), else ``ddp``."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        return "fsdp"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        return "deepspeed"
    return "ddp"


def launched() -> bool:
    """Started by ``torchrun`` / ``accelerate launch`` with several processes, or with a sharding config."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or requested_kind() in SHARDED


def check_backend(kind: str, device: torch.device) -> None:
    """Refuse, in one line, a sharding the backend lacks.

    Raises:
        ConfigError: FSDP / DeepSpeed on a CPU (Accelerate runs them on GPU backends only), DeepSpeed without
        the
            ``deepspeed`` package.
    """
    if kind not in SHARDED:
        return
    name = {"fsdp": "FSDP", "deepspeed": "DeepSpeed ZeRO"}[kind]
    if device.type != "cuda":
        raise ConfigError(
            f"{name} was asked for (accelerate config) but this process runs on {device.type}: Accelerate "
            "shards "
            "only on CUDA GPUs; on CPU launch without the FSDP / DeepSpeed config (DDP over gloo), or use a "
            "GPU"
        )
    if kind == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(
            "DeepSpeed was asked for (accelerate config) but is not installed: pip install deepspeed, or use "
            "the "
            "FSDP config (tli/accelerate_configs/fsdp-8gpu.yaml)"
        )


_CONTEXT: DistributedContext | None = None


def distributed_context(device: torch.device, *, grad_accum: int = 1) -> DistributedContext:
    """The training context of this process: one per process (Accelerate's state is process-wide).

    Args:
        device: the device this process trains on (``cuda:LOCAL_RANK`` under a launcher on GPUs).
        grad_accum: micro-batches per optimiser step (DeepSpeed's ``gradient_accumulation_steps: auto``).

    Raises:
        ConfigError: FSDP / DeepSpeed asked for where they cannot run (:func:`check_backend`).
    """
    global _CONTEXT
    if not launched():
        return DistributedContext()
    kind = requested_kind()
    check_backend(kind, device)
    if _CONTEXT is not None:
        return _CONTEXT

    accelerator = Accelerator(cpu=device.type == "cpu", gradient_accumulation_steps=grad_accum)
    kinds = {DistributedType.FSDP: "fsdp", DistributedType.DEEPSPEED: "deepspeed"}
    resolved = kinds.get(accelerator.distributed_type, "ddp" if accelerator.num_processes > 1 else "single")
    _CONTEXT = DistributedContext(
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        kind=resolved,
        accelerator=accelerator,
    )
    return _CONTEXT


ACCELERATE_CONFIGS = ("1gpu", "8gpu-ddp", "8gpu-fsdp", "multinode-fsdp", "8gpu-deepspeed-zero3")
"""The ``accelerate launch --config_file`` files shipped in ``tli/accelerate_configs/``."""


def accelerate_config(name: str) -> Path:
    """Path of a shipped Accelerate config (``1gpu``, ``8gpu-ddp``, ``8gpu-fsdp``, ``multinode-fsdp``,
    ``8gpu-deepspeed-zero3``), to pass to ``accelerate launch --config_file`` or to copy and edit.

    Raises:
        ConfigError: an unknown name (the shipped ones listed).
    """
    if name not in ACCELERATE_CONFIGS:
        raise ConfigError(
            f"no shipped accelerate config {name!r}: choose from {', '.join(ACCELERATE_CONFIGS)}"
        )
    return Path(str(files("tli.accelerate_configs") / f"{name}.yaml"))


def current_context() -> DistributedContext:
    """The context :func:`distributed_context` made in this process, or a one-process context."""
    return _CONTEXT if _CONTEXT is not None else DistributedContext()


def shard(batches: list[list[int]], context: DistributedContext) -> list[list[int]]:
    """This rank's batches: ``batches[rank::W]``, after dropping the last ``len % W`` batches so every
    process takes the same number of steps."""
    usable = len(batches) - len(batches) % context.world_size
    return batches[:usable][context.rank :: context.world_size]


_SHARED: DistributedContext | None = None


@contextlib.contextmanager
def shared_evaluation(context: DistributedContext):
    """Within the block, evaluation splits its examples over ``context``'s processes (:func:`score_in_shares`).

    Every process must then run the same evaluation calls in the same order (``tli compare`` scores each cell on
    every process); outside the block, or alone, a process scores everything itself.
    """
    global _SHARED
    previous, _SHARED = _SHARED, context
    try:
        yield context
    finally:
        _SHARED = previous


def evaluation_context() -> DistributedContext:
    """The processes evaluation is shared over now (:func:`shared_evaluation`), or a one-process context."""
    return _SHARED if _SHARED is not None else DistributedContext()


def score_in_shares(order: Sequence[int], score: Callable[[list[int]], Sequence[T]]) -> dict[int, T]:
    """``{index: score of index}`` for every index of ``order``, the work split over the evaluation processes.

    Process ``r`` of ``W`` scores ``order[r::W]`` — dealt like cards, so an ``order`` sorted by length gives every
    process as much work — padded with ``order[-1]`` to ``⌈n / W⌉`` indices, so every process runs the same number
    of batches (a model sharded by FSDP needs every process in every forward; the padded scores are dropped).
    The shares' scores are gathered to every process with ``all_gather_object``. Alone (:func:`evaluation_context`
    has one process), ``score(list(order))``.

    Args:
        order: Example indices, in the order the work should be dealt (longest first, say).
        score: Maps a list of indices to one score per index, in that order (collective calls inside it, such as a
            forward of a sharded model, run the same number of times on every process).
    """
    context = evaluation_context()
    order = list(order)
    if context.world_size == 1:
        return dict(zip(order, score(order), strict=True))
    if not order:
        return {}
    own = order[context.rank :: context.world_size]
    per_process = -(-len(order) // context.world_size)
    scores = list(score(own + [order[-1]] * (per_process - len(own))))
    mine = list(zip(own, scores[: len(own)], strict=True))
    return dict(pair for part in context.gather_objects(mine) for pair in part)


def split_examples(batch: list[int], context: DistributedContext) -> list[int]:
    """This rank's examples of one global batch: ``batch[rank::W]`` (every rank gets at least one when the
    batch has ``>= W`` examples, which the caller checks)."""
    return batch[context.rank :: context.world_size]
