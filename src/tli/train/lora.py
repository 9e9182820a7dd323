"""The one LoRA recipe of TLI training and of the task fine-tuning strategies.

In-function import: ``peft``, only when an adapter is built (importing it imports bitsandbytes, which reaches
for the Hugging Face Hub and warns about its CPU kernels; see :mod:`tli.train`).
"""

from __future__ import annotations

from typing import Any

from tli.config import TrainConfig
from tli.errors import ConfigError


def build_lora(
    model: Any,
    layers: list[int] | None,
    rank: int,
    alpha: float,
    dropout: float,
    target_modules: list[str] | tuple[str, ...],
    *,
    label: str = "--target-modules",
) -> Any:
    """Wrap a causal LM with LoRA adapters on ``target_modules`` of the blocks ``layers`` (None = every block).

    Each adapted linear computes ``h ↦ W₀h + (α/r)·B A h`` with ``A`` (r×in) random and ``B`` (out×r) zero at
    the start; only ``A`` and ``B`` are trained. The one LoRA recipe of TLI training and of the task
    fine-tuning strategies.

    Raises:
        ConfigError: a target module the model does not have (the message starts with ``label``).
    """
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        layers_to_transform=layers,
        layers_pattern="layers" if layers is not None else None,
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigError(f"{label} {target_modules}: {exc}".splitlines()[0]) from exc


def add_lora(lm: Any, config: TrainConfig, num_layers: int) -> Any:
    """TLI's LoRA (:func:`build_lora`) on ``config.target_modules`` of the trainable blocks."""
    layers = config.trainable_layers()
    if not layers or max(layers) >= num_layers or min(layers) < 0:
        raise ConfigError(f"--lora-layers {layers}: blocks run 0..{num_layers - 1}")
    if config.quantization not in (None, "none"):
        # QLoRA: freeze the quantised base and keep inputs' grads flowing (tli already loaded the
        # non-quantised parameters in fp32, so nothing is upcast in place here).
        from peft import prepare_model_for_kbit_training

        lm = prepare_model_for_kbit_training(lm, use_gradient_checkpointing=False)
    return build_lora(
        lm, layers, config.lora_r, config.lora_alpha, config.lora_dropout, config.target_modules
    )
