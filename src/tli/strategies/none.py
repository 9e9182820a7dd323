"""``none``: the base model as it is (zero-shot) — the reference every strategy is compared with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tli.io import atomic_write_json
from tli.strategies.base import Strategy


class NoStrategy(Strategy):
    name = "none"
    description = "zero-shot base model, no fine-tuning"
    trains_on_task = False

    def prepare(self, loaded, *, seed: int, workdir: Path, progress: bool | None = None) -> Any:
        for param in loaded.model.parameters():
            param.requires_grad_(False)
        return loaded.model

    def save(self, model: Any, directory: Path) -> None:
        atomic_write_json(directory / "strategy.json", {"strategy": self.name, "weights": "the base model's"})

    def load(self, loaded, directory: Path) -> Any:
        return loaded.model
