"""TLI fine-tuning: LoRA with a contrastive loss on pooled embeddings of one early target layer.

One readable training function, :func:`run_training`, in commented phases: forward to the target layer,
loss, accumulation, step, log, checkpoint. Published defaults (arXiv 2506.15415): LoRA on ``q_proj`` and
``v_proj`` (r 16, alpha 32, dropout 0.05), triplet loss with the hardest in-batch negative (margin 0.4),
AdamW lr 2e-4, linear schedule with 50 warm-up steps, 5 epochs, batch 8.

What tli does differently, and why:

- LoRA goes only on the blocks whose output reaches the target layer (blocks ``0..L-1`` for
  ``hidden_states[L]``): later blocks get no gradient from a loss at layer ``L``.
- Only those blocks are loaded, and each forward stops after block ``L-1``; ``lm_head`` never runs.
- Negatives never include another translation of the anchor's word (``bahari`` → sea / ocean).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tli.distributed import distributed_context, shard
from tli.embed import EmbedConfig, encode_words, pad_batch, pooled_at_layer
from tli.errors import ConfigError, TliError
from tli.io import atomic_write_json, atomic_write_text, replace_dir_atomically
from tli.lexicon import Lexicon
from tli.losses import LOSSES, valid_negative_mask
from tli.models import LoadedModel, base_causal_lm, load_model
from tli.runs import check_writable, provenance

ADAPTER_META = "tli_adapter.json"


@dataclass
class TrainConfig:
    """Options of ``tli train`` (CLI flags use dashes: ``--target-layer``)."""

    model: str | None = None
    """Local HF directory, hub id, .gguf file; None = embedded SmolLM2-135M-Instruct."""
    lexicon: str | None = None
    """Word-pair file; None = the shipped lexicon. Only its ``trained`` group is trained on."""
    target_layer: int = 2
    """Hidden-state index the loss is applied to (published: 2)."""
    loss: str = "triplet"
    """``triplet`` (published, hardest in-batch negative) | ``infonce`` (symmetric)."""
    margin: float = 0.4
    """Triplet margin."""
    temperature: float = 0.05
    """InfoNCE temperature."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    """Linear layers that get LoRA adapters."""
    lora_layers: list[int] | None = None
    """Blocks that get LoRA; None = the blocks whose output reaches the target layer (0..L-1)."""
    epochs: int = 5
    batch_size: int = 8
    """Pairs per batch; in-batch negatives come from the other pairs."""
    grad_accum: int = 1
    """Batches per optimiser step."""
    lr: float = 2e-4
    warmup_steps: int = 50
    weight_decay: float = 0.0
    seed: int = 0
    pooling: str = "mean-no-special"
    """Pooling at the target layer; the published evaluation excluded first and special tokens."""
    add_bos: str = "auto"
    template: str | None = None
    control_fraction: float = 63 / 686
    """Used only when the lexicon stores no trained/control split."""
    split_seed: int = 0
    dtype: str = "auto"
    device: str = "auto"
    quantization: str = "none"
    """``none`` | ``nf4`` (QLoRA: 4-bit NF4, bf16 compute, k-bit training preparation) | ``int8``."""

    def __post_init__(self) -> None:
        problems = []
        if self.loss not in LOSSES:
            problems.append(f"--loss {self.loss!r} is not one of {', '.join(LOSSES)}")
        if self.target_layer < 1:
            problems.append(
                f"--target-layer must be >= 1 (0 is the embedding table), got {self.target_layer}"
            )
        if self.batch_size < 2:
            problems.append(f"--batch-size {self.batch_size}: contrastive losses need >= 2 pairs per batch")
        for name in ("epochs", "grad_accum", "lora_r"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.warmup_steps < 0:
            problems.append(f"--lr must be > 0 and --warmup-steps >= 0 (got {self.lr}, {self.warmup_steps})")
        if not 0 <= self.lora_dropout < 1:
            problems.append(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")
        if problems:
            raise ConfigError("; ".join(problems))
        self.embed_config()

    def embed_config(self) -> EmbedConfig:
        return EmbedConfig(pooling=self.pooling, add_bos=self.add_bos, template=self.template)

    def trainable_layers(self) -> list[int]:
        return list(self.lora_layers) if self.lora_layers is not None else list(range(self.target_layer))


@dataclass
class TrainResult:
    """Where the adapter is, and what training did."""

    out: str
    adapter: str
    target_layer: int
    epoch_losses: list[float]
    timing: dict[str, float]
    n_train_pairs: int


# ---------------------------------------------------------------------------------------------------
# Pieces


def add_lora(lm: Any, config: TrainConfig, num_layers: int) -> Any:
    """Wrap a causal LM with LoRA adapters on ``config.target_modules`` of the trainable blocks."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    layers = config.trainable_layers()
    if not layers or max(layers) >= num_layers or min(layers) < 0:
        raise ConfigError(f"--lora-layers {layers}: blocks run 0..{num_layers - 1}")
    if config.quantization != "none":
        # QLoRA: freeze the quantised base, upcast norms to fp32, keep inputs' grads flowing.
        lm = prepare_model_for_kbit_training(lm, use_gradient_checkpointing=False)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        layers_to_transform=layers,
        layers_pattern="layers",
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(lm, lora)
    except ValueError as exc:
        raise ConfigError(f"--target-modules {config.target_modules}: {exc}".splitlines()[0]) from exc


def epoch_batches(n_pairs: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled pair indices for one epoch; the order depends only on (seed, epoch), so a resumed run
    sees exactly the batches an uninterrupted run would."""
    order = list(range(n_pairs))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    batches = [order[i : i + batch_size] for i in range(0, n_pairs, batch_size)]
    if len(batches) > 1 and len(batches[-1]) < 2:  # a lone pair has no negative: fold it into the previous
        batches[-2].extend(batches.pop())
    return batches


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(directory: Path, model, optimizer, scheduler, state: dict[str, Any]) -> Path:
    """Adapter (PEFT format) + optimiser, scheduler and RNG state, written to a temp dir then renamed."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        training_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        torch.save({**training_state, "rng": rng_state()}, tmp / "training_state.pt")
        atomic_write_json(tmp / "trainer_state.json", state)

    return replace_dir_atomically(directory, write)


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The last complete epoch checkpoint (it has ``trainer_state.json``), or None."""
    done = [p for p in checkpoints.glob("epoch-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def load_checkpoint(directory: Path, model, optimizer, scheduler) -> dict[str, Any]:
    """Restore adapter weights, optimiser, scheduler and RNG; returns the trainer state."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(directory / "adapter_model.safetensors")))
    saved = torch.load(directory / "training_state.pt", weights_only=False)
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
            kept = [
                line
                for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= keep_until_step
            ]
        atomic_write_text(path, "".join(line + "\n" for line in kept))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(path.parent / "tensorboard"))
        except Exception:  # tensorboard not installed: the JSONL log is complete on its own
            pass

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None and "loss" in record:
            self.writer.add_scalar("train/loss", record["loss"], record["step"])
            self.writer.add_scalar("train/lr", record["lr"], record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def write_adapter_meta(adapter_dir: Path, loaded: LoadedModel, config: TrainConfig, lexicon: Lexicon) -> None:
    """What the adapter was trained on, so ``tli evaluate`` can check the base model matches."""
    atomic_write_json(
        adapter_dir / ADAPTER_META,
        {
            "base_model": {"name": loaded.name, "fingerprint": loaded.fingerprint},
            "target_layer": config.target_layer,
            "embed": config.embed_config().describe(),
            "lexicon_sha256": lexicon.fingerprint(),
            "config": asdict(config),
        },
    )


# ---------------------------------------------------------------------------------------------------
# The training function


def run_training(
    loaded: LoadedModel,
    trained: Lexicon,
    config: TrainConfig,
    out: Path,
    *,
    resume: bool = False,
    progress: bool | None = None,
) -> TrainResult:
    """Train a TLI adapter on ``trained`` pairs; writes checkpoints, metrics and the final adapter.

    ``loaded.model`` is replaced by the ``PeftModel`` holding the trained adapter, so the same loaded
    model can be evaluated next without loading it again.
    """
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    if len(trained) < 2:
        raise TliError(f"{len(trained)} trained pair(s): a contrastive batch needs >= 2 pairs")
    context = distributed_context(loaded.device)  # one process unless launched by torchrun/accelerate
    num_layers = base_causal_lm(loaded.model).config.num_hidden_layers
    torch.manual_seed(config.seed)
    model = add_lora(loaded.model, config, num_layers)
    model.train()
    device = loaded.device
    loss_fn = LOSSES[config.loss](config.margin if config.loss == "triplet" else config.temperature)

    # Tokenize every distinct string once; batches only pad and stack.
    embed_config = config.embed_config()
    strings = list(dict.fromkeys(trained.sources + trained.targets))
    encoded = dict(zip(strings, encode_words(strings, loaded.tokenizer, embed_config), strict=True))
    pairs = list(trained)

    batches_per_epoch = len(shard(epoch_batches(len(pairs), config.batch_size, config.seed, 0), context))
    if batches_per_epoch == 0:
        raise TliError(
            f"{len(pairs)} trained pairs make fewer batches than the {context.world_size} processes"
        )
    steps_per_epoch = math.ceil(batches_per_epoch / config.grad_accum)
    total_steps = steps_per_epoch * config.epochs
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, config.warmup_steps, total_steps)

    checkpoints = out / "checkpoints"
    state: dict[str, Any] = {"epoch": 0, "global_step": 0, "epoch_losses": []}
    if resume and (last := latest_checkpoint(checkpoints)) is not None:
        state = load_checkpoint(last, model, optimizer, scheduler)
    log = MetricsLog(
        out / "metrics.jsonl", keep_until_step=state["global_step"] if resume else 0, enabled=context.is_main
    )

    start = time.perf_counter()
    bar = tqdm(
        total=total_steps,
        initial=state["global_step"],
        desc="TLI training",
        unit="step",
        disable=not context.is_main or (None if progress is None else not progress),
    )
    try:
        for epoch in range(state["epoch"], config.epochs):
            epoch_loss, n_batches = 0.0, 0
            batches = shard(epoch_batches(len(pairs), config.batch_size, config.seed, epoch), context)
            optimizer.zero_grad(set_to_none=True)
            step_losses: list[float] = []
            for i, batch in enumerate(batches):
                # Forward to the target layer only: sources and targets in one padded batch.
                sources = [pairs[k].source for k in batch]
                targets = [pairs[k].target for k in batch]
                items = [encoded[w] for w in sources + targets]
                ids, attention, weights = pad_batch(items, loaded.tokenizer.pad_token_id, device)
                pooled = pooled_at_layer(model, ids, attention, weights, config.target_layer)  # (2B, H)
                anchors, positives = pooled[: len(batch)], pooled[len(batch) :]

                # Loss, with other senses of the same word masked out of the negatives.
                negatives = valid_negative_mask(sources, targets).to(device)
                loss = loss_fn(anchors, positives, negatives)
                batch_loss = context.mean(loss.item())  # every process stops together on a bad loss
                if not math.isfinite(batch_loss):
                    raise TliError(
                        f"training loss is {batch_loss} at epoch {epoch + 1}, step "
                        f"{state['global_step'] + 1} (batch {i + 1}): lower --lr or check the lexicon; "
                        f"the last complete checkpoint is in {checkpoints}"
                    )

                # Accumulate; step every grad_accum batches and at the end of the epoch.
                (loss / config.grad_accum).backward()
                epoch_loss += batch_loss
                n_batches += 1
                step_losses.append(batch_loss)
                if (i + 1) % config.grad_accum and i + 1 != len(batches):
                    continue
                context.average_gradients(trainable)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["global_step"] += 1

                # Log the mean loss of the batches in this step (over all processes).
                step_loss = sum(step_losses) / len(step_losses)
                step_losses = []
                lr = scheduler.get_last_lr()[0]
                log.log({"step": state["global_step"], "epoch": epoch + 1, "loss": step_loss, "lr": lr})
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.4f}", epoch=epoch + 1)

            # Checkpoint at the end of every epoch: adapter + optimiser + scheduler + RNG.
            state["epoch"] = epoch + 1
            state["epoch_losses"].append(epoch_loss / max(n_batches, 1))
            log.log(
                {"step": state["global_step"], "epoch": epoch + 1, "epoch_loss": state["epoch_losses"][-1]}
            )
            if context.is_main:
                save_checkpoint(checkpoints / f"epoch-{epoch + 1}", model, optimizer, scheduler, dict(state))
            context.barrier()
    finally:
        bar.close()
        log.close()
    train_seconds = time.perf_counter() - start

    adapter_dir = out / "adapter"
    if context.is_main:

        def write(tmp: Path) -> None:
            model.save_pretrained(tmp)
            write_adapter_meta(tmp, loaded, config, trained)

        replace_dir_atomically(adapter_dir, write)
    context.barrier()
    # The caller's handle now carries the trained adapter (unmerged; disable_adapter() gives the base).
    loaded.model, loaded.adapter = model, str(adapter_dir)
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
        n_train_pairs=len(trained),
    )


def process_device(device: str) -> str:
    """Under a multi-process launcher on CUDA, each process takes the GPU of its ``LOCAL_RANK``."""
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is not None and device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank}"
    return device


def train(
    model: str | None = None,
    lexicon: str | Path | Lexicon | None = None,
    *,
    out: str | Path,
    resume: bool = False,
    progress: bool | None = None,
    **options: Any,
) -> TrainResult:
    """Train a TLI adapter and write the run directory.

    Writes ``out/adapter/`` (PEFT; load with ``peft.PeftModel.from_pretrained``), ``out/checkpoints/``
    (one per epoch), ``out/metrics.jsonl`` and ``out/results.json``.

    Args:
        model: model spec (see :func:`tli.models.load_model`); only blocks up to the target layer load.
        lexicon: word pairs (path or :class:`Lexicon`); its ``trained`` group is used.
        out: run directory.
        resume: continue from the last complete epoch checkpoint in ``out/checkpoints``.
        **options: any :class:`TrainConfig` field.
    """
    from tli.report import write_train_run
    from tli.scan import lexicon_record, resolve_lexicon

    lexicon_path = str(Path(lexicon).resolve()) if isinstance(lexicon, (str, Path)) else None
    config = TrainConfig(model=model, lexicon=lexicon_path, **options)
    out = check_writable(Path(out))
    if not resume and (out / "checkpoints").exists():
        raise ConfigError(f"--out {out} already holds a training run: pass --resume or choose another --out")
    lex = resolve_lexicon(lexicon)
    trained, control = lex.trained_and_control(config.control_fraction, config.split_seed)
    loaded = load_model(
        model,
        dtype=config.dtype,
        device=process_device(config.device),
        quantization=config.quantization,
        up_to_layer=config.target_layer,
    )
    out.mkdir(parents=True, exist_ok=True)
    result = run_training(loaded, trained, config, out, resume=resume, progress=progress)
    if int(os.environ.get("RANK", "0")) != 0:  # under a launcher only the main process writes
        return result
    record = {
        **asdict(result),
        "model": loaded.describe() | {"full_num_layers": loaded.extra.get("full_num_layers")},
        "lexicon": lexicon_record(lex) | {"n_trained": len(trained), "n_control": len(control)},
        **provenance("train", asdict(config), config.seed),
    }
    write_train_run(out, record)
    return result
