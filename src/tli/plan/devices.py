"""From a strategy's peak memory to devices and time: the overheads, the smallest split that fits one GPU's
memory, and the FLOP-based time estimate (:func:`_strategy` builds the :class:`StrategyPlan`)."""

from __future__ import annotations

from typing import Any

from tli.architecture import GIB
from tli.plan.results import StrategyPlan
from tli.plan.settings import MAX_DEVICES, PlanSettings


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
