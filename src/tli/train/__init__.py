"""TLI fine-tuning: LoRA with a contrastive loss on pooled embeddings of one early target layer.

One readable training function, :func:`run_training`, in commented phases: forward to the target layer,
loss, accumulation, step, log, validate, checkpoint. Published defaults (arXiv 2506.15415): LoRA on
``q_proj`` and ``v_proj`` (r 16, alpha 32, dropout 0.05), triplet loss with the hardest in-batch negative
(margin 0.4), AdamW lr 2e-4, linear schedule with 50 warm-up steps, 5 epochs, batch 8.

What tli does differently, and why:

- LoRA goes only on the blocks whose output reaches the target layer (blocks ``0..L-1`` for
  ``hidden_states[L]``): later blocks get no gradient from a loss at layer ``L``.
- Only the embeddings and those blocks are read from the checkpoint (no later block, no ``lm_head``), and
  the model trained is a :class:`~tli.embed.LayerEncoder` that ends after block ``L-1``: an ordinary module
  that DDP, FSDP or DeepSpeed wrap through Accelerate under ``torchrun`` / ``accelerate launch``
  (:mod:`tli.distributed`).
- Negatives never include a translation of the anchor anywhere in the lexicon (``bahari`` → sea / ocean).
- A leak-free validation split of the trained pairs is scored after every epoch (loss and retrieval MRR at
  the target layer); with ``early_stopping_patience`` the best epoch's adapter is kept.

The modules, in the order a run uses them:

- :mod:`~tli.train.api` — :func:`train`: the run directory, the model load, one run per seed.
- :mod:`~tli.train.setup` — what the loop needs: pairs, LoRA encoder, objective, optimiser, schedule.
- :mod:`~tli.train.lora` — the one LoRA recipe (also the task fine-tuning strategies').
- :mod:`~tli.train.batches` — each epoch's seeded order and batches, and pairs → padded forwards.
- :mod:`~tli.train.loop` — :func:`run_training`, the loop itself, and the final adapter.
- :mod:`~tli.train.validation` — the leak-free validation split and its per-epoch scores.
- :mod:`~tli.train.checkpoint` — epoch checkpoints and resume (adapter, optimiser, schedule, RNG).
- :mod:`~tli.train.metrics_log`, :mod:`~tli.train.diagnostics` — the step log; warm-up and loss warnings.
- :mod:`~tli.train.result` — :class:`TrainResult`.

In-function imports: ``peft`` and transformers' learning-rate schedule, only when training: importing either
imports bitsandbytes, which reaches for the Hugging Face Hub and warns about its CPU kernels (an offline
``tli train`` whose model cannot load would print more than its one error line).
"""

from tli.adapter import ADAPTER_META
from tli.config import TrainConfig
from tli.train.api import TRAINING_FILES, clear_training, is_main_process, process_device, seed_dir, train
from tli.train.batches import EPOCH_SEED_STRIDE, PairBatcher, chunk, epoch_batches, epoch_order
from tli.train.checkpoint import (
    ACCELERATE_STATE,
    adapter_state,
    latest_checkpoint,
    load_adapter_weights,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    stack_prefix,
)
from tli.train.diagnostics import WARMUP_SHARE_WHEN_TOO_LONG, loss_warnings, warmup_for
from tli.train.loop import run_training
from tli.train.lora import add_lora, build_lora
from tli.train.metrics_log import MetricsLog
from tli.train.result import TrainResult
from tli.train.validation import validate, validation_split

__all__ = [
    "ACCELERATE_STATE",
    "ADAPTER_META",
    "EPOCH_SEED_STRIDE",
    "TRAINING_FILES",
    "WARMUP_SHARE_WHEN_TOO_LONG",
    "MetricsLog",
    "PairBatcher",
    "TrainConfig",
    "TrainResult",
    "adapter_state",
    "add_lora",
    "build_lora",
    "chunk",
    "clear_training",
    "epoch_batches",
    "epoch_order",
    "is_main_process",
    "latest_checkpoint",
    "load_adapter_weights",
    "load_checkpoint",
    "loss_warnings",
    "process_device",
    "rng_state",
    "run_training",
    "save_checkpoint",
    "seed_dir",
    "set_rng_state",
    "stack_prefix",
    "train",
    "validate",
    "validation_split",
    "warmup_for",
]
