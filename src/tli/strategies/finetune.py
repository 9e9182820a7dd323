"""The one task fine-tuning loop every strategy shares: causal-LM loss on the answer tokens.

Features come from a task (``{"input_ids", "labels"}`` with labels −100 on prompt tokens), so the loss is
``L = mean over answer tokens of −log p(token | preceding tokens)`` (Hugging Face shifts labels inside the
model). Every strategy gets the same features in the same seeded order, the same number of optimiser steps,
batch size and AdamW with a linear schedule after warm-up; only the trainable parameters differ.

Under ``torchrun`` / ``accelerate launch`` the model goes through Accelerate (DDP, or FSDP / DeepSpeed ZeRO-3
with the shipped configs, for full fine-tuning of models no GPU holds): each of the ``W`` processes takes
``batch[rank::W]`` of every step's ``batch_size`` examples and normalises its summed token loss by the step's
answer tokens over all processes, ``L_r = Σ_{tokens of r} −log p / (N_step / W)``, so DDP's gradient average
``(1/W) Σ_r ∇L_r = ∇(Σ −log p / N_step)`` is the one-process gradient of the whole batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from tli.distributed import distributed_context, split_examples
from tli.errors import ConfigError, DataError, TrainingError
from tli.progress import Progress
from tli.train import epoch_order


@dataclass(kw_only=True)
class Budget:
    """The training budget of a comparison: identical for every strategy."""

    steps: int = 20
    """Optimiser steps of task fine-tuning."""
    batch_size: int = 4
    """Examples per step."""
    lr: float = 2e-4
    """AdamW learning rate (linear decay after warm-up)."""
    warmup_steps: int = 2
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    """Gradient clipping (0 = none)."""

    def __post_init__(self) -> None:
        problems = []
        if self.steps < 1:
            problems.append(
                f"budget steps must be >= 1, got {self.steps} (a budget of zero steps trains nothing)"
            )
        if self.batch_size < 1:
            problems.append(f"budget batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            problems.append(f"budget lr must be > 0, got {self.lr}")
        if self.warmup_steps < 0:
            problems.append(f"budget warmup_steps must be >= 0, got {self.warmup_steps}")
        if problems:
            raise ConfigError("; ".join(problems))


def batches(n: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """``steps`` batches of example indices: seeded shuffles of all examples (:func:`tli.train.epoch_order`,
    the order TLI training uses), repeated as needed."""
    order: list[int] = []
    epoch = 0
    while len(order) < steps * batch_size:
        order += epoch_order(n, seed, epoch)
        epoch += 1
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(steps)]


def collate(features: list[dict], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (−100 on padding), each ``(B, T)``."""
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    labels = torch.full((len(features), width), -100, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for row, feature in enumerate(features):
        n = len(feature["input_ids"])
        ids[row, :n] = torch.tensor(feature["input_ids"])
        labels[row, :n] = torch.tensor(feature["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def finetune(
    model: Any,
    features: list[dict],
    budget: Budget,
    *,
    seed: int,
    pad_id: int,
    device: torch.device,
    progress: bool | None = None,
    desc: str = "fine-tuning",
) -> dict[str, Any]:
    """Fine-tune the trainable parameters of ``model`` on ``features`` for ``budget.steps`` steps.

    Under a launcher ``model`` is wrapped by Accelerate for the loop (DDP, FSDP or DeepSpeed); FSDP shards it
    in place, so afterwards every process must take part in its forwards and in saving it
    (:meth:`tli.strategies.base.Strategy.save`).

    Returns:
        ``steps``, ``tokens_seen`` (non-padding tokens of every batch, over all processes), ``loss_first`` /
        ``loss_last`` (mean of the first / last 10 % of steps) and the per-step ``losses``.

    Raises:
        TliError: no training features, no trainable parameter, or a non-finite loss (names the step).
        ConfigError: fewer examples per step than processes, or FSDP / DeepSpeed on a CPU.
    """
    from transformers import get_linear_schedule_with_warmup

    if not features:
        raise DataError("no training examples for task fine-tuning: check the train task's path and language")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ConfigError("the strategy left no trainable parameter to fine-tune")
    context = distributed_context(torch.device(device))
    if budget.batch_size < context.world_size:
        raise ConfigError(
            f"budget batch_size {budget.batch_size} is smaller than the {context.world_size} processes: "
            "every "
            "process needs an example per step (raise batch_size or launch fewer processes)"
        )
    torch.manual_seed(seed)
    model.train()
    optimizer = torch.optim.AdamW(trainable, lr=budget.lr, weight_decay=budget.weight_decay)
    wrapped, optimizer = context.prepare(model, optimizer)
    scheduler = get_linear_schedule_with_warmup(optimizer, budget.warmup_steps, budget.steps)
    losses, tokens = [], 0
    with Progress(budget.steps, desc, enabled=progress if context.is_main else False) as bar:
        for step, batch in enumerate(batches(len(features), budget.batch_size, budget.steps, seed), start=1):
            inputs = collate([features[i] for i in split_examples(batch, context)], pad_id, device)
            if (
                context.world_size > 1
            ):  # this rank's token sum over the step's mean (see the module docstring)
                answer_tokens = context.sum(float((inputs["labels"][:, 1:] != -100).sum()))
                inputs["num_items_in_batch"] = torch.tensor(answer_tokens / context.world_size, device=device)
            loss = wrapped(**inputs).loss
            step_loss = context.mean(loss.item())
            if not math.isfinite(step_loss):
                raise TrainingError(f"fine-tuning loss is {step_loss} at step {step}: lower the budget's lr")
            context.backward(loss)
            if budget.max_grad_norm:
                context.clip_grad_norm_(
                    wrapped.parameters() if context.sharded else trainable, budget.max_grad_norm
                )
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(step_loss)
            tokens += int(context.sum(float(inputs["attention_mask"].sum())))
            bar.update(1, loss=losses[-1])
    model.eval()
    tenth = max(1, len(losses) // 10)
    return {
        "steps": len(losses),
        "tokens_seen": tokens,
        "loss_first": sum(losses[:tenth]) / tenth,
        "loss_last": sum(losses[-tenth:]) / tenth,
        "losses": losses,
    }
