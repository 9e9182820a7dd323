"""Data parallelism for ``tli train`` under ``torchrun`` or ``accelerate launch``.

Each process trains on its own share of every epoch's batches (batch ``k`` goes to rank ``k mod W``) and
the LoRA gradients are averaged across processes before each optimiser step. ``W`` processes with batch
``B`` therefore take exactly the steps of one process with batch ``B`` and ``--grad-accum W``: the same
pairs, the same in-batch negatives, the same averaged gradient. The adapter weights are few, so an
explicit all-reduce of their gradients is cheap and needs no model wrapper (the forward pass stops early
through a hook, which a ``DistributedDataParallel`` wrapper would not see).

Launch with ``torchrun --nproc_per_node N -m tli train …`` or ``accelerate launch -m tli train …``; the
process group comes from the launcher's environment (``gloo`` on CPU, ``nccl`` on CUDA). Without a
launcher everything here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistributedContext:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes files."""
        return self.rank == 0

    def average_gradients(self, parameters) -> None:
        """``g ← (1/W) Σ_ranks g`` for every parameter that has a gradient."""
        if self.world_size == 1:
            return
        for param in parameters:
            if param.grad is not None:
                dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
                param.grad /= self.world_size

    def mean(self, value: float) -> float:
        """The mean of a scalar over all processes (for logging the loss of the whole step)."""
        if self.world_size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return float(tensor.item()) / self.world_size

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def distributed_context(device: torch.device) -> DistributedContext:
    """Join the process group a launcher set up (``WORLD_SIZE`` > 1 in the environment), else run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank=dist.get_rank(), world_size=dist.get_world_size())


def shard(batches: list[list[int]], context: DistributedContext) -> list[list[int]]:
    """This rank's batches: ``batches[rank::W]``, after dropping the last ``len % W`` batches so every
    process takes the same number of steps."""
    usable = len(batches) - len(batches) % context.world_size
    return batches[:usable][context.rank :: context.world_size]
