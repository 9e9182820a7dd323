"""The entry point of ``tli plan`` (:func:`plan`): settings checked, architecture read, every strategy planned,
and the assumptions behind the figures."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from tli.errors import ConfigError
from tli.plan.models import load_architecture
from tli.plan.results import Plan
from tli.plan.settings import PlanSettings
from tli.plan.strategies import PLANNERS


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
