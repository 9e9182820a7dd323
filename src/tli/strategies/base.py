"""What a fine-tuning strategy is: how a loaded model is made trainable, saved and loaded back.

A strategy is a small object with PEFT-style methods:

- ``prepare(loaded) -> model``: the model to fine-tune (frozen base + adapter, or every weight trainable);
- ``trainable_parameters(model) -> int``;
- ``save(model, directory)`` / ``load(loaded, directory) -> model``.

Every strategy is fine-tuned by the same loop (:func:`tli.strategies.finetune.finetune`) on the same task
data, steps, seed, batch and learning-rate schedule, so differences between strategies are differences of
the strategy alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tli.distributed import current_context
from tli.errors import ConfigError


@dataclass(kw_only=True)
class StrategyOptions:
    """Options shared by the LoRA-family strategies (published TLI values as defaults)."""

    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scale numerator (scale = alpha / r)."""
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    """Linear layers that get LoRA."""
    layers: int | None = None
    """``lora-early``: adapt blocks ``0..k-1`` (default: the TLI target layer); ``lora-late``: the last k
    blocks (default: as many as ``lora-early``)."""
    target_layer: int = 2
    """TLI target layer (``tli``, ``tli+lora``; and ``lora-early``'s default k)."""
    tli_epochs: int = 5
    """Epochs of TLI lexicon training (``tli``, ``tli+lora``)."""
    tli_adapter: str | None = None
    """Use this existing ``tli train`` adapter instead of training one (``tli``, ``tli+lora``)."""
    lexicon: str | None = None
    """Lexicon for TLI training (default: the shipped one)."""

    def __post_init__(self) -> None:
        problems = []
        if self.lora_r < 1:
            problems.append(f"lora_r must be >= 1, got {self.lora_r}")
        if not 0 <= self.lora_dropout < 1:
            problems.append(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.layers is not None and self.layers < 1:
            problems.append(f"layers must be >= 1, got {self.layers}")
        if self.target_layer < 1:
            problems.append(f"target_layer must be >= 1, got {self.target_layer}")
        if isinstance(self.target_modules, str):
            self.target_modules = [m.strip() for m in self.target_modules.split(",") if m.strip()]
        if problems:
            raise ConfigError("; ".join(problems))


class Strategy:
    """A way to fine-tune a model. Subclasses set ``name`` and override ``prepare``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    trains_on_task: ClassVar[bool] = True
    """False for strategies evaluated as they are (``none``, ``tli``)."""
    quantization: ClassVar[str] = "none"
    """How the base model must be loaded (``qlora``: ``nf4``)."""

    def __init__(self, options: StrategyOptions | None = None) -> None:
        self.options = options or StrategyOptions()
        self.notes: dict[str, Any] = {}
        """What preparing did (e.g. the TLI adapter trained), recorded in the cell's results."""

    def prepare(self, loaded, *, seed: int, workdir: Path, progress: bool | None = None) -> Any:
        """Return the model to fine-tune (``loaded.model`` changed in place where PEFT does so)."""
        raise NotImplementedError(f"strategy {self.name} must define prepare()")

    @staticmethod
    def trainable_parameters(model: Any) -> int:
        """Number of parameters the task fine-tuning updates."""
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def trained_parameters(self, model: Any) -> int:
        """Every parameter the strategy trained, before the task fine-tuning included (TLI's lexicon LoRA)."""
        return self.trainable_parameters(model) + int(self.notes.get("tli_trainable_parameters", 0))

    def extra_tokens(self) -> int:
        """Tokens the strategy trained on before the task fine-tuning (TLI's lexicon training)."""
        return int(self.notes.get("tli_tokens_seen", 0))

    def save(self, model: Any, directory: Path) -> None:
        """Save what the fine-tuning changed (an adapter, or every weight for ``full``).

        After sharded training (FSDP, ZeRO-3) every process must call this: the shards are gathered into one
        state dict and the main process writes it.
        """
        context = current_context()
        state = context.full_state_dict(model)
        if state is None:
            model.save_pretrained(directory, is_main_process=context.is_main)
        else:
            context.unwrap(model).save_pretrained(
                directory, state_dict=state, is_main_process=context.is_main
            )

    def load(self, loaded, directory: Path) -> Any:
        """The fine-tuned model from ``directory`` on top of a freshly loaded base."""
        from peft import PeftModel

        return PeftModel.from_pretrained(loaded.model, str(directory))
