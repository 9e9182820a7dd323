"""A decoder's shapes and the bytes its weights take: one home for the arithmetic ``tli plan`` and
:mod:`tli.models` (the "will the weights fit" warning) both use.

:class:`Architecture` is read from a config.json (:func:`architecture_from_config`); parameter counts equal
``sum(p.numel())`` of transformers' Llama, Qwen2, Mistral and Gemma models, and :func:`nf4_tensor_bytes`
equals the storage bitsandbytes allocates for an NF4 tensor (tests/test_plan.py). Units: bytes; ``GIB`` is
2**30 bytes.

In-function import: ``transformers`` (its config defaults, in :func:`architecture_from_config`), so
:mod:`tli.config` and ``tli --help`` load no transformers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tli.errors import ConfigError

GIB = 2**30
QUANTIZATIONS = ("none", "nf4", "int8")
"""How the weights are stored once loaded: as in the checkpoint (``none``), or quantised by bitsandbytes to
4-bit NF4 (:func:`nf4_weight_bytes`) or 8 bits (1 byte per parameter)."""
NF4_BLOCK = 64
"""bitsandbytes' NF4 block: one absmax constant per 64 weights."""
DQ_BLOCK = 256
"""Double quantisation: the 8-bit absmax constants are themselves quantised in blocks of 256."""


@dataclass(frozen=True)
class Family:
    """What a config family adds to the common decoder block (shapes come from the config)."""

    norms_per_block: int = 2
    qkv_bias: bool | None = None
    """Fixed q/k/v bias (Qwen2: True); None = the config's ``attention_bias``."""
    o_bias: bool | None = None
    gemma_norm: bool = False
    """Gemma's RMSNorm scales in fp32 (``x̂·(1+w)``): its weight gradient keeps an fp32 copy."""
    qk_norm: bool = False
    """Gemma-3 normalises queries and keys per head (two ``head_dim`` weights per block)."""


FAMILIES = {
    "llama": Family(),
    "mistral": Family(qkv_bias=False, o_bias=False),
    "qwen2": Family(qkv_bias=True, o_bias=False),
    "gemma": Family(gemma_norm=True),
    "gemma2": Family(norms_per_block=4, gemma_norm=True),
    "gemma3_text": Family(norms_per_block=4, gemma_norm=True, qk_norm=True),
}
ARCHITECTURE_FAMILIES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "GemmaForCausalLM": "gemma",
    "Gemma2ForCausalLM": "gemma2",
    "Gemma3ForCausalLM": "gemma3_text",
}


@dataclass(frozen=True)
class Architecture:
    """The shapes that decide memory and compute, read from a config.json."""

    name: str
    family: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tied_embeddings: bool
    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    attn_softcap: bool = False
    max_position_embeddings: int | None = None
    checkpoint_dtype: str = "bfloat16"
    """``torch_dtype`` of the config: what the checkpoint files store (for download / read sizes)."""

    @property
    def spec(self) -> Family:
        return FAMILIES[self.family]

    def linears(self) -> dict[str, tuple[int, int, bool]]:
        """Each block's linear layers: name → (in_features, out_features, has_bias)."""
        h, i = self.hidden_size, self.intermediate_size
        q, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        return {
            "q_proj": (h, q, self.qkv_bias),
            "k_proj": (h, kv, self.qkv_bias),
            "v_proj": (h, kv, self.qkv_bias),
            "o_proj": (q, h, self.o_bias),
            "gate_proj": (h, i, self.mlp_bias),
            "up_proj": (h, i, self.mlp_bias),
            "down_proj": (i, h, self.mlp_bias),
        }

    def block_linear_weights(self) -> int:
        """Σ in·out over a block's linear layers (what NF4 quantises)."""
        return sum(d_in * d_out for d_in, d_out, _ in self.linears().values())

    def block_small_parameters(self) -> int:
        """Biases and norm weights of a block (never quantised)."""
        biases = sum(d_out for _, d_out, bias in self.linears().values() if bias)
        norms = self.spec.norms_per_block * self.hidden_size + (2 * self.head_dim if self.spec.qk_norm else 0)
        return biases + norms

    def block_parameters(self) -> int:
        return self.block_linear_weights() + self.block_small_parameters()

    def embedding_parameters(self) -> int:
        return self.vocab_size * self.hidden_size

    def lm_head_parameters(self) -> int:
        """0 when tied to the input embeddings (stored once)."""
        return 0 if self.tied_embeddings else self.vocab_size * self.hidden_size

    def parameters(self, blocks: int | None = None) -> int:
        """``V·H (embeddings) + [V·H (untied lm_head)] + blocks·P_block + H (final norm)``.

        ``P_block = Σ_linear in·out + biases + norms``: attention ``H·(nh·hd) + 2·H·(nkv·hd) + (nh·hd)·H``
        (grouped-query attention shares ``nkv`` key/value heads), gated MLP ``3·H·I``,
        ``norms_per_block·H`` RMSNorm weights (+ ``2·hd`` q/k norms on Gemma-3), and q/k/v (Qwen2) or all
        (``attention_bias``) biases.
        """
        blocks = self.num_layers if blocks is None else blocks
        return (
            self.embedding_parameters()
            + self.lm_head_parameters()
            + blocks * self.block_parameters()
            + self.hidden_size
        )

    def breakdown(self) -> dict[str, int]:
        return {
            "total": self.parameters(),
            "embeddings": self.embedding_parameters(),
            "lm_head": self.lm_head_parameters(),
            "per_block": self.block_parameters(),
            "blocks": self.num_layers * self.block_parameters(),
            "final_norm": self.hidden_size,
        }


def _family_of(raw: dict[str, Any], where: str) -> str:
    model_type = raw.get("model_type")
    if model_type in FAMILIES:
        return model_type
    for arch in raw.get("architectures") or []:
        if arch in ARCHITECTURE_FAMILIES:
            return ARCHITECTURE_FAMILIES[arch]
    what = model_type or ", ".join(raw.get("architectures") or []) or "no model_type"
    raise ConfigError(
        f"{where}: model family {what!r} is not supported by tli plan "
        f"(supported: {', '.join(FAMILIES)}; e.g. LlamaForCausalLM, Qwen2ForCausalLM)"
    )


def architecture_from_config(raw: dict[str, Any], name: str, where: str = "config.json") -> Architecture:
    """Build an :class:`Architecture` from a config.json dict, with transformers' defaults for absent keys.

    Raises:
        ConfigError: an unsupported family or a config transformers cannot read (message names ``where``).
    """
    from transformers import AutoConfig

    if "text_config" in raw and raw.get("model_type") == "gemma3":  # multimodal wrapper: plan its LM
        raw = {**raw["text_config"], "model_type": "gemma3_text"}
    family = _family_of(raw, where)
    kwargs = {k: v for k, v in raw.items() if k != "model_type" and not k.startswith("_")}
    try:
        cfg = AutoConfig.for_model(family, **kwargs)
    except (TypeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{where}: transformers cannot read this {family} config ({first})") from exc
    heads = int(cfg.num_attention_heads)
    spec = FAMILIES[family]
    return Architecture(
        name=name,
        family=family,
        hidden_size=int(cfg.hidden_size),
        intermediate_size=int(cfg.intermediate_size),
        num_layers=int(cfg.num_hidden_layers),
        num_heads=heads,
        num_kv_heads=int(getattr(cfg, "num_key_value_heads", None) or heads),
        head_dim=int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads),
        vocab_size=int(cfg.vocab_size),
        tied_embeddings=bool(getattr(cfg, "tie_word_embeddings", False)),
        qkv_bias=spec.qkv_bias if spec.qkv_bias is not None else bool(getattr(cfg, "attention_bias", False)),
        o_bias=spec.o_bias if spec.o_bias is not None else bool(getattr(cfg, "attention_bias", False)),
        mlp_bias=bool(getattr(cfg, "mlp_bias", False)),
        attn_softcap=getattr(cfg, "attn_logit_softcapping", None) is not None,
        max_position_embeddings=getattr(cfg, "max_position_embeddings", None),
        checkpoint_dtype=str(raw.get("torch_dtype") or raw.get("dtype") or "bfloat16"),
    )


def weight_bytes(arch: Architecture, bytes_per_param: float, blocks: int | None = None) -> float:
    """``P·b``: every parameter stored with ``b`` bytes (P from :meth:`Architecture.parameters`)."""
    return arch.parameters(blocks) * bytes_per_param


def nf4_tensor_bytes(numel: int, double_quant: bool) -> float:
    """Storage of one NF4-quantised weight matrix in bitsandbytes.

    ``⌈numel/2⌉`` packed 4-bit codes + one absmax per 64 weights: fp32 (4 B), or with double quantisation
    uint8 (1 B) plus an fp32 constant per 256 absmax values, a 256-entry fp32 code table and an fp32
    offset; + the 16-entry fp32 NF4 code table. Per weight: 0.5 + 4/64 = 0.5625 B, or with double
    quantisation 0.5 + 1/64 + 4/(64·256) ≈ 0.5159 B (≈ 4.13 bits).
    """
    blocks = math.ceil(numel / NF4_BLOCK)
    constants = blocks * 4 if not double_quant else blocks + math.ceil(blocks / DQ_BLOCK) * 4 + 256 * 4 + 4
    return math.ceil(numel / 2) + constants + 16 * 4


def nf4_weight_bytes(arch: Architecture, blocks: int, double_quant: bool, other_bytes: int) -> float:
    """Weights of a model loaded in NF4: block linears quantised, everything else at ``other_bytes``/param.

    Non-quantised parts: embeddings, untied lm_head, norms, biases (bitsandbytes keeps lm_head in full
    precision).
    """
    per_block = sum(nf4_tensor_bytes(i * o, double_quant) for i, o, _ in arch.linears().values())
    kept = arch.parameters(blocks) - blocks * arch.block_linear_weights()
    return blocks * per_block + kept * other_bytes
