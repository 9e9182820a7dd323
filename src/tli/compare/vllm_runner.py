"""``backend: vllm``: the generation and log-likelihood cells of a comparison, scored by vLLM after training.

Every unit trains (and scores its other cells) with Hugging Face models as usual and saves what training changed;
the cells vLLM can serve are set aside (:class:`PendingCell`) and scored once every unit has run, when no HF model
holds the GPU any more: one engine per base model serves the zero-shot base and every LoRA adapter of it
(``none``, ``lora``, ``lora-early``, ``lora-late``, ``tli``), and each full fine-tune is served from its saved
directory (which is why ``backend: vllm`` with ``full`` needs ``save_full_weights: true``). QLoRA (an NF4 base
vLLM would not reproduce) and ``tli+lora`` (a LoRA over a base with the TLI adapter merged in) stay on the HF
backend, as do retrieval and lm-evaluation-harness cells. The engine itself: :mod:`tli.models.vllm_engine`.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tli.models.vllm_engine import VLLMEngines, tensor_parallel_size

VLLM_TASKS = ("xlsum", "xnli")
"""Tasks whose cells vLLM scores: greedy generation (XL-Sum) and continuation log-likelihoods (XNLI)."""
VLLM_STRATEGIES = ("none", "lora", "lora-early", "lora-late", "tli", "full")
"""Strategies whose model state vLLM serves: the base, a LoRA adapter on it, or a saved full fine-tune."""
LORA_RANKS = (8, 16, 32, 64, 128, 256)
"""The ``max_lora_rank`` values vLLM accepts."""


def served_by_vllm(backend: str, strategy: str, task: str) -> bool:
    return backend == "vllm" and task in VLLM_TASKS and strategy in VLLM_STRATEGIES


@dataclass
class PendingCell:
    """A cell set aside for the vLLM phase, with what scoring it needs once the HF model is gone."""

    model: str
    strategy: str
    seed: int
    task: str
    language: str
    cost: dict[str, Any]
    unit: Path
    base_path: str
    """The base model's HF directory (the GGUF cache for a GGUF file) or hub id."""
    tokenizer: Any

    def engine_path(self) -> str:
        """What the engine loads: the saved full fine-tune, else the base."""
        return str(self.unit / "adapter") if self.strategy == "full" else self.base_path

    def adapter(self) -> Path | None:
        """The LoRA adapter the requests carry (None: the base or a full fine-tune)."""
        return None if self.strategy in ("none", "full") else self.unit / "adapter"


def max_lora_rank(ranks: list[int]) -> int:
    """The smallest rank vLLM accepts that holds every adapter's rank."""
    need = max(ranks or [16])
    return next((r for r in LORA_RANKS if r >= need), LORA_RANKS[-1])


def score_pending(runner: Any, pending: list[PendingCell], *, gpus: dict[str, int | None]) -> list[Any]:
    """Score the set-aside cells with vLLM, base models first then each full fine-tune, one engine open at a time.

    ``runner``: the :class:`tli.compare.runner.Runner` (its ``score`` and ``failed``); ``gpus``: base path → the
    plan's inference GPUs (the tensor-parallel size).
    """
    if not pending:
        return []
    gc.collect()  # the HF models of the units are gone; let their memory go before vLLM reserves the GPU
    sizes = {
        path: tensor_parallel_size(gpus.get(path), _attention_heads(path))
        for path in {p.base_path for p in pending}
    }
    ranks = [
        int(spec.options.lora_r) for spec in runner.experiment.strategies if spec.name in VLLM_STRATEGIES
    ]
    engines, cells = None, []
    for item in sorted(pending, key=lambda p: (p.strategy == "full", p.engine_path())):
        if engines is None or engines.tensor_parallel_size != sizes[item.base_path]:
            if engines is not None:
                engines.close()
            engines = VLLMEngines(
                dtype=runner.experiment.dtype,
                tensor_parallel_size=sizes[item.base_path],
                max_lora_rank=max_lora_rank(ranks),
                progress=bool(runner.progress),
            )
        try:
            served = engines.model(item.engine_path(), adapter=item.adapter(), tokenizer=item.tokenizer)
        except (RuntimeError, ValueError, OSError, ImportError) as exc:
            cells.append(runner.failed(item.model, item.strategy, item.seed, item.task, item.language, exc))
            continue
        cost = {**item.cost, "evaluate_backend": "vllm"}
        key = (item.model, item.strategy, item.seed, item.task, item.language)
        cells.append(runner.score(item.tokenizer, served, *key, cost, item.unit))
    engines.close()
    return cells


def _attention_heads(path: str) -> int | None:
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(path), "num_attention_heads", None)
