"""vLLM as the engine of a comparison's generation and log-likelihood cells (``backend: vllm``).

Why in-process (``vllm.LLM``) and not vLLM's OpenAI-compatible server: tli hands the engine token ids it
rendered itself (the same prompts and continuations as the HF backend) and reads token ids and per-token
log-probabilities back, which ``vllm.LLM`` takes and returns directly; the server would need a second
environment, a port and an HTTP client for the same calls. vLLM pins its own torch, so install it into the
environment first and tli beside it (``pip install vllm`` then ``pip install -e .``); the docs say which
versions were checked.

The scoring mirrors the HF backend step for step:

- **generation**: greedy (``temperature=0``), at most ``max_new_tokens`` new tokens, stopping at the
  tokenizer's EOS; the new token ids are decoded by the caller without special tokens, as
  :func:`tli.tasks.generation.generate_texts` decodes HF's;
- **log-likelihood**: the sequence ``context + continuation`` is scored with ``prompt_logprobs=1`` and one
  generated token; position ``p`` of ``prompt_logprobs`` holds ``log p(token_p | tokens_<p)`` (position 0 is
  None), so the continuation's log-likelihood is ``Σ_{p ≥ len(context)} log p(token_p | tokens_<p)`` — what
  :func:`tli.tasks.loglikelihood.continuation_logliks` sums from HF's logits (lm-evaluation-harness reads vLLM the
  same way).

A strategy's adapter is a PEFT LoRA directory served by vLLM's LoRA support (``LoRARequest``); a full fine-tune is
a saved HF directory given to its own engine. Untested on a GPU where tli was developed (no GPU, no vLLM there):
the tests check this module's reading of vLLM's outputs against the HF backend through an engine that answers
in vLLM's output types, not vLLM itself.
"""

from __future__ import annotations

import gc
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tli.errors import ConfigError


def check_vllm_available(cuda_available: bool) -> None:
    """``backend: vllm`` needs a CUDA GPU and the ``vllm`` package.

    Raises:
        ConfigError: what is missing, and how to get it (before any model loads).
    """
    missing = []
    if not cuda_available:
        missing.append("a CUDA GPU (none is visible)")
    if importlib.util.find_spec("vllm") is None:
        missing.append("the vllm package (pip install vllm, then tli beside it: it pins its own torch)")
    if missing:
        raise ConfigError(f"backend vllm needs {' and '.join(missing)}; or use backend: hf")


@dataclass
class VLLMModel:
    """One model state as vLLM serves it: the engine, and the LoRA adapter its requests carry (None: the base)."""

    llm: Any
    """A ``vllm.LLM``."""
    config: Any
    """The model's HF config (for the length rule of :func:`tli.tasks.loglikelihood.resolve_max_length`)."""
    lora_request: Any = None
    """A ``vllm.lora.request.LoRARequest``, or None."""
    eos_token_id: int | None = None
    _progress: bool = field(default=False, repr=False)

    def generate_ids(self, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        """Greedy continuations (token ids, at most ``max_new_tokens``, up to EOS) of token-id prompts."""
        from vllm import SamplingParams, TokensPrompt

        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, detokenize=False)
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=ids) for ids in prompts],
            params,
            lora_request=self.lora_request,
            use_tqdm=self._progress,
        )
        return [list(out.outputs[0].token_ids) for out in outputs]

    def continuation_logprobs(
        self, sequences: list[list[int]], continuation_lengths: list[int]
    ) -> list[float]:
        """``Σ log p(token_p | tokens_<p)`` over the last ``n`` tokens of each sequence (``n`` from
        ``continuation_lengths``; each sequence holds at least one token before them)."""
        from vllm import SamplingParams, TokensPrompt

        params = SamplingParams(temperature=0.0, prompt_logprobs=1, max_tokens=1, detokenize=False)
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=ids) for ids in sequences],
            params,
            lora_request=self.lora_request,
            use_tqdm=self._progress,
        )
        return [
            summed_prompt_logprobs(ids, out.prompt_logprobs, n)
            for ids, out, n in zip(sequences, outputs, continuation_lengths, strict=True)
        ]


def summed_prompt_logprobs(tokens: list[int], prompt_logprobs: list[dict | None], n: int) -> float:
    """The log-likelihood of the last ``n`` of ``tokens`` from vLLM's ``prompt_logprobs`` (one mapping token →
    log-probability per position, a ``Logprob`` object or a float; None at position 0)."""
    total = 0.0
    for position in range(len(tokens) - n, len(tokens)):
        entry = prompt_logprobs[position][tokens[position]]
        total += float(getattr(entry, "logprob", entry))
    return total


def is_vllm_model(model: Any) -> bool:
    return isinstance(model, VLLMModel)


class VLLMEngines:
    """The engines of one run, opened when first needed and closed to free the GPU for the next model.

    One engine per base model serves the base and every LoRA-family adapter of it (``enable_lora``); a full
    fine-tune gets an engine of its own, closed after its cells.
    """

    def __init__(self, *, dtype: str, tensor_parallel_size: int, max_lora_rank: int, progress: bool = False):
        self.dtype, self.tensor_parallel_size, self.max_lora_rank = dtype, tensor_parallel_size, max_lora_rank
        self.progress = progress
        self._open: tuple[str, Any, Any] | None = None
        self._lora_ids: dict[str, int] = {}

    def model(self, path: str, *, adapter: Path | None = None, tokenizer: Any = None) -> VLLMModel:
        """The state ``path`` (+ ``adapter``) as a :class:`VLLMModel`, opening ``path``'s engine if needed."""
        from vllm.lora.request import LoRARequest

        llm, config = self._engine(path)
        request = None
        if adapter is not None:
            key = str(Path(adapter).resolve())
            self._lora_ids.setdefault(key, len(self._lora_ids) + 1)
            request = LoRARequest(f"tli-{self._lora_ids[key]}", self._lora_ids[key], key)
        eos = getattr(tokenizer, "eos_token_id", None)
        return VLLMModel(llm, config, request, eos, self.progress)

    def _engine(self, path: str) -> tuple[Any, Any]:
        """The engine serving ``path`` and its HF config (opened once, kept until another path is asked for)."""
        if self._open is not None and self._open[0] == path:
            return self._open[1], self._open[2]
        self.close()
        from transformers import AutoConfig
        from vllm import LLM

        llm = LLM(
            model=path,
            dtype=self.dtype if self.dtype != "auto" else "bfloat16",
            tensor_parallel_size=self.tensor_parallel_size,
            enable_lora=True,
            max_lora_rank=self.max_lora_rank,
            skip_tokenizer_init=True,  # tli sends token ids and decodes with the HF tokenizer itself
            seed=0,
        )
        self._open = (path, llm, AutoConfig.from_pretrained(path))
        return llm, self._open[2]

    def close(self) -> None:
        """Free the open engine's GPU memory (vLLM keeps it until the engine is deleted)."""
        if self._open is None:
            return
        self._open = None
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def tensor_parallel_size(gpus: int | None, attention_heads: int | None) -> int:
    """The smallest tensor-parallel size of at least ``gpus`` (the plan's inference GPUs) that divides the
    model's attention heads, as vLLM requires."""
    need = max(1, gpus or 1)
    if not attention_heads:
        return need
    return next((d for d in range(need, attention_heads + 1) if attention_heads % d == 0), need)


__all__ = [
    "VLLMEngines",
    "VLLMModel",
    "check_vllm_available",
    "is_vllm_model",
    "summed_prompt_logprobs",
    "tensor_parallel_size",
]
