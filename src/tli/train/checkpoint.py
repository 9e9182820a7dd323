"""Epoch checkpoints: what a resumed run needs to take exactly the steps an uninterrupted run would.

A checkpoint ``checkpoints/epoch-<k>/`` holds the adapter (PEFT format), ``training_state.pt`` (optimiser,
scheduler and every RNG state) and ``trainer_state.json`` (epoch, step, losses), written last so a directory
without it is never taken for a complete checkpoint. Under FSDP / DeepSpeed the model and optimiser state are
sharded and go through Accelerate's ``save_state`` / ``load_state`` into ``accelerate_state/``.

Why one process (and DDP) do not use Accelerate's ``save_state`` / ``load_state`` too (measured on the tiny
test Llama, 2 epochs, LoRA dropout 0.1, interrupted in epoch 2 and resumed):

- Bit-identity is not the obstacle. Alone, today's checkpoints and ``save_state`` (an ``Accelerator`` built for
  the run, encoder and optimiser prepared, the scheduler registered) both resume to an adapter ``torch.equal``
  to the uninterrupted one, and preparing on one process changes no number.
- Size: ``save_state`` writes the full state dict of every prepared model, here the whole
  :class:`~tli.embed.LayerEncoder` (frozen embeddings and blocks ``0..L-1`` with the LoRA weights):
  1.65 MB per epoch instead of 0.20 MB on the tiny model, gigabytes instead of megabytes on a 7B base.
  Keeping it to the adapter takes save / load hooks of our own around ``save_state``.
- Alone there is no ``Accelerator`` (plain PyTorch by design, see :mod:`tli.distributed`), and ``save_state``
  saves only what one prepared or registered; one would have to be made just to checkpoint.
- Checkpoints already on disk (``training_state.pt`` with the optimiser) would still need this loader.

Every launched process saves its own RNG state (``rng_per_rank``, gathered to the main process) and restores it:
under DDP with dropout each process draws the masks of its own batches, so restoring the main process's state on
every process made a resumed 2-process run differ from an uninterrupted one (max |Δ| 7.7e-3 on the tiny model);
now they are ``torch.equal`` (``tests/test_distributed.py``). A checkpoint written before, or by another number of
processes, restores the main process's state as it did.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from tli.distributed import DistributedContext
from tli.io import atomic_write_json, replace_dir_atomically


def rng_state() -> dict[str, Any]:
    """Every random state training uses (Python, numpy, torch CPU, and CUDA when present)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


ACCELERATE_STATE = "accelerate_state"
"""Sub-directory of a checkpoint with Accelerate's sharded model and optimiser state (FSDP / DeepSpeed)."""


def adapter_state(model, encoder, context: DistributedContext) -> dict[str, torch.Tensor] | None:
    """The full adapter state of ``model`` (a PeftModel) when its parameters are sharded, else None (save
    ``model`` itself). Every process must call it: FSDP / ZeRO-3 gather the shards."""
    full = context.full_state_dict(encoder)
    if full is None:
        return None
    prefix = stack_prefix(model, context.unwrap(encoder).stack)
    return {f"{prefix}.{k.removeprefix('stack.')}": v for k, v in full.items() if "lora_" in k}


def stack_prefix(model, stack) -> str:
    """The name of the decoder stack inside ``model`` (``base_model.model.model`` for a PEFT causal LM), found
    by the shared embedding so it holds for any wrapper."""
    embed = stack.embed_tokens
    for name, module in model.named_modules():
        if module is embed:
            return name.removesuffix(".embed_tokens")
    raise AssertionError("the encoder's embedding is not part of the model")


def rng_states_of_every_rank(context: DistributedContext | None) -> list[dict[str, Any]] | None:
    """Each launched process's RNG state, in rank order (None alone): under DDP each process draws its own
    dropout masks, so each must resume from its own state for a resumed run to equal an uninterrupted one."""
    if context is None or context.world_size == 1:
        return None
    import torch.distributed as dist

    states: list[Any] = [None] * context.world_size
    dist.all_gather_object(states, rng_state())
    return states


def own_rng_state(saved: dict[str, Any], context: DistributedContext | None) -> dict[str, Any]:
    """This process's saved RNG state; the main process's for a checkpoint written alone, by another number of
    processes, or before per-process states were saved."""
    per_rank = saved.get("rng_per_rank")
    if context is not None and per_rank is not None and len(per_rank) == context.world_size:
        return per_rank[context.rank]
    return saved["rng"]


def save_checkpoint(
    directory: Path,
    model,
    optimizer,
    scheduler,
    state: dict[str, Any],
    *,
    adapter: dict[str, torch.Tensor] | None = None,
    context: DistributedContext | None = None,
) -> Path:
    """Adapter (PEFT format) + optimiser, scheduler and RNG state (every launched process's), written to a temp
    dir then renamed.

    Under FSDP / DeepSpeed (``context.sharded``) the optimiser state is sharded: every process writes its part
    with Accelerate's ``save_state`` into ``ACCELERATE_STATE`` first, then the main process writes the rest
    (``trainer_state.json`` last, as always, so an interrupted checkpoint is never taken for a complete one).
    """
    sharded = context is not None and context.sharded
    if sharded:
        context.accelerator.save_state(str(directory.with_name(directory.name + ".state")))
        context.barrier()
    per_rank = rng_states_of_every_rank(context)  # every process takes part; only the main one writes
    if context is not None and not context.is_main:
        return directory

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, state_dict=adapter) if adapter is not None else model.save_pretrained(tmp)
        if sharded:
            os.replace(directory.with_name(directory.name + ".state"), tmp / ACCELERATE_STATE)
            training_state = {"scheduler": scheduler.state_dict()}
        else:
            training_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        if per_rank is not None:
            training_state["rng_per_rank"] = per_rank
        torch.save({**training_state, "rng": rng_state()}, tmp / "training_state.pt")
        atomic_write_json(tmp / "trainer_state.json", state)

    return replace_dir_atomically(directory, write)


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The last complete epoch checkpoint (it has ``trainer_state.json``), or None."""
    done = [p for p in checkpoints.glob("epoch-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def load_adapter_weights(model, directory: Path) -> None:
    """Put the adapter weights saved in ``directory`` into ``model`` (a PeftModel)."""
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(model, load_file(str(directory / "adapter_model.safetensors")))


def load_checkpoint(
    directory: Path, model, optimizer, scheduler, context: DistributedContext | None = None
) -> dict[str, Any]:
    """Restore adapter weights, optimiser, scheduler and RNG; returns the trainer state (sharded runs restore
    model and optimiser shards with Accelerate's ``load_state``)."""
    if context is not None and context.sharded:
        context.accelerator.load_state(str(directory / ACCELERATE_STATE))
    else:
        load_adapter_weights(model, directory)
    saved = torch.load(directory / "training_state.pt", weights_only=False)
    if "optimizer" in saved:
        optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    set_rng_state(own_rng_state(saved, context))
    return json.loads((directory / "trainer_state.json").read_text())


CHECKPOINT_ONLY = (ACCELERATE_STATE, "training_state.pt", "trainer_state.json")
"""What a checkpoint holds besides the adapter (not copied into ``adapter/``)."""


def checkpoint_only(_directory: str, names: list[str]) -> list[str]:
    """:func:`shutil.copytree`'s ``ignore``: the names in ``names`` that only a checkpoint holds."""
    return [n for n in names if n in CHECKPOINT_ONLY]
