"""bitsandbytes quantisation: the ``from_pretrained`` config of ``--quantization nf4|int8``, where it can run,
its portable CPU kernel and the compute dtype of 4-bit layers.

In-function import: ``bitsandbytes`` (only with ``--quantization nf4|int8``; its kernels are CUDA-first).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import BitsAndBytesConfig

from tli.architecture import QUANTIZATIONS
from tli.errors import ConfigError


def _quantization_config(quantization: str, compute_dtype: torch.dtype, sharded: bool = False):
    """bitsandbytes' config; ``sharded`` (QLoRA under FSDP) stores the 4-bit weights in the compute dtype, so
    FSDP can flatten them with the other parameters."""
    if quantization == "nf4":
        storage = {"bnb_4bit_quant_storage": compute_dtype} if sharded else {}
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype, **storage
        )
    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def _check_quantization_supported(quantization: str, device: torch.device) -> None:
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"--quantization {quantization!r} is not one of {', '.join(QUANTIZATIONS)}")
    if quantization == "none":
        return
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:
        raise ConfigError(
            f"--quantization {quantization} needs bitsandbytes: pip install 'bitsandbytes>=0.50' ({exc})"
        ) from exc
    if device.type not in ("cpu", "cuda", "xpu"):
        raise ConfigError(
            f"--quantization {quantization} is not supported by bitsandbytes on device "
            f"{device.type}; use --device cpu or cuda, or --quantization none"
        )


NF4_CPU_BLOCK = 64
"""bitsandbytes' AVX512-BF16 CPU kernel packs NF4 weights in blocks of 64 input features."""


NF4_CPU_BLOCK_N = 32
"""… and of 32 output features."""


def use_portable_nf4_kernels(lm: Any) -> int:
    """Make every NF4 layer use bitsandbytes' portable CPU kernel, never its packed AVX512-BF16 one.

    On CPUs with AVX512-BF16, bitsandbytes (0.50) repacks a 4-bit weight for a faster kernel at the first
    inference forward, and from then on every call goes through that kernel — which has no backward: a
    model that ran inference before training (``tli run``'s scan, a validation pass) would then train
    through it, silently wrong (PyTorch only warns "an autograd kernel was not registered"). The repacking
    also rounds the quantisation constants to bf16, so numbers would depend on whether inference came
    first, and it fails on layers whose shape is not a multiple of 64 (inputs) and 32 (outputs). The
    portable kernel computes the same product with none of these problems; the packed one is only faster.

    Returns:
        The number of NF4 layers switched.

    Raises:
        ConfigError: this bitsandbytes offers no switch and a layer's shape cannot be packed.
    """
    try:
        from bitsandbytes.functional import has_avx512bf16
        from bitsandbytes.nn import Linear4bit
    except ImportError:  # no NF4 layers without bitsandbytes
        return 0
    if not has_avx512bf16():  # only the portable kernel exists on this CPU
        return 0
    switched = 0
    for name, module in lm.named_modules():
        if not isinstance(module, Linear4bit):
            continue
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
            switched += 1
        elif module.in_features % NF4_CPU_BLOCK or module.out_features % NF4_CPU_BLOCK_N:
            raise ConfigError(
                f"--quantization nf4: layer {name} ({module.in_features} → {module.out_features} features) "
                f"cannot be packed by bitsandbytes on this CPU (it needs inputs in multiples of "
                f"{NF4_CPU_BLOCK} and outputs in multiples of {NF4_CPU_BLOCK_N}); use --quantization none"
            )
    return switched


def set_compute_dtype(model: Any, dtype: torch.dtype) -> None:
    """Set the matmul dtype of every NF4 layer (bf16 for QLoRA training, fp32 for embeddings).

    One loaded NF4 model serves the scan, training and evaluation of ``tli run``; switching the compute dtype
    between phases keeps each phase's numbers identical to the standalone command's.
    """
    try:
        from bitsandbytes.nn import Linear4bit
    except ImportError:
        return
    for module in model.modules():
        if isinstance(module, Linear4bit):
            module.compute_dtype = dtype
            module.compute_type_is_set = True
