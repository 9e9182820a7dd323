"""Prompt rendering and batched greedy generation shared by text-generating tasks.

Generation is greedy, batched and left padded (so every prompt ends at the same position and the new tokens
line up); prompts are sorted by length before batching, which cuts padding, and answers are returned in the
original order. Under ``tli compare``'s launcher each process generates its share of the prompts
(:func:`tli.distributed.score_in_shares`). Unlike :func:`tli.probe.generate_answers`, which keeps one line,
the full continuation is returned so that each task decides what part of it counts (XL-Sum keeps the first
paragraph).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from tqdm.auto import tqdm

from tli.distributed import evaluation_context, score_in_shares
from tli.errors import ConfigError
from tli.models import ensure_pad_token, input_device
from tli.models.vllm_engine import is_vllm_model

CHAT_TEMPLATE_MODES = ("auto", "yes", "no")


def chat_template_mode(option: str, value: Any) -> str:
    """``auto`` | ``yes`` | ``no`` from a config value; YAML's ``yes``/``no`` arrive as booleans.

    Raises:
        ConfigError: any other value.
    """
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value not in CHAT_TEMPLATE_MODES:
        raise ConfigError(f"{option} {value!r} is not one of {', '.join(CHAT_TEMPLATE_MODES)}")
    return value


def uses_chat_template(tokenizer: Any, mode: str) -> bool:
    """Whether prompts go through the tokenizer's chat template (``auto``: when it has one).

    Raises:
        ConfigError: ``yes`` for a tokenizer without a chat template.
    """
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if mode == "yes" and not has_template:
        raise ConfigError("chat_template yes: this tokenizer has no chat template; use auto or no")
    return has_template and mode != "no"


def render_prompt(tokenizer: Any, text: str, chat: bool) -> str:
    """``text`` as a single user turn with the generation prompt (chat), or unchanged."""
    if not chat:
        return text
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )


def truncate_tokens(tokenizer: Any, text: str, max_tokens: int) -> str:
    """``text`` cut to its first ``max_tokens`` tokens (no special tokens); unchanged when it fits."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return text
    return tokenizer.decode(ids[:max_tokens], skip_special_tokens=True)


def first_paragraph(text: str) -> str:
    """The first non-empty paragraph of ``text`` (paragraphs are separated by blank lines), on one line."""
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        if paragraph.strip():
            return " ".join(paragraph.split())
    return ""


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    add_special_tokens: bool,
    progress: bool | None = None,
    desc: str = "generating",
) -> list[str]:
    """Greedy continuations of ``prompts`` (decoded without special tokens), in the order given.

    Args:
        model: Causal LM or PEFT wrapper, or a :class:`tli.models.vllm_engine.VLLMModel` (``backend: vllm``).
        tokenizer: Its tokenizer; ``padding_side`` is ``left`` during the call, then restored.
        prompts: Rendered prompt texts.
        max_new_tokens: Length limit of each continuation (generation also stops at EOS).
        batch_size: Prompts generated together.
        add_special_tokens: False for chat-rendered prompts, which already hold their special tokens.
        progress: tqdm bar over prompts (None: only on a terminal).
        desc: Label of the bar.
    """
    ensure_pad_token(tokenizer)
    encoded = [tokenizer(p, add_special_tokens=add_special_tokens)["input_ids"] for p in prompts]
    if is_vllm_model(model):  # backend: vllm — the same token ids, greedy, decoded the same way
        new_ids = model.generate_ids(encoded, max_new_tokens)
        return [tokenizer.decode(ids, skip_special_tokens=True) for ids in new_ids]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    context = evaluation_context()  # under tli compare's launcher: each process generates its share
    bar = tqdm(total=len(prompts), desc=desc, unit="ex", disable=None if progress is None else not progress)
    padding_side = tokenizer.padding_side
    try:
        tokenizer.padding_side = "left"
        share = partial(
            _generate_batches,
            model,
            tokenizer,
            encoded,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            synced=context.sharded,
            done=lambda n: bar.update(n * context.world_size),
        )
        outputs = score_in_shares(order, share)
    finally:
        tokenizer.padding_side = padding_side
        bar.close()
    return [outputs[i] for i in range(len(prompts))]


def _generate_batches(
    model: Any,
    tokenizer: Any,
    encoded: list[list[int]],
    indices: list[int],
    *,
    max_new_tokens: int,
    batch_size: int,
    synced: bool,
    done: Callable[[int], Any],
) -> list[str]:
    """Greedy continuations of ``encoded[i]`` for ``i`` in ``indices`` (batched in that order, left padded).

    ``synced``: the model is sharded over processes (FSDP, ZeRO-3), so every process keeps taking forward steps
    until all of them have finished their batch (transformers' ``synced_gpus``).
    """
    device = input_device(model)  # where the embeddings live (a device-mapped model spans several)
    texts: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in chunk]}, return_tensors="pt")
            ids = batch["input_ids"].to(device)  # (batch, prompt_len), left padded
            new = model.generate(
                input_ids=ids,
                attention_mask=batch["attention_mask"].to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
                **({"synced_gpus": True} if synced else {}),
            )[:, ids.shape[1] :]  # (batch, new_len)
            texts.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
            done(len(chunk))
    return texts
