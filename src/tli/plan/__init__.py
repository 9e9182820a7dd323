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

The package: :mod:`~tli.plan.api` (:func:`plan`, the entry point), :mod:`~tli.plan.models` (known names and
reading an architecture), :mod:`~tli.plan.settings` (:class:`PlanSettings`), :mod:`~tli.plan.memory` (the
memory formulas), :mod:`~tli.plan.strategies` (one planner per strategy), :mod:`~tli.plan.devices` (devices
and time), :mod:`~tli.plan.results` (:class:`Plan`, :class:`StrategyPlan`) and :mod:`~tli.plan.formatting`
(:func:`format_plan`).
"""

from __future__ import annotations

from tli.plan.api import assumptions, plan
from tli.plan.devices import smallest_split
from tli.plan.formatting import format_plan
from tli.plan.memory import (
    block_activation_bytes,
    head_activation_bytes,
    inference_activation_bytes,
    lora_parameters,
    loss_transient_bytes,
)
from tli.plan.models import ALIASES, KNOWN_MODELS, gguf_config, known_models, load_architecture
from tli.plan.results import Plan, StrategyPlan
from tli.plan.settings import DTYPE_BYTES, MAX_DEVICES, STRATEGIES, PlanSettings
from tli.plan.strategies import (
    PLANNERS,
    plan_full,
    plan_inference,
    plan_lora,
    plan_qlora,
    plan_scan_stream,
    plan_tli,
    tli_blocks,
)

__all__ = [
    "ALIASES",
    "DTYPE_BYTES",
    "KNOWN_MODELS",
    "MAX_DEVICES",
    "PLANNERS",
    "STRATEGIES",
    "Plan",
    "PlanSettings",
    "StrategyPlan",
    "assumptions",
    "block_activation_bytes",
    "format_plan",
    "gguf_config",
    "head_activation_bytes",
    "inference_activation_bytes",
    "known_models",
    "load_architecture",
    "lora_parameters",
    "loss_transient_bytes",
    "plan",
    "plan_full",
    "plan_inference",
    "plan_lora",
    "plan_qlora",
    "plan_scan_stream",
    "plan_tli",
    "smallest_split",
    "tli_blocks",
]
