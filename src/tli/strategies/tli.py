"""``tli`` and ``tli+lora``: a TLI adapter (``tli train`` on the lexicon) used as is, or merged into the
base and followed by task LoRA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tli.config import TrainConfig
from tli.lexicon import split_for_study
from tli.models import attach_adapter
from tli.strategies.base import Strategy
from tli.strategies.lora import add_task_lora
from tli.train import run_training


def tli_adapter_for(strategy: Strategy, loaded, seed: int, workdir: Path, progress: bool | None) -> str:
    """The TLI adapter to use: the one given in the options, or one trained now on the lexicon."""
    options = strategy.options
    if options.tli_adapter:
        strategy.notes["tli_adapter"] = options.tli_adapter
        return options.tli_adapter
    study = split_for_study(options.lexicon)
    config = TrainConfig(
        target_layer=options.target_layer,
        epochs=options.tli_epochs,
        seed=seed,
        lexicon=options.lexicon,
        dtype="auto",
        device=str(loaded.device),
        quantization=loaded.quantization,
    )
    out = workdir / "tli-adapter-training"
    out.mkdir(parents=True, exist_ok=True)
    result = run_training(
        loaded,
        study.trained,
        config,
        out,
        resume=True,
        progress=progress,
        control=study.control,
        split_record=study.record(),
    )
    strategy.notes.update(
        tli_adapter=result.adapter,
        tli_steps=result.timing["steps"],
        tli_train_seconds=result.timing["train_seconds"],
        tli_epoch_losses=result.epoch_losses,
        tli_trainable_parameters=result.trainable_parameters,
        tli_tokens_seen=result.tokens_seen,
    )
    return result.adapter


class TLI(Strategy):
    name = "tli"
    description = "a TLI adapter (early-layer LoRA trained on the lexicon), used as is"
    trains_on_task = False

    def prepare(self, loaded, *, seed: int, workdir: Path, progress: bool | None = None) -> Any:
        adapter = tli_adapter_for(self, loaded, seed, workdir, progress)
        if getattr(loaded.model, "peft_config", None) is None:  # trained just now: loaded.model holds it
            loaded.model = attach_adapter(loaded.model, adapter)
        for param in loaded.model.parameters():
            param.requires_grad_(False)
        return loaded.model


class TLIPlusLora(Strategy):
    name = "tli+lora"
    description = "a TLI adapter merged into the base, then task LoRA on every block"

    def prepare(self, loaded, *, seed: int, workdir: Path, progress: bool | None = None) -> Any:

        adapter = tli_adapter_for(self, loaded, seed, workdir, progress)
        if getattr(loaded.model, "peft_config", None) is None:
            loaded.model = attach_adapter(loaded.model, adapter)
        base = loaded.model.merge_and_unload()  # the TLI weights become part of the base
        torch.manual_seed(seed)
        loaded.model = add_task_lora(base, self.options, None)
        return loaded.model
