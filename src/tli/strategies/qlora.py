"""``qlora``: the base loaded in 4-bit NF4 (bitsandbytes) with LoRA on every block (QLoRA).

bitsandbytes 0.50 runs NF4 on CPU too, so this strategy runs (slowly) without a GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tli.models import set_compute_dtype
from tli.strategies.lora import Lora, add_task_lora


class QLora(Lora):
    name = "qlora"
    description = "NF4 4-bit base + LoRA on every block"
    quantization = "nf4"

    def prepare(self, loaded, *, seed: int, workdir: Path, progress: bool | None = None) -> Any:
        from peft import prepare_model_for_kbit_training

        torch.manual_seed(seed)
        model = prepare_model_for_kbit_training(loaded.model, use_gradient_checkpointing=False)
        set_compute_dtype(model, torch.bfloat16)  # the QLoRA compute dtype while training
        self.notes["lora_layers"] = "all"
        return add_task_lora(model, self.options, None)
