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

In-function imports: ``peft`` and transformers' learning-rate schedule, only when training: importing either
imports bitsandbytes, which reaches for the Hugging Face Hub and warns about its CPU kernels (an offline
``tli train`` whose model cannot load would print more than its one error line).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from tli.adapter import ADAPTER_META, write_adapter_files
from tli.config import TrainConfig
from tli.distributed import DistributedContext, distributed_context, launched, shard
from tli.embed import (
    EmbedConfig,
    Encoded,
    LayerEncoder,
    bos_record,
    drop_unembeddable_pairs,
    encode_words,
    pad_batch,
)
from tli.errors import ConfigError, DataError, LexiconError, TrainingError
from tli.io import atomic_write_json, atomic_write_text, read_json_lines, replace_dir_atomically
from tli.lexicon import Lexicon, Pair, lexicon_record, split_for_study
from tli.losses import LOSSES, ObjectiveInputs, build_objective, valid_negative_mask  # noqa: F401 (LOSSES: the registry build_objective reads)
from tli.metrics import PairIndex, mean_reciprocal_rank, retrieval_ranks
from tli.models import LoadedModel, base_causal_lm, load_model, resolve_device
from tli.progress import Progress
from tli.report import write_train_run
from tli.runs import COMPLETE, check_writable, holding_run_dir, is_complete, mark_complete, provenance
from tli.threads import configure_threads
from tli.tracking import tensorboard_writer

log = logging.getLogger(__name__)

__all__ = ["ADAPTER_META", "TrainConfig", "TrainResult", "run_training", "train"]


@dataclass
class TrainResult:
    """Where the adapter is, and what training did."""

    out: str
    adapter: str
    target_layer: int
    epoch_losses: list[float]
    timing: dict[str, float]
    n_train_pairs: int
    seed: int = 0
    n_validation_pairs: int = 0
    validation: list[dict[str, float]] = field(default_factory=list)
    """Per epoch: ``epoch``, validation ``loss`` and ``mrr`` (retrieval among the validation targets)."""
    best_epoch: int | None = None
    stopped_early: bool = False
    warnings: list[str] = field(default_factory=list)
    skipped_pairs: list[dict[str, str]] = field(default_factory=list)
    trainable_parameters: int = 0
    tokens_seen: int = 0
    """Non-padding tokens of the training forwards of this run, over all processes (validation excluded)."""
    distributed: dict[str, Any] = field(default_factory=lambda: {"kind": "single", "world_size": 1})
    """How training was spread: ``kind`` (single, ddp, fsdp, deepspeed) and ``world_size``."""
    warmup_steps: int | None = None
    """Warm-up steps scheduled (``--warmup-steps``, or fewer when those would outlast the run)."""


# ---------------------------------------------------------------------------------------------------
# Pieces


def build_lora(
    model: Any,
    layers: list[int] | None,
    rank: int,
    alpha: float,
    dropout: float,
    target_modules: list[str] | tuple[str, ...],
    *,
    label: str = "--target-modules",
) -> Any:
    """Wrap a causal LM with LoRA adapters on ``target_modules`` of the blocks ``layers`` (None = every block).

    Each adapted linear computes ``h ↦ W₀h + (α/r)·B A h`` with ``A`` (r×in) random and ``B`` (out×r) zero at
    the start; only ``A`` and ``B`` are trained. The one LoRA recipe of TLI training and of the task
    fine-tuning strategies.

    Raises:
        ConfigError: a target module the model does not have (the message starts with ``label``).
    """
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        layers_to_transform=layers,
        layers_pattern="layers" if layers is not None else None,
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigError(f"{label} {target_modules}: {exc}".splitlines()[0]) from exc


def add_lora(lm: Any, config: TrainConfig, num_layers: int) -> Any:
    """TLI's LoRA (:func:`build_lora`) on ``config.target_modules`` of the trainable blocks."""
    layers = config.trainable_layers()
    if not layers or max(layers) >= num_layers or min(layers) < 0:
        raise ConfigError(f"--lora-layers {layers}: blocks run 0..{num_layers - 1}")
    if config.quantization not in (None, "none"):
        # QLoRA: freeze the quantised base and keep inputs' grads flowing (tli already loaded the
        # non-quantised parameters in fp32, so nothing is upcast in place here).
        from peft import prepare_model_for_kbit_training

        lm = prepare_model_for_kbit_training(lm, use_gradient_checkpointing=False)
    return build_lora(
        lm, layers, config.lora_r, config.lora_alpha, config.lora_dropout, config.target_modules
    )


EPOCH_SEED_STRIDE = 1_000_003
"""A prime: epoch ``e`` of seed ``s`` shuffles with ``s·1000003 + e``, distinct for every epoch below it."""


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """``0..n-1`` shuffled by ``random.Random(seed·1000003 + epoch)``: the order depends only on (seed, epoch),
    so a resumed run sees exactly the examples an uninterrupted run would (TLI training and task fine-tuning)."""
    order = list(range(n))
    random.Random(seed * EPOCH_SEED_STRIDE + epoch).shuffle(order)
    return order


def epoch_batches(n_pairs: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch's batches of pair indices, in :func:`epoch_order`."""
    return chunk(epoch_order(n_pairs, seed, epoch), batch_size)


def chunk(order: list[int], batch_size: int) -> list[list[int]]:
    """Consecutive batches of ``batch_size``; a lone last pair (no negative) joins the previous batch."""
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches[-2].extend(batches.pop())
    return batches


def validation_split(
    trained: Lexicon, fraction: float, seed: int
) -> tuple[Lexicon, Lexicon | None, str | None]:
    """Hold out a leak-free share of the trained pairs for validation (the split's rules: no shared word).

    Returns:
        ``(train, validation or None, warning or None)``: no validation when ``fraction`` is 0 or the pairs
        cannot be split (every pair linked to every other).
    """
    if fraction <= 0:
        return trained, None, None
    try:
        grouped, _ = Lexicon(
            [Pair(p.source, p.target) for p in trained],
            trained.source_lang,
            trained.target_lang,
            trained.path,
        ).split_with_report(fraction, seed)
    except LexiconError as exc:
        return trained, None, f"no validation split ({exc})"
    train_part, validation = grouped.subset("trained"), grouped.subset("control")
    if len(validation) < 2 or len(train_part) < 2:
        return (
            trained,
            None,
            f"no validation split: only {len(validation)} pair(s) could be held out leak-free",
        )
    return train_part, validation, None


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
    """Adapter (PEFT format) + optimiser, scheduler and RNG state, written to a temp dir then renamed.

    Under FSDP / DeepSpeed (``context.sharded``) the optimiser state is sharded: every process writes its part
    with Accelerate's ``save_state`` into ``ACCELERATE_STATE`` first, then the main process writes the rest
    (``trainer_state.json`` last, as always, so an interrupted checkpoint is never taken for a complete one).
    """
    sharded = context is not None and context.sharded
    if sharded:
        context.accelerator.save_state(str(directory.with_name(directory.name + ".state")))
        context.barrier()
    if context is not None and not context.is_main:
        return directory

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, state_dict=adapter) if adapter is not None else model.save_pretrained(tmp)
        if sharded:
            os.replace(directory.with_name(directory.name + ".state"), tmp / ACCELERATE_STATE)
            training_state = {"scheduler": scheduler.state_dict()}
        else:
            training_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
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
    set_rng_state(saved["rng"])
    return json.loads((directory / "trainer_state.json").read_text())


class MetricsLog:
    """Step metrics as JSON lines (and TensorBoard when installed)."""

    def __init__(self, path: Path, keep_until_step: int = 0, enabled: bool = True):
        self.path, self.enabled, self.writer = path, enabled, None
        if not enabled:  # not the main process: another process writes the log
            return
        # On resume, drop lines from the interrupted (un-checkpointed) part of the run.
        kept = []
        if path.exists() and keep_until_step > 0:
            kept = [record for record in read_json_lines(path) if record.get("step", 0) <= keep_until_step]
        atomic_write_text(path, "".join(json.dumps(record) + "\n" for record in kept))
        # Without TensorBoard installed, no writer: the JSONL log is complete on its own.
        self.writer = tensorboard_writer(path.parent / "tensorboard", required=False)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key in ("loss", "lr", "validation_loss", "validation_mrr"):
                if key in record:
                    self.writer.add_scalar(f"train/{key}", record[key], record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


WARMUP_SHARE_WHEN_TOO_LONG = 0.1
"""Warm-up as a share of the run's steps when ``--warmup-steps`` would outlast the run."""


def warmup_for(warmup_steps: int, total_steps: int, lr: float) -> tuple[int, str | None]:
    """The warm-up steps to schedule, and a warning when the asked ones would outlast the run.

    With linear warm-up the learning rate after step ``t`` is ``lr · t / warmup``: with ``warmup ≥ total`` it would
    never reach ``lr`` (50 warm-up steps in a 5-step run peak at a tenth of it). The warm-up is then scaled to
    ``WARMUP_SHARE_WHEN_TOO_LONG`` of the steps, and the warning says so.
    """
    if warmup_steps < total_steps or warmup_steps == 0:
        return warmup_steps, None
    scaled = int(WARMUP_SHARE_WHEN_TOO_LONG * total_steps)
    peak = lr * min(1.0, total_steps / warmup_steps)
    return scaled, (
        f"--warmup-steps {warmup_steps} is not shorter than the run's {total_steps} optimiser steps: the learning "
        f"rate would peak at {peak:.3g} instead of --lr {lr:g}; warm-up scaled to {scaled} step(s) "
        f"({WARMUP_SHARE_WHEN_TOO_LONG:.0%} of the run); pass a smaller --warmup-steps to choose it"
    )


def loss_warnings(config: TrainConfig, epoch_losses: list[float]) -> list[str]:
    """What a final loss at a tell-tale value means.

    - Triplet loss settled at its margin: the hardest negative ends as close as the positive — the space
      collapsed (everything pulled together) rather than aligned.
    - InfoNCE loss at ``ln(batch)``: the loss of uniform guessing among the batch — nothing learned.
    """
    if not epoch_losses:
        return []
    final = epoch_losses[-1]
    if config.loss == "triplet" and abs(final - config.margin) <= 0.02 * config.margin:
        return [
            f"the triplet loss settled at {final:.4f}, the margin ({config.margin}): the hardest in-batch "
            "negative ends as similar as the positive, so training pulled all words together rather than "
            "translations apart from non-translations (check the gap and retrieval claims)"
        ]
    chance = math.log(config.batch_size)
    if config.loss == "infonce" and final >= 0.98 * chance:
        return [
            f"the InfoNCE loss ended at {final:.4f}, the chance level ln({config.batch_size}) = "
            f"{chance:.4f}: the model does not tell a batch's translations apart"
        ]
    return []


def _objective_inputs(loss_fn, loaded, config, batcher, pairs, known, usable, control) -> ObjectiveInputs:
    """The bank of trained targets and the out-of-lexicon preservation words the objective asks for."""
    vocabulary: list[str] = []
    if loss_fn.uses_preservation:
        from tli.bli import tokenizer_vocabulary

        vocabulary = tokenizer_vocabulary(loaded.tokenizer, min_chars=3)
    lexicon_words = {w for lex in (usable, control) if lex for p in lex for w in (p.source, p.target)}
    return ObjectiveInputs(
        loss_fn,
        batcher.pooled_words,
        [p.target for p in pairs],
        known,
        vocabulary=vocabulary,
        excluded=lexicon_words,
        seed=config.seed,
    )


class _Batcher:
    """Pairs → padded model inputs for the target layer (every distinct string tokenized once)."""

    def __init__(self, loaded: LoadedModel, config: TrainConfig, *lexicons: Lexicon | None):
        embed_config = EmbedConfig.from_recipe(config.recipe())
        self.tokenizer, self.embed_config = loaded.tokenizer, embed_config
        strings = list(dict.fromkeys(w for lex in lexicons if lex for p in lex for w in (p.source, p.target)))
        self.encoded: dict[str, Encoded] = dict(
            zip(strings, encode_words(strings, loaded.tokenizer, embed_config), strict=True)
        )
        self.pad_id, self.device, self.layer = (
            loaded.tokenizer.pad_token_id,
            loaded.device,
            config.target_layer,
        )
        self.tokens_seen = 0
        """Non-padding tokens of every forward so far."""

    def pooled(self, encoder, pairs: list[Pair]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled target-layer embeddings ``(B, H)`` of the sources and of the targets, in one forward of the
        (possibly DDP / FSDP-wrapped) :class:`~tli.embed.LayerEncoder`."""
        items = [self.encoded[p.source] for p in pairs] + [self.encoded[p.target] for p in pairs]
        ids, attention, weights = pad_batch(items, self.pad_id, self.device)
        self.tokens_seen += int(attention.sum())
        pooled = encoder(ids, attention, weights)  # (2B, H)
        return pooled[: len(pairs)], pooled[len(pairs) :]

    def pooled_words(self, encoder, words: list[str]) -> torch.Tensor:
        """Pooled target-layer embeddings ``(N, H)`` of any words (encoded once, then cached)."""
        new = [w for w in dict.fromkeys(words) if w not in self.encoded]
        if new:
            self.encoded.update(zip(new, encode_words(new, self.tokenizer, self.embed_config), strict=True))
        ids, attention, weights = pad_batch([self.encoded[w] for w in words], self.pad_id, self.device)
        self.tokens_seen += int(attention.sum())
        return encoder(ids, attention, weights)


def validate(encoder, batcher: _Batcher, validation: Lexicon, loss_fn, config: TrainConfig, known) -> dict:
    """Validation loss (same loss, fixed batches, dropout off) and MRR of each validation source's
    translation among all validation targets at the target layer (every process scores the whole validation
    set: under FSDP each forward needs them all)."""
    was_training = encoder.training
    encoder.eval()
    pairs = list(validation)
    losses, sources, targets = [], {}, {}
    with torch.no_grad():
        for batch_ids in chunk(list(range(len(pairs))), config.batch_size):
            batch = [pairs[k] for k in batch_ids]
            anchors, positives = batcher.pooled(encoder, batch)
            mask = valid_negative_mask([p.source for p in batch], [p.target for p in batch], known)
            losses.append(float(loss_fn(anchors, positives, mask.to(anchors.device))))
            for p, a, t in zip(batch, anchors, positives, strict=True):
                sources[p.source], targets[p.target] = a.float().cpu(), t.float().cpu()
    encoder.train(was_training)
    _, _, index = PairIndex.from_lexicon(validation)  # unique strings in first-seen order, as the dicts
    src = torch.nn.functional.normalize(torch.stack(list(sources.values())), dim=-1)
    tgt = torch.nn.functional.normalize(torch.stack(list(targets.values())), dim=-1)
    gold = index.gold()
    ranks = retrieval_ranks(src @ tgt.T, gold)
    return {"loss": float(np.mean(losses)) if losses else float("nan"), "mrr": mean_reciprocal_rank(ranks)}


# ---------------------------------------------------------------------------------------------------
# The training function


@dataclass
class _Training:
    """What ``_set_up`` builds for the training loop (one process's view under a launcher)."""

    context: DistributedContext
    model: Any
    """The ``PeftModel`` holding the adapter being trained."""
    encoder: Any
    """The :class:`~tli.embed.LayerEncoder` over ``model`` (wrapped by Accelerate under a launcher)."""
    optimizer: Any
    scheduler: Any
    loss_fn: Any
    objective_inputs: ObjectiveInputs
    """What the objective needs besides the batch (the bank of trained targets, the preservation words)."""
    known: set[tuple[str, str]]
    """Every (source, target) of the usable training lexicon: the polysemy mask of the negatives."""
    batcher: _Batcher
    train_part: Lexicon
    pairs: list[Pair]
    validation: Lexicon | None
    skipped: list[dict[str, str]]
    warnings: list[str]
    total_steps: int
    warmup_steps: int
    n_trainable: int


def _set_up(loaded: LoadedModel, trained: Lexicon, config: TrainConfig, control: Lexicon | None) -> _Training:
    """The usable pairs and their validation split, the LoRA-wrapped encoder of the target layer, the loss
    (the objective and its inputs; ``control`` words are kept out of the preservation words), the optimiser
    and the linear warm-up schedule (prepared by Accelerate under a launcher); the run's warnings are logged
    here, before training."""
    from transformers import get_linear_schedule_with_warmup

    usable, skipped = drop_unembeddable_pairs(
        trained, loaded.tokenizer, EmbedConfig.from_recipe(config.recipe())
    )
    if len(usable) < 2:
        raise DataError(f"{len(usable)} trained pair(s): a contrastive batch needs >= 2 pairs")
    # One process unless launched by torchrun / accelerate launch; FSDP on a CPU is refused here.
    context = distributed_context(loaded.device, grad_accum=config.grad_accum)
    num_layers = base_causal_lm(loaded.model).config.num_hidden_layers
    train_part, validation, split_warning = validation_split(
        usable, config.validation_fraction, config.split_seed
    )
    warnings = [split_warning] if split_warning else []
    if skipped:
        warnings.append(
            f"{len(skipped)} trained pair(s) skipped: a word cannot be embedded (see skipped_pairs)"
        )
    torch.manual_seed(config.seed)
    model = add_lora(loaded.model, config, num_layers)
    model.train()
    encoder = LayerEncoder(model, config.target_layer)  # ends after block L-1: nothing later runs
    loss_fn = build_objective(config)  # the published triplet unless --loss / --regularizers say otherwise
    known = {(p.source, p.target) for p in usable}  # every sense of the training lexicon (polysemy mask)
    batcher = _Batcher(loaded, config, train_part, validation)
    pairs = list(train_part)
    objective_inputs = _objective_inputs(loss_fn, loaded, config, batcher, pairs, known, usable, control)
    objective_inputs.start(encoder)  # base embeddings of preserved words, before any step

    batches_per_epoch = len(shard(epoch_batches(len(pairs), config.batch_size, config.seed, 0), context))
    if batches_per_epoch == 0:
        raise ConfigError(
            f"{len(pairs)} trained pairs make fewer batches than the {context.world_size} processes"
        )
    steps_per_epoch = math.ceil(batches_per_epoch / config.grad_accum)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps, warmup_warning = warmup_for(config.warmup_steps, total_steps, config.lr)
    if warmup_warning:
        warnings.append(warmup_warning)
    for warning in warnings:  # before training: what the run is about to do differently (each logged once)
        log.warning("warning: %s", warning)
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    encoder, optimizer = context.prepare(encoder, optimizer)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    return _Training(
        context=context,
        model=model,
        encoder=encoder,
        optimizer=optimizer,
        scheduler=scheduler,
        loss_fn=loss_fn,
        objective_inputs=objective_inputs,
        known=known,
        batcher=batcher,
        train_part=train_part,
        pairs=pairs,
        validation=validation,
        skipped=skipped,
        warnings=warnings,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        n_trainable=n_trainable,
    )


def _resume(run: _Training, checkpoints: Path, resume: bool) -> dict[str, Any]:
    """The training state to start from: a fresh one, or the latest complete checkpoint's (which also
    restores the adapter, optimiser, scheduler and RNG)."""
    state: dict[str, Any] = {
        "epoch": 0,
        "global_step": 0,
        "epoch_losses": [],
        "validation": [],
        "best_epoch": None,
    }
    if resume and (last := latest_checkpoint(checkpoints)) is not None:
        state = {**state, **load_checkpoint(last, run.model, run.optimizer, run.scheduler, run.context)}
    return state


def _check_finite(batch_loss: float, where: str, checkpoints: Path) -> None:
    """Stop on a NaN or infinite loss (every process together: ``batch_loss`` is already averaged)."""
    if not math.isfinite(batch_loss):
        raise TrainingError(
            f"training loss is {batch_loss} at {where}: lower --lr or check the lexicon; "
            f"the last complete checkpoint is in {checkpoints}"
        )


def _validate_epoch(run: _Training, config: TrainConfig, epoch: int, state: dict[str, Any]) -> dict:
    """The epoch's metrics record; with a validation split, its loss and MRR (dropout off) are scored,
    kept in ``state["validation"]`` and the best epoch so far (lowest loss, the later on ties) updated."""
    record = {"step": state["global_step"], "epoch": epoch + 1, "epoch_loss": state["epoch_losses"][-1]}
    if run.validation is not None:
        trained_tokens = run.batcher.tokens_seen
        scores = validate(run.encoder, run.batcher, run.validation, run.loss_fn, config, run.known)
        run.batcher.tokens_seen = trained_tokens  # validation forwards are not training
        state["validation"].append({"epoch": epoch + 1, **scores})
        record.update(validation_loss=scores["loss"], validation_mrr=scores["mrr"])
        best = min(state["validation"], key=lambda v: (v["loss"], -v["epoch"]))
        state["best_epoch"] = best["epoch"]
    return record


def _patience_spent(config: TrainConfig, state: dict[str, Any], epoch: int) -> bool:
    """Early stopping: no better validation loss for ``early_stopping_patience`` epochs."""
    patience = config.early_stopping_patience
    return bool(patience and state["best_epoch"] is not None and epoch + 1 - state["best_epoch"] >= patience)


def run_training(
    loaded: LoadedModel,
    trained: Lexicon,
    config: TrainConfig,
    out: Path,
    *,
    resume: bool = False,
    progress: bool | None = None,
    control: Lexicon | None = None,
    split_record: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a TLI adapter on ``trained`` pairs; writes checkpoints, metrics and the final adapter.

    ``loaded.model`` is replaced by the ``PeftModel`` holding the trained adapter, so the same loaded
    model can be evaluated next without loading it again (``loaded.model.unload()`` gives the base back).
    Under ``torchrun`` / ``accelerate launch`` the :class:`~tli.embed.LayerEncoder` is wrapped by Accelerate
    (DDP, FSDP or DeepSpeed, as launched) and each process trains on its share of every epoch's batches.

    Kept as one function of under 100 lines on purpose: the loop's phases (forward to the target layer, loss,
    accumulation, step, log, validate, checkpoint, early stop) read top to bottom in their commented order;
    set-up, resume, validation, the adapter and the result are helpers.

    Args:
        control: the unseen control pairs, recorded in the adapter so evaluation judges the same split.
        split_record: how the trained/control split was made (recorded with the adapter).
    """
    run = _set_up(loaded, trained, config, control)
    context, encoder, optimizer, scheduler, pairs = (
        run.context,
        run.encoder,
        run.optimizer,
        run.scheduler,
        run.pairs,
    )
    checkpoints = out / "checkpoints"
    state = _resume(run, checkpoints, resume)
    metrics = MetricsLog(
        out / "metrics.jsonl", keep_until_step=state["global_step"] if resume else 0, enabled=context.is_main
    )
    start = time.perf_counter()
    bar = Progress(
        run.total_steps,
        f"TLI training (layer {config.target_layer}, seed {config.seed})",
        initial=state["global_step"],
        enabled=False if not context.is_main else progress,
    )
    stopped_early = False
    try:
        for epoch in range(state["epoch"], config.epochs):
            epoch_loss, n_batches = 0.0, 0
            batches = shard(epoch_batches(len(pairs), config.batch_size, config.seed, epoch), context)
            optimizer.zero_grad(set_to_none=True)
            step_losses: list[float] = []
            run.objective_inputs.start_epoch(encoder)  # the bank of every trained target (bank objectives)
            for i, batch_ids in enumerate(batches):
                ends_step = (i + 1) % config.grad_accum == 0 or i + 1 == len(batches)
                # Forward to the target layer only: sources and targets in one padded batch. Between steps
                # DDP keeps gradients local; the step's backward averages them over the processes.
                with context.no_sync(encoder) if not ends_step else contextlib.nullcontext():
                    batch = [pairs[k] for k in batch_ids]
                    anchors, positives = run.batcher.pooled(encoder, batch)

                    # Loss, with every known translation of an anchor masked out of its negatives.
                    negatives = valid_negative_mask(
                        [p.source for p in batch], [p.target for p in batch], run.known
                    )
                    extra = run.objective_inputs.for_batch(
                        encoder, [p.source for p in batch], epoch * 100_003 + i, len(batch)
                    )
                    loss = run.loss_fn(anchors, positives, negatives.to(anchors.device), **extra)
                    batch_loss = context.mean(loss.item())  # every process stops together on a bad loss
                    where = f"epoch {epoch + 1}, step {state['global_step'] + 1} (batch {i + 1})"
                    _check_finite(batch_loss, where, checkpoints)
                    # Accumulation: each batch adds 1/grad_accum of the step's gradient.
                    context.backward(loss / config.grad_accum)
                epoch_loss += batch_loss
                n_batches += 1
                step_losses.append(batch_loss)
                if not ends_step:
                    continue
                # Step: optimiser and schedule.
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["global_step"] += 1

                # Log the mean loss of the batches in this step (over all processes).
                step_loss = sum(step_losses) / len(step_losses)
                step_losses = []
                lr = scheduler.get_last_lr()[0]
                metrics.log({"step": state["global_step"], "epoch": epoch + 1, "loss": step_loss, "lr": lr})
                bar.update(1, loss=step_loss, epoch=epoch + 1)

            # Validate: loss and retrieval on held-out trained-group pairs, dropout off.
            state["epoch"] = epoch + 1
            state["epoch_losses"].append(epoch_loss / max(n_batches, 1))
            metrics.log(_validate_epoch(run, config, epoch, state))

            # Checkpoint at the end of every epoch: adapter + optimiser + scheduler + RNG.
            adapter = adapter_state(run.model, encoder, context)
            save_checkpoint(
                checkpoints / f"epoch-{epoch + 1}",
                run.model,
                optimizer,
                scheduler,
                dict(state),
                adapter=adapter,
                context=context,
            )
            context.barrier()

            if _patience_spent(config, state, epoch):
                stopped_early = epoch + 1 < config.epochs
                break
    finally:
        bar.close()
        metrics.close()
    train_seconds = time.perf_counter() - start
    adapter_dir = _finish_adapter(loaded, trained, config, run, state, out, control, split_record)
    return _train_result(loaded, config, run, state, out, adapter_dir, train_seconds, stopped_early)


def _finish_adapter(
    loaded: LoadedModel,
    trained: Lexicon,
    config: TrainConfig,
    run: _Training,
    state: dict[str, Any],
    out: Path,
    control: Lexicon | None,
    split_record: dict[str, Any] | None,
) -> Path:
    """Write ``out/adapter`` atomically (the main process): the last epoch's adapter, or the best validation
    epoch's when early stopping is on, with its metadata; ``loaded`` then carries the trained adapter. The
    final-loss warnings are logged and added to ``run.warnings``."""
    context, model = run.context, run.model
    best_checkpoint = None
    if config.early_stopping_patience and state["best_epoch"] and state["best_epoch"] != state["epoch"]:
        best_checkpoint = out / "checkpoints" / f"epoch-{state['best_epoch']}"
        if not context.sharded:
            load_adapter_weights(model, best_checkpoint)
    final_adapter = None if best_checkpoint is not None else adapter_state(model, run.encoder, context)
    for warning in loss_warnings(config, state["epoch_losses"]):
        log.warning("warning: %s", warning)
        run.warnings.append(warning)
    adapter_dir = out / "adapter"
    if context.is_main:
        embed_config = EmbedConfig.from_recipe(config.recipe())
        split = {
            "trained": list(run.train_part),
            "validation": list(run.validation or []),
            "control": list(control or []),
        }

        def write(tmp: Path) -> None:
            if best_checkpoint is not None and context.sharded:  # the gathered adapter of that epoch
                shutil.copytree(best_checkpoint, tmp, dirs_exist_ok=True, ignore=_checkpoint_only)
            elif final_adapter is not None:
                model.save_pretrained(tmp, state_dict=final_adapter)
            else:
                model.save_pretrained(tmp)
            write_adapter_files(
                tmp,
                loaded,
                target_layer=config.target_layer,
                embed=embed_config.describe() | bos_record(loaded.tokenizer, embed_config),
                config=asdict(config),
                lexicon_sha256=trained.fingerprint(),
                split=split,
                split_record=split_record,
            )

        replace_dir_atomically(adapter_dir, write)
    context.barrier()
    # The caller's handle now carries the trained adapter (unmerged; disable_adapter() gives the base).
    loaded.model, loaded.adapter = model, str(adapter_dir)
    return adapter_dir


def _train_result(
    loaded: LoadedModel,
    config: TrainConfig,
    run: _Training,
    state: dict[str, Any],
    out: Path,
    adapter_dir: Path,
    train_seconds: float,
    stopped_early: bool,
) -> TrainResult:
    """The :class:`TrainResult` of a finished run (tokens summed over the processes)."""
    return TrainResult(
        out=str(out),
        adapter=str(adapter_dir),
        target_layer=config.target_layer,
        epoch_losses=state["epoch_losses"],
        timing={
            "load_seconds": loaded.load_seconds,
            "train_seconds": train_seconds,
            "steps": state["global_step"],
        },
        n_train_pairs=len(run.train_part),
        seed=config.seed,
        n_validation_pairs=len(run.validation or []),
        validation=state["validation"],
        best_epoch=state["best_epoch"],
        stopped_early=stopped_early,
        warnings=run.warnings,
        skipped_pairs=run.skipped,
        trainable_parameters=run.n_trainable,
        tokens_seen=int(run.context.sum(run.batcher.tokens_seen)),
        distributed=run.context.describe(),
        warmup_steps=run.warmup_steps,
    )


def _checkpoint_only(_directory: str, names: list[str]) -> list[str]:
    """What a checkpoint holds besides the adapter (not copied into ``adapter/``)."""
    return [n for n in names if n in (ACCELERATE_STATE, "training_state.pt", "trainer_state.json")]


def process_device(device: str) -> str:
    """Under a multi-process launcher on CUDA, each process takes the GPU of its ``LOCAL_RANK``."""
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is not None and device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank}"
    return device


def is_main_process() -> bool:
    """Only the main process of a launcher writes results and prints summaries."""
    return int(os.environ.get("RANK", "0")) == 0


def seed_dir(out: Path, seed: int, n_seeds: int) -> Path:
    """``OUT`` for one seed, ``OUT/seed-<k>`` for several."""
    return out / f"seed-{seed}" if n_seeds > 1 else out


def train(
    model: str | None = None,
    lexicon: str | Path | Lexicon | None = None,
    *,
    out: str | Path,
    resume: bool = False,
    progress: bool | None = None,
    **options: Any,
) -> TrainResult | list[TrainResult]:
    """Train a TLI adapter (one per seed) and write the run directory.

    Writes ``out/adapter/`` (PEFT; load with ``peft.PeftModel.from_pretrained``), ``out/checkpoints/``
    (one per epoch), ``out/metrics.jsonl`` and ``out/results.json``; with several ``seeds``, one such
    directory per seed in ``out/seed-<k>/`` and a summary ``out/results.json``.

    Args:
        model: model spec (see :func:`tli.models.load_model`); only blocks up to the target layer load.
        lexicon: word pairs (path or :class:`Lexicon`); its ``trained`` group is used.
        out: run directory.
        resume: continue from the last complete epoch checkpoint (finished seeds are kept).
        **options: any :class:`~tli.config.TrainConfig` field.

    Returns:
        The :class:`TrainResult` (a list of them with several seeds).
    """
    lexicon_path = str(Path(lexicon).resolve()) if isinstance(lexicon, (str, Path)) else None
    config = TrainConfig(model=model, lexicon=lexicon_path, resume=resume, out=str(out), **options)
    configure_threads(config.threads)
    out = check_writable(Path(out))
    # A second tli run on this --out refuses (processes of one distributed launch: the main one locks).
    with holding_run_dir(out) if is_main_process() else contextlib.nullcontext(out):
        return _train_seeds(model, lexicon, config, out, progress)


def _train_seeds(
    model: str | None,
    lexicon: str | Path | Lexicon | None,
    config: TrainConfig,
    out: Path,
    progress: bool | None,
) -> TrainResult | list[TrainResult]:
    """:func:`train` once ``out`` is locked: the split, one model load, then each seed in turn."""

    resume = config.resume
    seeds = config.seed_list()
    if not resume and (
        (out / "checkpoints").exists()
        or any((seed_dir(out, s, len(seeds)) / "checkpoints").exists() for s in seeds)
    ):
        if not config.overwrite:
            state = "a finished training run" if is_complete(out) else "a training run"
            raise ConfigError(
                f"--out {out} already holds {state}: pass --resume to continue it, --overwrite to train again "
                "from scratch, or choose another --out"
            )
        clear_training(out)
    for note in config.scan_notes:  # the recipe or layer differs from the scan the run cites
        log.warning("warning: %s", note)
    if len(seeds) > 1:
        (out / COMPLETE).unlink(missing_ok=True)  # a multi-seed summary being redone is not complete
    study = split_for_study(
        lexicon, config.test_lexicon, control_fraction=config.control_fraction, split_seed=config.split_seed
    )
    device = process_device(config.device)
    if launched() and config.device_map is None:
        # Before loading: FSDP's RAM-efficient loading and ZeRO-3's partitioned init read Accelerate's state,
        # and FSDP / DeepSpeed on a CPU are refused before minutes of loading.
        distributed_context(resolve_device(device), grad_accum=config.grad_accum)
    loaded = load_model(
        model, **{**config.load_options(), "device": device}, up_to_layer=config.target_layer, purpose="train"
    )
    results = []
    for seed in seeds:
        seed_config = TrainConfig(**{**asdict(config), "seed": seed, "seeds": None})
        where = seed_dir(out, seed, len(seeds))
        if resume and is_complete(where) and (where / "adapter" / ADAPTER_META).is_file():
            results.append(_finished_result(where))
            continue
        where.mkdir(parents=True, exist_ok=True)
        result = run_training(
            loaded,
            study.trained,
            seed_config,
            where,
            resume=resume,
            progress=progress,
            control=study.control,
            split_record=study.record(),
        )
        result.warnings = [*config.scan_notes, *result.warnings]
        results.append(result)
        if is_main_process():
            record = {
                **asdict(result),
                "model": loaded.describe() | {"full_num_layers": loaded.extra.get("full_num_layers")},
                "lexicon": lexicon_record(study.lexicon)
                | {"n_trained": len(study.trained), "n_control": len(study.control)},
                "split": study.record(),
                **provenance("train", asdict(seed_config), seed),
            }
            write_train_run(where, record, seed_config)
        loaded.model = loaded.model.unload()  # the base again, for the next seed
    if len(seeds) > 1 and is_main_process():
        atomic_write_json(
            out / "results.json",
            {
                "seeds": seeds,
                "runs": [asdict(r) for r in results],
                "adapters": [r.adapter for r in results],
                **provenance("train", asdict(config), None),
            },
        )
        mark_complete(out, "training over seeds")
    return results if len(seeds) > 1 else results[0]


TRAINING_FILES = (
    "checkpoints",
    "adapter",
    "metrics.jsonl",
    "tensorboard",
    "loss.png",
    "results.json",
    COMPLETE,
)
"""What a ``tli train`` run directory holds (each seed's, too): removed by ``--overwrite``."""


def clear_training(out: Path) -> None:
    """Remove an earlier training run from ``out`` (``--overwrite``): its files and every ``seed-<k>/``."""
    for where in [out, *(p for p in out.glob("seed-*") if p.is_dir())]:
        for name in TRAINING_FILES:
            path = where / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        if where != out and not any(where.iterdir()):
            where.rmdir()


def _finished_result(where: Path) -> TrainResult:
    """A seed already trained by an earlier, interrupted multi-seed run (kept on --resume)."""
    record = json.loads((where / "results.json").read_text(encoding="utf-8"))
    names = {f for f in TrainResult.__dataclass_fields__}
    return TrainResult(**{k: v for k, v in record.items() if k in names})
