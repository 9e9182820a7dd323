"""``lora``: LoRA adapters on the chosen linear layers of every block (the usual PEFT recipe)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tli.models import base_causal_lm
from tli.strategies.base import Strategy, StrategyOptions
from tli.train import build_lora


def add_task_lora(model: Any, options: StrategyOptions, layers: list[int] | None) -> Any:
    """Wrap ``model`` with the one LoRA recipe (:func:`tli.train.build_lora`) on ``options.target_modules``
    of ``layers`` (None = all): ``h ↦ W₀h + (α/r)·B A h`` with ``A`` random, ``B`` zero at the start, only
    ``A``, ``B`` trained."""
    return build_lora(
        model,
        layers,
        options.lora_r,
        options.lora_alpha,
        options.lora_dropout,
        options.target_modules,
        label="LoRA target_modules",
    )


def num_blocks(loaded) -> int:
    return int(base_causal_lm(loaded.model).config.num_hidden_layers)


class Lora(Strategy):
    name = "lora"
    description = "LoRA on every block"

    def layers(self, n_blocks: int) -> list[int] | None:
        """The blocks that get LoRA (None = all)."""
        return None

    def prepare(self, loaded, *, seed: int, workdir: Path, progress: bool | None = None) -> Any:

        torch.manual_seed(seed)
        layers = self.layers(num_blocks(loaded))
        self.notes["lora_layers"] = layers if layers is not None else "all"
        return add_task_lora(loaded.model, self.options, layers)
