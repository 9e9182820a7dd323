"""The parts of a loaded causal LM tli reaches into: its decoder stack, the device its input goes to, a
tokenizer's padding token.

In-function import: ``peft`` (it imports bitsandbytes, which reaches for the Hugging Face Hub at import: a scan
that uses no adapter never imports it).
"""

from __future__ import annotations

from typing import Any

import torch

from tli.errors import ModelLoadError


def ensure_pad_token(tokenizer: Any) -> None:
    """Give a tokenizer a pad token without growing the vocabulary (eos, then unk, then bos, then id 0).

    Padding positions are always masked out, so which existing token pads does not change any result.
    """
    if tokenizer.pad_token is not None:
        return
    for candidate in (tokenizer.eos_token, tokenizer.unk_token, tokenizer.bos_token):
        if candidate is not None:
            tokenizer.pad_token = candidate
            return
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(0)


def input_device(model: Any) -> torch.device:
    """Where a batch's token ids go: the device the input embedding runs on.

    With a device map that is the embedding's device, or — when Accelerate offloaded it to the CPU or disk
    (its weights then sit on ``meta``) — the execution device of its hook; otherwise the model's device.
    """
    get_embeddings = getattr(model, "get_input_embeddings", None)
    embed = get_embeddings() if callable(get_embeddings) else None
    if embed is not None:
        execution = getattr(getattr(embed, "_hf_hook", None), "execution_device", None)
        if execution is not None:
            return torch.device(f"cuda:{execution}" if isinstance(execution, int) else execution)
        weight = next(embed.parameters(), None)
        if weight is not None and not weight.is_meta:
            return weight.device
    device = getattr(model, "device", None)
    if isinstance(device, torch.device) and device.type != "meta":
        return device
    return next((p.device for p in model.parameters() if not p.is_meta), torch.device("cpu"))


def base_causal_lm(model: Any) -> Any:
    """The ``*ForCausalLM`` under an optional PEFT wrapper."""
    from peft import PeftModel

    return model.get_base_model() if isinstance(model, PeftModel) else model


def backbone(model: Any) -> Any:
    """The decoder stack (e.g. ``LlamaModel``) that returns hidden states without ``lm_head``."""
    lm = base_causal_lm(model)
    inner = getattr(lm, lm.base_model_prefix, None)
    if inner is None or not hasattr(inner, "layers"):
        raise ModelLoadError(
            f"{type(lm).__name__} has no decoder stack at .{lm.base_model_prefix}.layers: "
            "tli supports decoder-only causal LMs (Llama, Qwen2, Mistral, Gemma, ...)"
        )
    return inner
