"""Everything the training loop needs, built once per seed: :func:`set_up` returns a :class:`Training`.

The usable pairs and their validation split, the LoRA-wrapped :class:`~tli.embed.LayerEncoder` of the target
layer, the objective and its inputs, AdamW and the linear warm-up schedule (model and optimiser prepared by
Accelerate under a launcher).

In-function import: transformers' learning-rate schedule, only when training (see :mod:`tli.train`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch

from tli.bli import tokenizer_vocabulary
from tli.config import TrainConfig
from tli.distributed import DistributedContext, distributed_context, shard
from tli.embed import EmbedConfig, LayerEncoder, drop_unembeddable_pairs
from tli.errors import ConfigError, DataError
from tli.lexicon import Lexicon, Pair
from tli.losses import ObjectiveInputs, build_objective
from tli.models import LoadedModel, base_causal_lm
from tli.train.batches import PairBatcher, epoch_batches
from tli.train.diagnostics import warmup_for
from tli.train.lora import add_lora
from tli.train.validation import validation_split

log = logging.getLogger(__name__)


@dataclass
class Training:
    """What :func:`set_up` builds for the training loop (one process's view under a launcher)."""

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
    batcher: PairBatcher
    train_part: Lexicon
    pairs: list[Pair]
    validation: Lexicon | None
    skipped: list[dict[str, str]]
    warnings: list[str]
    total_steps: int
    warmup_steps: int
    n_trainable: int


def set_up(loaded: LoadedModel, trained: Lexicon, config: TrainConfig, control: Lexicon | None) -> Training:
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
    batcher = PairBatcher(loaded, config, train_part, validation)
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
    return Training(
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


def _objective_inputs(loss_fn, loaded, config, batcher, pairs, known, usable, control) -> ObjectiveInputs:
    """The bank of trained targets and the out-of-lexicon preservation words the objective asks for."""
    vocabulary: list[str] = []
    if loss_fn.uses_preservation:
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
