"""The training loop: :func:`run_training`, one function whose commented phases read top to bottom.

Per batch: forward to the target layer, loss, accumulation; per optimiser step: step, log; per epoch:
validate, checkpoint, early stop. Set-up (:mod:`tli.train.setup`), resume, validation, the final adapter and
the result are helpers, so the loop itself stays short enough to read in one screen.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from tli.adapter import write_adapter_files
from tli.config import TrainConfig
from tli.distributed import shard
from tli.embed import EmbedConfig, bos_record
from tli.io import replace_dir_atomically
from tli.lexicon import Lexicon, Pair
from tli.losses import valid_negative_mask
from tli.models import LoadedModel
from tli.progress import Progress
from tli.train.batches import epoch_batches
from tli.train.checkpoint import (
    adapter_state,
    checkpoint_only,
    latest_checkpoint,
    load_adapter_weights,
    load_checkpoint,
    save_checkpoint,
)
from tli.train.diagnostics import check_finite, loss_warnings
from tli.train.metrics_log import MetricsLog
from tli.train.result import TrainResult
from tli.train.setup import Training, set_up
from tli.train.validation import validate

log = logging.getLogger(__name__)


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

    Args:
        control: the unseen control pairs, recorded in the adapter so evaluation judges the same split.
        split_record: how the trained/control split was made (recorded with the adapter).
    """
    run = set_up(loaded, trained, config, control)
    checkpoints = out / "checkpoints"
    state = _start_state(run, checkpoints, resume)
    main = run.context.is_main
    metrics = MetricsLog(
        out / "metrics.jsonl", keep_until_step=state["global_step"] if resume else 0, enabled=main
    )
    start = time.perf_counter()
    title = f"TLI training (layer {config.target_layer}, seed {config.seed})"
    bar = Progress(run.total_steps, title, initial=state["global_step"], enabled=progress if main else False)
    stopped_early = False
    try:
        for epoch in range(state["epoch"], config.epochs):
            batches = shard(epoch_batches(len(run.pairs), config.batch_size, config.seed, epoch), run.context)
            run.optimizer.zero_grad(set_to_none=True)
            run.objective_inputs.start_epoch(run.encoder)  # bank objectives: every trained target's embedding
            epoch_loss, step_losses = 0.0, []
            for i, batch_ids in enumerate(batches):
                batch = [run.pairs[k] for k in batch_ids]
                ends_step = (i + 1) % config.grad_accum == 0 or i + 1 == len(batches)
                # Between steps DDP keeps gradients local; the step's backward averages them over the processes.
                with run.context.no_sync(run.encoder) if not ends_step else contextlib.nullcontext():
                    # Forward to the target layer only: sources and targets in one padded batch.
                    anchors, positives = run.batcher.pooled(run.encoder, batch)  # (B, H) each
                    # Loss, with every known translation of an anchor masked out of its negatives.
                    loss = _loss(run, batch, anchors, positives, epoch * 100_003 + i)
                    batch_loss = run.context.mean(loss.item())  # every process stops together on a bad loss
                    where = f"epoch {epoch + 1}, step {state['global_step'] + 1} (batch {i + 1})"
                    check_finite(batch_loss, where, checkpoints)
                    # Accumulation: each batch adds 1/grad_accum of the step's gradient.
                    run.context.backward(loss / config.grad_accum)
                epoch_loss += batch_loss
                step_losses.append(batch_loss)
                if ends_step:
                    # Step: optimiser and schedule; then log the step's mean loss (over all processes).
                    _step(run, state)
                    _log_step(run, metrics, bar, state, epoch, step_losses)
                    step_losses = []

            # Validate: loss and retrieval on held-out trained-group pairs, dropout off.
            state["epoch"] = epoch + 1
            state["epoch_losses"].append(epoch_loss / max(len(batches), 1))
            metrics.log(_validate_epoch(run, config, epoch, state))
            # Checkpoint at the end of every epoch: adapter + optimiser + scheduler + RNG.
            _checkpoint(run, checkpoints / f"epoch-{epoch + 1}", state)
            # Early stop: no better validation loss for --early-stopping-patience epochs.
            if _patience_spent(config, state, epoch):
                stopped_early = epoch + 1 < config.epochs
                break
    finally:
        bar.close()
        metrics.close()
    train_seconds = time.perf_counter() - start
    adapter_dir = _finish_adapter(loaded, trained, config, run, state, out, control, split_record)
    return _train_result(loaded, config, run, state, out, adapter_dir, train_seconds, stopped_early)


# ---------------------------------------------------------------------------------------------------
# The loop's phases


def _start_state(run: Training, checkpoints: Path, resume: bool) -> dict[str, Any]:
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


def _loss(
    run: Training, batch: list[Pair], anchors: torch.Tensor, positives: torch.Tensor, batch_seed: int
) -> torch.Tensor:
    """The objective on one batch: ``anchors`` and ``positives`` ``(B, H)``, negatives masked where a pair of
    the lexicon links them (``bahari`` → sea / ocean), plus what the objective draws for this batch
    (``batch_seed`` makes those draws depend only on the epoch and the batch, so a resumed run repeats them)."""
    sources, targets = [p.source for p in batch], [p.target for p in batch]
    negatives = valid_negative_mask(sources, targets, run.known)  # (B, B)
    extra = run.objective_inputs.for_batch(run.encoder, sources, batch_seed, len(batch))
    return run.loss_fn(anchors, positives, negatives.to(anchors.device), **extra)


def _step(run: Training, state: dict[str, Any]) -> None:
    """One optimiser step on the accumulated gradient, one step of the learning-rate schedule."""
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    state["global_step"] += 1


def _log_step(
    run: Training, metrics: MetricsLog, bar: Progress, state, epoch: int, losses: list[float]
) -> None:
    """The step's record in ``metrics.jsonl`` and the progress bar: the mean loss of its batches."""
    step_loss = sum(losses) / len(losses)
    lr = run.scheduler.get_last_lr()[0]
    metrics.log({"step": state["global_step"], "epoch": epoch + 1, "loss": step_loss, "lr": lr})
    bar.update(1, loss=step_loss, epoch=epoch + 1)


def _validate_epoch(run: Training, config: TrainConfig, epoch: int, state: dict[str, Any]) -> dict:
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


def _checkpoint(run: Training, directory: Path, state: dict[str, Any]) -> None:
    """Checkpoint the epoch (every process takes part: sharded adapters are gathered, sharded optimiser
    states saved by each process), then wait for all of them."""
    adapter = adapter_state(run.model, run.encoder, run.context)
    save_checkpoint(
        directory, run.model, run.optimizer, run.scheduler, dict(state), adapter=adapter, context=run.context
    )
    run.context.barrier()


def _patience_spent(config: TrainConfig, state: dict[str, Any], epoch: int) -> bool:
    """Early stopping: no better validation loss for ``early_stopping_patience`` epochs."""
    patience = config.early_stopping_patience
    return bool(patience and state["best_epoch"] is not None and epoch + 1 - state["best_epoch"] >= patience)


# ---------------------------------------------------------------------------------------------------
# After the loop


def _finish_adapter(
    loaded: LoadedModel,
    trained: Lexicon,
    config: TrainConfig,
    run: Training,
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
                shutil.copytree(best_checkpoint, tmp, dirs_exist_ok=True, ignore=checkpoint_only)
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
    run: Training,
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
