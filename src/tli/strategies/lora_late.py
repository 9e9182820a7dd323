"""``lora-late``: LoRA only on the last k blocks (as many as ``lora-early`` adapts, by default)."""

from __future__ import annotations

from tli.errors import ConfigError
from tli.strategies.lora import Lora


class LoraLate(Lora):
    name = "lora-late"
    description = "LoRA on the last k blocks (k: layers, default the TLI target layer)"

    def layers(self, n_blocks: int) -> list[int]:
        k = self.options.layers or self.options.target_layer
        if k > n_blocks:
            raise ConfigError(f"strategy lora-late: layers {k} is more than the model's {n_blocks} blocks")
        return list(range(n_blocks - k, n_blocks))
