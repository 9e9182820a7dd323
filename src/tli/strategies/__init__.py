"""Fine-tuning strategies, one module each, behind one registry.

``none`` (zero-shot), ``full`` (every weight), ``lora`` (every block), ``lora-early`` (blocks ``< k``),
``lora-late`` (the last k blocks), ``tli`` (a TLI adapter used as is), ``tli+lora`` (TLI merged, then task
LoRA), ``qlora`` (NF4 base + LoRA). See :mod:`tli.strategies.base` for the interface.
"""

from __future__ import annotations

from tli.errors import ConfigError
from tli.strategies.base import Strategy, StrategyOptions
from tli.strategies.full import FullFineTuning
from tli.strategies.lora import Lora
from tli.strategies.lora_early import LoraEarly
from tli.strategies.lora_late import LoraLate
from tli.strategies.none import NoStrategy
from tli.strategies.qlora import QLora
from tli.strategies.tli import TLI, TLIPlusLora

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (NoStrategy, FullFineTuning, Lora, LoraEarly, LoraLate, TLI, TLIPlusLora, QLora)
}


def get_strategy(name: str, options: StrategyOptions | None = None) -> Strategy:
    """The strategy called ``name``; an unknown name is a ConfigError listing the valid ones."""
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}: choose from {', '.join(STRATEGIES)}")
    return STRATEGIES[name](options)


__all__ = ["STRATEGIES", "Strategy", "StrategyOptions", "get_strategy"]
