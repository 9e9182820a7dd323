"""Memory formulas of ``tli plan``, in bytes: LoRA parameters, saved activations, the loss's transient and the
optimiser's step temporaries.

Notation: n = tokens in one micro-batch, e = bytes per activation element, H hidden, I intermediate, V vocabulary.
"""

from __future__ import annotations

from tli.architecture import Architecture
from tli.plan.settings import PlanSettings


def lora_parameters(arch: Architecture, targets: tuple[str, ...], r: int, blocks: int) -> int:
    """``blocks · Σ_target r·(in + out)``: LoRA's A (r×in) and B (out×r) per adapted linear."""
    linears = arch.linears()
    return blocks * sum(r * (linears[t][0] + linears[t][1]) for t in targets)


def _norm_bytes(arch: Architecture, e: int, trainable: bool) -> float:
    """Per token, per block: RMSNorms keep their fp32 input (4·H) and rstd (4 B); training their weight
    also keeps the normalised input (e·H; Gemma's fp32 scaling: 4·H); Gemma-3's q/k norms likewise."""
    h = arch.hidden_size
    per_norm = 4 * h + 4 + ((4 if arch.spec.gemma_norm else e) * h if trainable else 0)
    qk = 0
    if arch.spec.qk_norm:
        qk_width = (arch.num_heads + arch.num_kv_heads) * arch.head_dim
        qk = 4 * qk_width + (4 * qk_width if trainable else 0)
    return arch.spec.norms_per_block * per_norm + qk


def block_activation_bytes(
    arch: Architecture,
    tokens: int,
    seq_len: int,
    e: int,
    *,
    trainable: bool,
    lora_targets: tuple[str, ...] = (),
    lora_r: int = 0,
    attention: str = "sdpa",
) -> float:
    """Bytes one decoder block saves for backward, for ``tokens`` tokens in sequences of ``seq_len``.

    Per token (H hidden, I intermediate, q = nh·hd, kv = nkv·hd, nh heads, e bytes/element)::

        norms                 2·(4H + 4)           + trainable: 2·e·H      (see _norm_bytes)
        attention (SDPA)      e·(2q + 2kv) + 4·nh  (query, output, keys, values, fp32 logsumexp)
        gated MLP             3·e·I                (gate, activation, up)
        trainable weights     + e·(2H + I)         (inputs kept for the weight gradients)
        LoRA, each module     + 8·in + 4·r         (fp32 dropout output and mask, A's output)
        eager attention       + nh·T·(4 + e·[e≠4] + 2e·trainable) − 4·nh  (probabilities replace the lse)

    Exact (to the byte) for transformers 5 Llama, Mistral and Qwen2 blocks with SDPA attention — counted
    with ``torch.autograd.graph.saved_tensors_hooks``; Gemma families (fp32 norm scaling, four norms,
    soft-capping) are approximate.
    """
    h, i, nh = arch.hidden_size, arch.intermediate_size, arch.num_heads
    q, kv = nh * arch.head_dim, arch.num_kv_heads * arch.head_dim
    per_token = _norm_bytes(arch, e, trainable) + e * (2 * q + 2 * kv + 3 * i) + 4 * nh
    if trainable:
        per_token += e * (2 * h + i)
    linears = arch.linears()
    per_token += sum(8 * linears[t][0] + 4 * lora_r for t in lora_targets)
    if attention == "eager":
        per_token += nh * seq_len * (4 + (e if e != 4 else 0) + (2 * e if trainable else 0)) - 4 * nh
        if arch.attn_softcap:
            per_token += nh * seq_len * (e + 4)
    return tokens * per_token


def head_activation_bytes(arch: Architecture, tokens: int, seq_len: int, e: int, *, trainable: bool) -> float:
    """Bytes saved outside the blocks for a language-modelling loss on ``tokens`` tokens.

    Per token: token ids and shifted labels (8 + 8 B), final norm (4H + 4, + e·H when trained), lm_head
    input (e·H when trained), fp32 log-probabilities ``4·V`` (cross-entropy keeps them); per sequence
    batch: RoPE cos/sin ``2·T·hd·e``.
    """
    h, v = arch.hidden_size, arch.vocab_size
    per_token = 16 + 4 * h + 4 + 4 * v + (2 * e * h if trainable else 0)
    return tokens * per_token + 2 * seq_len * arch.head_dim * e


def inference_activation_bytes(arch: Architecture, tokens: int, e: int) -> float:
    """Peak working set of a no-grad forward through one block (nothing is kept between blocks but the
    residual stream): per token ``e·(3H + 3I)`` (the block's input, still referenced by the caller, the
    residual, the normalised input, and three of the MLP's gate / activation / up / product) + ``8·H``
    (the norm's fp32 square and scaled copy)."""
    h, i = arch.hidden_size, arch.intermediate_size
    return tokens * (e * (3 * h + 3 * i) + 8 * h)


def loss_transient_bytes(arch: Architecture, tokens: int) -> float:
    """``8·V`` per token: the fp32 gradients of the log-probabilities and of the logits, alive together
    at the start of backward while every saved activation still is."""
    return 8 * arch.vocab_size * tokens


def _optimizer_temporaries(trainable: int, largest: int, s: PlanSettings) -> float:
    """AdamW's step temporaries: CUDA's foreach AdamW holds ``sqrt(v)`` for all trainable tensors at once
    (4 B/param); CPU's per-tensor AdamW two fp32 temporaries of the largest tensor."""
    return 4 * trainable if s.device == "cuda" else 8 * largest


def _activations(arch: Architecture, s: PlanSettings, e: int, *, trainable: bool, lora: bool) -> float:
    """Saved activations of a language-modelling step on ``batch_size × seq_len`` tokens, over all blocks;
    with gradient checkpointing only each block's input (``e·H`` per token) plus one block's activations."""
    n, t = s.batch_size * s.seq_len, s.seq_len
    targets, r = (s.lora_targets, s.lora_r) if lora else ((), 0)
    block = block_activation_bytes(
        arch, n, t, e, trainable=trainable, lora_targets=targets, lora_r=r, attention=s.attention
    )
    blocks = arch.num_layers * block
    if s.gradient_checkpointing:
        blocks = arch.num_layers * n * e * arch.hidden_size + block
    return blocks + head_activation_bytes(arch, n, t, e, trainable=trainable)
