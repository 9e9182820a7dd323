"""Loading only the first blocks of a model (``up_to_layer=L``): the embeddings and blocks ``0..L-1`` are read
from the checkpoint, no later block and no ``lm_head``.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from tli.errors import ConfigError, ModelLoadError


def blocks_for_layer(layer: int) -> int:
    """Decoder blocks that ``hidden_states[layer]`` needs: blocks ``0..layer-1`` (one block for index 0, whose
    loaded block never runs: transformers builds no model without blocks)."""
    return max(layer, 1)


class NotLoadedHead(torch.nn.Module):
    """Stands in for the ``lm_head`` that truncated loading did not read; calling it is an error."""

    def __init__(self, blocks: int) -> None:
        super().__init__()
        self.blocks = blocks

    def forward(self, *_args: Any, **_kwargs: Any) -> torch.Tensor:
        raise ConfigError(
            f"this model was loaded up to block {self.blocks - 1} only (no lm_head, no later block): it "
            "gives "
            "hidden states, not logits; load the whole model to generate or score text"
        )

    def extra_repr(self) -> str:
        return f"not loaded (model truncated to {self.blocks} blocks)"


_SHELL_ATTRIBUTES = (
    "hf_quantizer",
    "is_loaded_in_4bit",
    "is_loaded_in_8bit",
    "quantization_method",
    "hf_device_map",
)
"""What transformers' loading sets on a model and PEFT reads back (k-bit training, device placement)."""


def _load_first_blocks(location: str, blocks: int, kwargs: dict[str, Any]) -> Any:
    """A ``*ForCausalLM`` holding only the embeddings and the first ``blocks`` decoder blocks.

    The decoder stack is loaded with ``AutoModel`` (the checkpoint's ``model.`` prefix is handled by
    transformers), which reads only the tensors of the blocks it builds and never ``lm_head``; it is then put
    in a causal-LM shell built on the meta device, so parameter names, PEFT adapters and ``save_pretrained``
    are those of the full model. The final norm becomes the identity: the last block's output is then
    ``hidden_states[blocks]`` of the full model, not its normalised final state.
    """
    kwargs = dict(kwargs)
    if isinstance(kwargs.get("device_map"), dict):  # a causal LM's module names, without the stack's prefix
        kwargs["device_map"] = _stack_device_map(kwargs["device_map"])
    stack = AutoModel.from_pretrained(location, num_hidden_layers=blocks, **kwargs)
    if not hasattr(stack, "layers") or not hasattr(stack, "norm"):
        raise ModelLoadError(
            f"{type(stack).__name__} has no .layers / .norm: truncated loading supports decoder-only causal "
            "LMs "
            "(Llama, Qwen2, Mistral, Gemma, ...); pass the whole model (no --target-layer truncation)"
        )
    stack.norm = torch.nn.Identity()
    with torch.device("meta"):
        shell = AutoModelForCausalLM.from_config(
            stack.config, trust_remote_code=kwargs.get("trust_remote_code", False)
        )
    setattr(shell, shell.base_model_prefix, stack)
    shell.lm_head = NotLoadedHead(blocks)
    shell.config = stack.config
    for name in _SHELL_ATTRIBUTES:
        if name in vars(stack):
            setattr(shell, name, vars(stack)[name])
    return shell


def _stack_device_map(device_map: dict[str, Any], prefix: str = "model") -> dict[str, Any]:
    """A causal LM's ``{module: device}`` map for its decoder stack alone: ``model.layers.0`` → ``layers.0``;
    ``lm_head`` (not loaded) dropped; a whole-model entry ``""`` kept."""
    mapped = {}
    for name, device in device_map.items():
        if name == "" or name == prefix:
            mapped[""] = device
        elif name.startswith(prefix + "."):
            mapped[name[len(prefix) + 1 :]] = device
    return mapped


def _num_layers_in_config(location: str, trust_remote_code: bool) -> int | None:
    """Depth N of the full model from its config alone (no weights read); None if unreadable."""
    try:
        config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    except Exception:  # the weight loading below reports a clear error for the same cause
        return None
    config = getattr(config, "text_config", None) or config
    return getattr(config, "num_hidden_layers", None)
