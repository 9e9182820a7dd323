"""The options of ``tli plan`` (:class:`PlanSettings`) and the constants they are checked against."""

from __future__ import annotations

from dataclasses import dataclass

from tli.errors import ConfigError

STRATEGIES = ("full", "lora", "qlora", "tli", "scan-stream", "inference")
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
MAX_DEVICES = 1024


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
