"""What ``tli plan`` returns: one :class:`StrategyPlan` per strategy inside a :class:`Plan`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
