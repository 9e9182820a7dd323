"""``tli plan``: what a run will need — memory, GPUs and time per strategy — from a model's config.json alone.

No weights are read. The model is a local Hugging Face directory, a ``config.json`` path, or a known name
whose public config ships with tli (``qwen2-72b``, ``llama-3-70b``, ``lugha-llama-8b-wura``,
``smollm2-135m``), so ``tli plan --model qwen2-72b`` works offline.

Units: every ``*_gb`` figure is GiB (2**30 bytes); ``gpu_memory_gb=80`` is an 80 GiB H100/A100.

How the figures were checked: parameter counts equal ``sum(p.numel())`` of transformers' Llama, Qwen2,
Mistral and Gemma models; the saved-activation formula equals the bytes autograd saves (counted with
``torch.autograd.graph.saved_tensors_hooks``) in transformers 5 Llama / Mistral / Qwen2 blocks with SDPA
attention, full and LoRA, fp32 and bf16; ``benchmarks/bench_plan.py`` compares whole estimates with the
peak RSS of real steps on CPU.

In-function import: ``transformers`` (reading a GGUF file's config), only for a ``.gguf`` model.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from tli.architecture import (
    GIB,
    Architecture,
    architecture_from_config,
    nf4_weight_bytes,
    weight_bytes,
)
from tli.errors import ConfigError
from tli.io import cache_dir, sha256_file

STRATEGIES = ("full", "lora", "qlora", "tli", "scan-stream", "inference")
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
MAX_DEVICES = 1024

# Known names → shipped config file (tli/data/model_configs/<file>); aliases are lower case.
KNOWN_MODELS = {
    "qwen2-72b": "qwen2-72b.json",
    "llama-3-70b": "llama-3-70b.json",
    "lugha-llama-8b-wura": "lugha-llama-8b-wura.json",
    "smollm2-135m": "smollm2-135m.json",
}
ALIASES = {
    "qwen/qwen2-72b": "qwen2-72b",
    "meta-llama-3-70b": "llama-3-70b",
    "meta-llama/meta-llama-3-70b": "llama-3-70b",
    "lugha-llama/lugha-llama-8b-wura": "lugha-llama-8b-wura",
    "smollm2-135m-instruct": "smollm2-135m",
    "huggingfacetb/smollm2-135m": "smollm2-135m",
    "huggingfacetb/smollm2-135m-instruct": "smollm2-135m",
    "default": "smollm2-135m",
}


# ---------------------------------------------------------------------------------------------------
# Where an architecture comes from


def known_models() -> dict[str, Path]:
    """Shipped configs by name (``tli/data/model_configs``)."""
    root = files("tli") / "data" / "model_configs"
    return {name: Path(str(root / file)) for name, file in KNOWN_MODELS.items()}


def gguf_config(path: Path) -> dict[str, Any]:
    """The config.json a GGUF file stands for: tli's converted copy when cached, else from the file's metadata.

    Raises:
        ConfigError: a file transformers cannot read as GGUF.
    """
    cached = cache_dir() / "gguf" / sha256_file(path)[:32] / "config.json"
    if cached.is_file():
        return json.loads(cached.read_text(encoding="utf-8"))
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name).to_dict()
    except Exception as exc:  # the GGUF reader raises many types for a file it cannot parse
        raise ConfigError(f"--model {path}: not a readable GGUF file ({str(exc).splitlines()[0]})") from exc


def load_architecture(model: str | Path) -> Architecture:
    """Read a model's architecture from a directory, a config.json, a .gguf file or a known name (never its weights).

    Raises:
        ConfigError: no such path / unknown name (lists the known ones) / no config.json / bad JSON /
            unsupported family.
    """
    spec = str(model)
    path = Path(spec).expanduser()
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise ConfigError(
                f"--model {spec}: no config.json in this directory (pass a Hugging Face model directory, "
                f"its config.json, or one of: {', '.join(KNOWN_MODELS)})"
            )
        name = path.resolve().name
    elif path.is_file() and path.suffix.lower() == ".gguf":
        return architecture_from_config(gguf_config(path), path.stem, str(path))
    elif path.is_file():
        config_path, name = path, path.resolve().parent.name
    else:
        key = ALIASES.get(spec.lower(), spec.lower())
        if key not in KNOWN_MODELS:
            raise ConfigError(
                f"--model {spec}: not a directory, a config.json or a known name "
                f"(known: {', '.join(KNOWN_MODELS)}; aliases: {', '.join(ALIASES)})"
            )
        config_path, name = known_models()[key], key
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{config_path}: not a readable JSON config ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: expected a JSON object (a Hugging Face config.json)")
    return architecture_from_config(raw, name, str(config_path))


# ---------------------------------------------------------------------------------------------------
# Settings


@dataclass
class PlanSettings:
    """Options of ``tli plan`` (each one moves the estimates; defaults follow the published TLI run)."""

    batch_size: int = 8
    """Sequences per device per step for full/lora/qlora; word pairs per step for tli (2 sequences each)."""
    seq_len: int = 512
    """Tokens per training sequence (full, lora, qlora)."""
    steps: int | None = None
    """Optimiser steps, for a time estimate (tokens per step depend on the strategy)."""
    tokens: int | None = None
    """Total tokens processed, for a time estimate (alternative to ``steps``)."""
    target_layer: int = 2
    """TLI target hidden-state index L: blocks 0..L-1 run and get LoRA."""
    lora_r: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    gpu_memory_gb: float = 80.0
    """Memory of one GPU (GiB)."""
    gpu_tflops: float = 989.0
    """Dense bf16 peak of one GPU (H100 SXM: 989; A100: 312)."""
    mfu: float = 0.35
    """Model FLOPs utilisation assumed for the time estimates."""
    device_map_devices: int | None = None
    """Split inference over this many GPUs (``device_map``); memory_gb is then the per-device share."""
    dtype: str = "bfloat16"
    """Weights / compute dtype: bfloat16 | float16 | float32 (float32 for CPU checks)."""
    gradient_checkpointing: bool = True
    """Recompute each block in backward (full, lora, qlora): saves only block inputs, +1 forward of FLOPs."""
    attention: str = "sdpa"
    """``sdpa`` (memory-efficient, no T² term) | ``eager`` (keeps nh·T² attention probabilities)."""
    word_tokens: int = 8
    """Tokens per lexicon word (TLI batches, scans)."""
    scan_batch_size: int = 32
    """Words per forward in scans / inference."""
    tli_quantization: str = "nf4"
    """``nf4`` (published) | ``none`` (dtype weights) for the TLI strategy."""
    double_quant: bool = True
    """NF4 double quantisation of the absmax constants (QLoRA recipe)."""
    kbit_upcast: bool = True
    """``prepare_model_for_kbit_training`` (tli, most QLoRA recipes) casts every non-4-bit weight to fp32,
    and with them the residual stream: activations are then fp32."""
    device: str = "cuda"
    """``cuda`` | ``cpu``: sets the optimiser's temporaries (foreach vs per-tensor AdamW)."""
    overhead_gb: float | None = None
    """Fixed per-device overhead; None = 1.0 GiB on cuda (context, cuBLAS/NCCL workspaces), 0 on cpu."""
    overhead_fraction: float | None = None
    """Allocator fragmentation as a fraction of the peak; None = 0.05 on cuda, 0 on cpu."""
    disk_gb_per_s: float = 2.0
    """Checkpoint read bandwidth for the streaming scan (GiB/s)."""

    def __post_init__(self) -> None:
        self.lora_targets = tuple(self.lora_targets)
        problems = []
        for name in ("batch_size", "seq_len", "lora_r", "word_tokens", "scan_batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("steps", "tokens", "device_map_devices"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.steps is not None and self.tokens is not None:
            problems.append("give --steps or --tokens, not both")
        if self.target_layer < 1:
            problems.append(
                f"--target-layer must be >= 1 (0 is the embedding table), got {self.target_layer}"
            )
        for name in ("gpu_memory_gb", "gpu_tflops", "disk_gb_per_s"):
            if getattr(self, name) <= 0:
                problems.append(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        if not 0 < self.mfu <= 1:
            problems.append(f"--mfu must be in (0, 1], got {self.mfu}")
        choices = {
            "dtype": tuple(DTYPE_BYTES),
            "attention": ("sdpa", "eager"),
            "tli_quantization": ("nf4", "none"),
            "device": ("cuda", "cpu"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                problems.append(
                    f"--{name.replace('_', '-')} {getattr(self, name)!r} is not one of {', '.join(allowed)}"
                )
        if problems:
            raise ConfigError("; ".join(problems))
        if self.overhead_gb is None:
            self.overhead_gb = 1.0 if self.device == "cuda" else 0.0
        if self.overhead_fraction is None:
            self.overhead_fraction = 0.05 if self.device == "cuda" else 0.0

    @property
    def bytes_per_element(self) -> int:
        return DTYPE_BYTES[self.dtype]


# ---------------------------------------------------------------------------------------------------
# Memory formulas (bytes). n = tokens in one micro-batch, e = bytes per activation element.


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


# ---------------------------------------------------------------------------------------------------
# Result types


@dataclass
class StrategyPlan:
    """Memory, devices and time of one strategy."""

    memory_gb: float
    """Peak per device in the chosen setup (``devices`` GPUs)."""
    devices: int | None
    """Smallest number of GPUs of ``gpu_memory_gb`` that fits; None if none up to 1024 does."""
    split: str
    """How the model is split over ``devices`` (single GPU, FSDP/ZeRO-3 shards, device_map layers)."""
    fits_one_gpu: bool
    memory_gb_one_device: float
    """Peak on one device, unsplit."""
    components_gb: dict[str, float]
    """One-device components; the peak combines them as ``formula`` says."""
    formula: str
    tokens: int | None = None
    flops: float | None = None
    seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    """What every strategy needs for one model and one set of :class:`PlanSettings`."""

    model: str
    parameters: int
    architecture: dict[str, Any]
    parameter_breakdown: dict[str, int]
    settings: dict[str, Any]
    strategies: dict[str, StrategyPlan]
    assumptions: list[str]

    def to_dict(self) -> dict[str, Any]:
        """``{"model", "parameters", "strategies": {name: {"memory_gb", "devices", ...}}, ...}``."""
        return {
            "model": self.model,
            "parameters": self.parameters,
            "strategies": {name: s.to_dict() for name, s in self.strategies.items()},
            "architecture": self.architecture,
            "parameter_breakdown": self.parameter_breakdown,
            "settings": self.settings,
            "assumptions": self.assumptions,
        }


# ---------------------------------------------------------------------------------------------------
# Devices and time


def _gb(value: float) -> float:
    return round(value / GIB, 3)


def _with_overhead(peak: float, s: PlanSettings) -> float:
    return peak * (1 + s.overhead_fraction) + s.overhead_gb * GIB


def smallest_split(per_device, capacity: float) -> tuple[int | None, float]:
    """Smallest N ≤ 1024 with ``per_device(N) ≤ capacity`` (bytes), and that per-device figure."""
    for n in range(1, MAX_DEVICES + 1):
        need = per_device(n)
        if need <= capacity:
            return n, need
    return None, per_device(1)


def _time(flops_per_token: float, tokens_per_device_step: int, s: PlanSettings, devices: int):
    """Tokens, FLOPs and seconds: ``FLOPs / (devices · gpu_tflops · 10¹² · mfu)``; with ``--steps`` every
    device processes its own micro-batch each step (data parallel)."""
    if s.tokens is not None:
        tokens = s.tokens
    elif s.steps is not None:
        tokens = s.steps * tokens_per_device_step * devices
    else:
        return None, None, None
    flops = flops_per_token * tokens
    return tokens, flops, flops / (devices * s.gpu_tflops * 1e12 * s.mfu)


def _strategy(
    components: dict[str, float],
    formula: str,
    peak_for: Any,
    split_name: str,
    s: PlanSettings,
    flops_per_token: float,
    tokens_per_step: int,
    notes: list[str],
    data_parallel: bool = True,
) -> StrategyPlan:
    capacity = s.gpu_memory_gb * GIB
    one = _with_overhead(peak_for(1), s)
    devices, need = smallest_split(lambda n: _with_overhead(peak_for(n), s), capacity)
    split = "single GPU" if devices == 1 else (f"{split_name} over {devices}" if devices else "does not fit")
    tokens, flops, seconds = _time(
        flops_per_token, tokens_per_step, s, (devices or 1) if data_parallel else 1
    )
    return StrategyPlan(
        memory_gb=_gb(need if devices else one),
        devices=devices,
        split=split,
        fits_one_gpu=one <= capacity,
        memory_gb_one_device=_gb(one),
        components_gb={k: _gb(v) for k, v in components.items()} | {"overhead": _gb(one - peak_for(1))},
        formula=formula,
        tokens=tokens,
        flops=flops,
        seconds=seconds,
        notes=notes,
    )


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


# ---------------------------------------------------------------------------------------------------
# Strategies


def plan_full(arch: Architecture, s: PlanSettings) -> StrategyPlan:
    """Full fine-tuning with AdamW.

    Bytes per parameter: weights b + gradients b + AdamW m, v (fp32, 8) + an fp32 master copy when the
    weights are half precision (4) → 16 B/param in bf16 mixed precision and in fp32.
    Peak = W + O + max(A + loss transient + G_lm_head, G + step temporaries): at the end of forward all
    activations are alive and the previous gradients freed; during the optimiser step all gradients are.
    FSDP/ZeRO-3 over N shards W, G, O and the temporaries; each device keeps its activations and
    gathers two units (block or embedding) of weights plus one of gradients at a time.
    FLOPs ≈ 6·N_c per token (+2·N_c with checkpointing), ``N_c = blocks + lm_head projection``.
    """
    b = s.bytes_per_element
    p = arch.parameters()
    w, g = p * b, p * b
    opt = p * (8 + (4 if b < 4 else 0))
    act = _activations(arch, s, b, trainable=True, lora=False)
    with_ckpt, without_ckpt = (
        _activations(arch, replace(s, gradient_checkpointing=flag), b, trainable=True, lora=False)
        for flag in (True, False)
    )
    loss = loss_transient_bytes(arch, s.batch_size * s.seq_len)
    g_head = (arch.lm_head_parameters() or arch.embedding_parameters()) * b
    temp = _optimizer_temporaries(p, arch.embedding_parameters(), s)
    unit = max(arch.block_parameters(), arch.embedding_parameters()) * b

    def peak(n: int) -> float:
        gathered = 3 * unit if n > 1 else 0
        return (w + opt) / n + max(act + loss + g_head / n, (g + temp) / n) + gathered

    n_c = arch.num_layers * arch.block_parameters() + arch.embedding_parameters()
    return _strategy(
        {
            "weights": w,
            "gradients": g,
            "optimizer": opt,
            "activations": act,
            "loss_transient": loss,
            "step_temporaries": temp,
        },
        "weights + optimizer + max(activations + loss_transient + lm_head grads, gradients + "
        "step_temporaries) + overhead; FSDP divides weights, gradients, optimizer, temporaries by N",
        peak,
        "FSDP (ZeRO-3)",
        s,
        (8 if s.gradient_checkpointing else 6) * n_c,
        s.batch_size * s.seq_len,
        [
            "16 bytes/param for weights + gradients + AdamW state (+ fp32 master copy in half precision)",
            f"activations {_gb(with_ckpt):.2f} GiB with gradient checkpointing, "
            f"{_gb(without_ckpt):.2f} GiB without",
        ],
    )


def _lora_like(arch: Architecture, s: PlanSettings, base: float, e: int, notes: list[str]) -> StrategyPlan:
    p_lora = lora_parameters(arch, s.lora_targets, s.lora_r, arch.num_layers)
    state = 16 * p_lora  # fp32 adapter (PEFT upcasts), fp32 gradient, AdamW m and v
    act = _activations(arch, s, e, trainable=False, lora=True)
    loss = loss_transient_bytes(arch, s.batch_size * s.seq_len)
    unit = max(arch.block_parameters(), arch.embedding_parameters()) * s.bytes_per_element

    def peak(n: int) -> float:
        return (base + state) / n + act + loss + (3 * unit if n > 1 else 0)

    n_c = arch.num_layers * arch.block_parameters() + arch.embedding_parameters()
    return _strategy(
        {"weights": base, "lora_state": state, "activations": act, "loss_transient": loss},
        "weights + lora_state + activations + loss_transient + overhead; FSDP shards weights and "
        "LoRA state over N",
        peak,
        "FSDP",
        s,
        (6 if s.gradient_checkpointing else 4) * n_c,
        s.batch_size * s.seq_len,
        [
            f"LoRA r={s.lora_r} on {','.join(s.lora_targets)} of all {arch.num_layers} blocks: "
            f"{p_lora / 1e6:.1f} M trainable parameters",
            *notes,
        ],
    )


def plan_lora(arch: Architecture, s: PlanSettings) -> StrategyPlan:
    """LoRA on every block over a frozen base in ``dtype``.

    Memory = P·b (frozen base) + 16·P_LoRA (fp32 adapter, gradient, AdamW m, v) + activations (frozen
    linears keep no inputs; each adapted module keeps 8·in + 4·r B/token) + loss transient + overhead.
    FLOPs ≈ 4·N_c per token (forward + activation gradients; no weight gradients), +2·N_c with
    checkpointing.
    """
    return _lora_like(arch, s, arch.parameters() * s.bytes_per_element, s.bytes_per_element, [])


def plan_qlora(arch: Architecture, s: PlanSettings) -> StrategyPlan:
    """QLoRA: NF4 base (see :func:`nf4_tensor_bytes`) + LoRA on every block.

    Memory = NF4 block linears + non-quantised parts (embeddings, lm_head, norms, biases) at 4 B/param
    when ``kbit_upcast`` (PEFT's ``prepare_model_for_kbit_training``, as tli does) else 2 + 16·P_LoRA +
    activations (fp32 when upcast) + loss transient + overhead. FLOPs as LoRA (dequantisation not counted).
    """
    other = 4 if s.kbit_upcast else 2
    base = nf4_weight_bytes(arch, arch.num_layers, s.double_quant, other)
    e = 4 if s.kbit_upcast else 2
    note = "NF4 dequantisation makes steps slower than the FLOP count says"
    return _lora_like(arch, s, base, e, [note])


def tli_blocks(arch: Architecture, target_layer: int) -> tuple[int, int]:
    """(blocks that run and get LoRA, blocks tli loads): both L — ``load_model(up_to_layer=L)`` reads the
    embeddings and blocks ``0..L-1`` only (the truncated backbone ends after block L-1; no lm_head)."""
    return target_layer, min(target_layer, arch.num_layers)


def plan_tli(arch: Architecture, s: PlanSettings) -> StrategyPlan:
    """Targeted Lexical Injection: truncated loading, LoRA on blocks 0..L-1, forward stops after block L-1.

    Memory = embeddings + min(L, N) blocks (no final norm, no lm_head: never loaded) in NF4 (+fp32
    non-quantised parts when ``kbit_upcast``) or ``dtype`` + 16·P_LoRA + activations of L LoRA blocks for
    ``2·batch_size`` words of ``word_tokens`` tokens (no loss head: the loss uses pooled vectors) + overhead.
    FLOPs ≈ 4·L·P_block per token.
    """
    run, loaded = tli_blocks(arch, s.target_layer)
    nf4 = s.tli_quantization == "nf4"
    head = arch.lm_head_parameters() + arch.hidden_size  # untied lm_head and the final norm: not loaded
    if nf4:
        other = 4 if s.kbit_upcast else 2
        w = nf4_weight_bytes(arch, loaded, s.double_quant, other) - head * other
        e = other
    else:
        w = weight_bytes(arch, s.bytes_per_element, loaded) - head * s.bytes_per_element
        e = s.bytes_per_element
    p_lora = lora_parameters(arch, s.lora_targets, s.lora_r, run)
    state = 16 * p_lora
    n = 2 * s.batch_size * s.word_tokens
    act = (
        run
        * block_activation_bytes(
            arch,
            n,
            s.word_tokens,
            e,
            trainable=False,
            lora_targets=s.lora_targets,
            lora_r=s.lora_r,
            attention=s.attention,
        )
        + n * 8
    )

    def peak(devices: int) -> float:
        return (w + state) / devices + act

    notes = [
        f"loads {loaded} of {arch.num_layers} blocks ({loaded / arch.num_layers:.1%}); "
        f"LoRA on blocks 0..{run - 1}",
        f"{p_lora / 1e6:.2f} M trainable parameters; {n} tokens per step: steps this small are "
        "latency-bound, expect several times the FLOP time",
    ]
    return _strategy(
        {"weights": w, "lora_state": state, "activations": act},
        "weights (truncated) + lora_state + activations + overhead",
        peak,
        "FSDP",
        s,
        4 * run * arch.block_parameters(),
        n,
        notes,
    )


def plan_scan_stream(arch: Architecture, s: PlanSettings) -> StrategyPlan:
    """Layer-by-layer streaming scan: embeddings + one decoder block in memory at a time.

    Memory = (V·H + P_block + H)·b + block working set (:func:`inference_activation_bytes`) for one chunk
    of ``scan_batch_size × word_tokens`` tokens + pooled vectors (N+1)·words·H·4 + overhead.
    Seconds = max(2·N·P_block·tokens / throughput, checkpoint bytes / disk bandwidth): each pass reads
    the checkpoint once.
    """
    b = s.bytes_per_element
    w = (arch.embedding_parameters() + arch.block_parameters() + arch.hidden_size) * b
    n = s.scan_batch_size * s.word_tokens
    act = (
        inference_activation_bytes(arch, n, b)
        + (arch.num_layers + 1) * s.scan_batch_size * arch.hidden_size * 4
    )
    checkpoint = arch.parameters() * DTYPE_BYTES.get(arch.checkpoint_dtype, 2)
    result = _strategy(
        {"weights": w, "activations": act},
        "embeddings + one block + activations of one chunk + overhead (cannot be split further)",
        lambda devices: w + act if devices == 1 else math.inf,
        "-",
        s,
        2 * arch.num_layers * arch.block_parameters(),
        n,
        [
            f"reads {checkpoint / GIB:.1f} GiB of {arch.checkpoint_dtype} checkpoint per pass "
            f"at {s.disk_gb_per_s} GiB/s"
        ],
    )
    if result.seconds is not None:
        result.seconds = max(result.seconds, checkpoint / GIB / s.disk_gb_per_s)
    return result


def plan_inference(arch: Architecture, s: PlanSettings) -> StrategyPlan:
    """Whole model in ``dtype`` for a KV-free scan forward (no lm_head computed).

    One device: P·b + block working set for ``scan_batch_size × word_tokens`` tokens + overhead.
    ``device_map`` over N: ⌈layers/N⌉ blocks + the larger of embeddings / lm_head + working set.
    FLOPs ≈ 2·N·P_block per token; a device_map pipeline runs one device at a time (no speed-up).
    """
    b = s.bytes_per_element
    w = arch.parameters() * b
    n = s.scan_batch_size * s.word_tokens
    act = inference_activation_bytes(arch, n, b)
    ends = max(arch.embedding_parameters(), arch.lm_head_parameters() + arch.hidden_size)

    def peak(devices: int) -> float:
        if devices == 1:
            return w + act
        return (math.ceil(arch.num_layers / devices) * arch.block_parameters() + ends) * b + act

    result = _strategy(
        {"weights": w, "activations": act},
        "weights + one block's working set + overhead; device_map: per-device layer share",
        peak,
        "device_map",
        s,
        2 * arch.num_layers * arch.block_parameters(),
        n,
        [],
        data_parallel=False,
    )
    if s.device_map_devices is not None:
        per_device = _with_overhead(peak(s.device_map_devices), s)
        result.memory_gb = _gb(per_device)
        result.split = f"device_map over {s.device_map_devices}"
        fits = per_device <= s.gpu_memory_gb * GIB
        result.notes.append(
            f"--device-map-devices {s.device_map_devices}: {'fits' if fits else 'does NOT fit'}"
        )
    return result


PLANNERS = {
    "full": plan_full,
    "lora": plan_lora,
    "qlora": plan_qlora,
    "tli": plan_tli,
    "scan-stream": plan_scan_stream,
    "inference": plan_inference,
}


# ---------------------------------------------------------------------------------------------------
# Entry points


def plan(
    model: str | Path,
    *,
    batch_size: int = 8,
    seq_len: int = 512,
    steps: int | None = None,
    tokens: int | None = None,
    target_layer: int = 2,
    lora_r: int = 16,
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj"),
    gpu_memory_gb: float = 80.0,
    gpu_tflops: float = 989.0,
    device_map_devices: int | None = None,
    **options: Any,
) -> Plan:
    """Estimate memory, GPUs and time of each strategy for ``model`` from its config.json alone.

    Args:
        model: local HF directory, path to a config.json, or a known name (see :data:`KNOWN_MODELS`).
        batch_size, seq_len, steps, tokens, target_layer: see :class:`PlanSettings`.
        lora_r, lora_targets, gpu_memory_gb, gpu_tflops, device_map_devices: see :class:`PlanSettings`.
        **options: any other :class:`PlanSettings` field (``mfu``, ``dtype``, ``gradient_checkpointing``,
            ``attention``, ``word_tokens``, ``scan_batch_size``, ``tli_quantization``, ``double_quant``,
            ``kbit_upcast``, ``device``, ``overhead_gb``, ``overhead_fraction``, ``disk_gb_per_s``).

    Raises:
        ConfigError: unknown name, missing config.json, unsupported family, an option out of range, a
            target layer beyond the model or a LoRA target the model does not have.
    """
    unknown = sorted(set(options) - set(PlanSettings.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"tli plan: unknown option(s) {', '.join(unknown)}")
    settings = PlanSettings(
        batch_size=batch_size,
        seq_len=seq_len,
        steps=steps,
        tokens=tokens,
        target_layer=target_layer,
        lora_r=lora_r,
        lora_targets=tuple(lora_targets),
        gpu_memory_gb=gpu_memory_gb,
        gpu_tflops=gpu_tflops,
        device_map_devices=device_map_devices,
        **options,
    )
    arch = load_architecture(model)
    if settings.target_layer > arch.num_layers:
        raise ConfigError(
            f"--target-layer {settings.target_layer} is beyond the model: hidden-state indices of "
            f"{arch.name} run 0..{arch.num_layers}"
        )
    bad = [t for t in settings.lora_targets if t not in arch.linears()]
    if bad:
        raise ConfigError(
            f"--lora-targets {','.join(bad)}: not a linear layer of {arch.family} "
            f"(choose from {', '.join(arch.linears())})"
        )
    return Plan(
        model=arch.name,
        parameters=arch.parameters(),
        architecture=asdict(arch),
        parameter_breakdown=arch.breakdown(),
        settings=asdict(settings),
        strategies={name: planner(arch, settings) for name, planner in PLANNERS.items()},
        assumptions=assumptions(settings),
    )


def assumptions(s: PlanSettings) -> list[str]:
    """The modelling choices behind every figure, printed with the plan."""
    return [
        f"{s.dtype} weights and activations; AdamW (fp32 m, v; fp32 master weights for half precision)",
        f"activations for {s.batch_size} × {s.seq_len} tokens per device, {s.attention} attention, "
        + ("gradient checkpointing on" if s.gradient_checkpointing else "no gradient checkpointing"),
        f"time = FLOPs / (devices × {s.gpu_tflops:g} TFLOPS × MFU {s.mfu:g}); attention FLOPs not counted",
        f"overhead {s.overhead_gb:g} GiB + {s.overhead_fraction:.0%} of the peak per device",
        "NF4 with double quantisation" if s.double_quant else "NF4 without double quantisation",
    ]


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_plan(result: Plan) -> str:
    """A Markdown table of the plan for the terminal (one row per strategy, then notes and assumptions)."""
    a = result.architecture
    s = result.settings
    lines = [
        f"{result.model}: {a['family']}, {a['num_layers']} blocks, hidden {a['hidden_size']}, "
        f"{result.parameters / 1e9:.2f} B parameters",
        f"GPU: {s['gpu_memory_gb']:g} GiB, {s['gpu_tflops']:g} TFLOPS; target layer {s['target_layer']}; "
        f"LoRA r={s['lora_r']} on {','.join(s['lora_targets'])}",
        "",
        "| strategy | memory/device (GiB) | devices | split | fits 1 GPU | 1-device peak (GiB) | time |",
        "| --- | ---: | ---: | --- | :---: | ---: | ---: |",
    ]
    for name, st in result.strategies.items():
        lines.append(
            f"| {name} | {st.memory_gb:.1f} | {st.devices if st.devices else '-'} | {st.split} | "
            f"{'yes' if st.fits_one_gpu else 'no'} | {st.memory_gb_one_device:.1f} | "
            f"{_fmt_seconds(st.seconds)} |"
        )
    lines.append("")
    for name, st in result.strategies.items():
        parts = ", ".join(f"{k} {v:.2f}" for k, v in st.components_gb.items())
        lines.append(f"- {name}: {parts}" + (f" ({'; '.join(st.notes)})" if st.notes else ""))
    lines += ["", "Assumptions:"] + [f"- {text}" for text in result.assumptions]
    return "\n".join(lines)
