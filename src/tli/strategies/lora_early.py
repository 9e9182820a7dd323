"""``lora-early``: LoRA only on the first k blocks (k = the TLI target layer by default)."""

from __future__ import annotations

from tli.errors import ConfigError
from tli.strategies.lora import Lora


class LoraEarly(Lora):
    name = "lora-early"
    description = "LoRA on blocks 0..k-1 (k: layers, default the TLI target layer)"

    def layers(self, n_blocks: int) -> list[int]:
        k = self.options.layers or self.options.target_layer
        if k > n_blocks:
            raise ConfigError(f"strategy lora-early: layers {k} is more than the model's {n_blocks} blocks")
        return list(range(k))
