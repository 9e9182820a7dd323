"""``full``: every weight is trained (full fine-tuning)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tli.strategies.base import Strategy


class FullFineTuning(Strategy):
    name = "full"
    description = "full fine-tuning: every weight trainable"

    def prepare(self, loaded, *, seed: int, workdir: Path, progress: bool | None = None) -> Any:
        for param in loaded.model.parameters():
            param.requires_grad_(True)
        return loaded.model

    def load(self, loaded, directory: Path) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(directory, dtype=loaded.dtype).to(loaded.device)
