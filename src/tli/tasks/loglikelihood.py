"""Log-likelihoods of continuations after an empty context, exactly as lm-evaluation-harness's HFLM scores.

lm-eval 0.4.13 (``lm_eval/api/model.py``, ``TemplateLM.loglikelihood``; ``lm_eval/models/huggingface.py``,
``HFLM._loglikelihood_tokens``) handles a request ``("", continuation)`` like this:

1. ``continuation`` is tokenized alone without special tokens: ``c = tok.encode(continuation,
   add_special_tokens=False)``;
2. the context is the single *prefix token* — the tokenizer's BOS id, or its EOS id when it has no BOS
   (``HFLM.prefix_token_id``) — unless ``c`` already starts with that token, in which case ``c[0]`` becomes
   the context and ``c[1:]`` the continuation;
3. ``x = (context + c)[-(max_length + 1):][:-1]`` is fed to the model (left-truncated to ``max_length + 1``
   tokens); ``max_length`` is the first of the config's ``n_positions``, ``max_position_embeddings``,
   ``n_ctx``, then the tokenizer's ``model_max_length``, then 2048;
4. the score is ``Σ_t log softmax(logits)[t, c_t]`` over the last ``len(c)`` positions of ``x``.

Batches are right padded and passed without an attention mask, as lm-eval does: under a causal mask,
padding after a sequence cannot change the logits of its tokens. Log-softmax is taken in float32 (lm-eval
uses the logits' dtype, so bf16 models can differ from it in the last digits). Under ``tli compare``'s launcher
each process scores its share of the continuations (:func:`tli.distributed.score_in_shares`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from tqdm.auto import tqdm

from tli.distributed import evaluation_context, score_in_shares
from tli.errors import ConfigError
from tli.models import base_causal_lm, input_device
from tli.models.vllm_engine import is_vllm_model

TOKENIZER_INFINITY = 1000000000000000019884624838656
"""transformers' ``model_max_length`` for tokenizers that set none (lm-eval ignores it)."""
DEFAULT_MAX_LENGTH = 2048
_SEQLEN_ATTRS = ("n_positions", "max_position_embeddings", "n_ctx")


def prefix_token_id(tokenizer: Any) -> int:
    """The token an empty context is replaced by: BOS, else EOS (lm-eval's ``HFLM.prefix_token_id``).

    Raises:
        ConfigError: the tokenizer has neither.
    """
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    raise ConfigError("this tokenizer has no BOS or EOS token to condition an empty context on")


def resolve_max_length(model: Any, tokenizer: Any) -> int:
    """Longest input in tokens, by lm-eval's rule (``lm_eval.models.utils.resolve_max_length``)."""
    config = model.config if is_vllm_model(model) else base_causal_lm(model).config
    config = getattr(config, "text_config", None) or config
    for attr in _SEQLEN_ATTRS:
        value = getattr(config, attr, None)
        if value is not None:
            return int(value)
    model_max_length = getattr(tokenizer, "model_max_length", None)
    if model_max_length is not None and model_max_length != TOKENIZER_INFINITY:
        return int(model_max_length)
    return DEFAULT_MAX_LENGTH


def encode_empty_context(tokenizer: Any, continuation: str) -> tuple[list[int], list[int]]:
    """``(context ids, continuation ids)`` for an empty context (steps 1-2 of the module docstring).

    Raises:
        ConfigError: the continuation has no tokens.
    """
    tokens = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    if not tokens:
        raise ConfigError(f"continuation {continuation!r} has no tokens")
    prefix = prefix_token_id(tokenizer)
    if tokens[0] != prefix:
        return [prefix], tokens
    return tokens[:1], tokens[1:]


def continuation_logliks(
    model: Any,
    tokenizer: Any,
    continuations: Sequence[str],
    *,
    batch_size: int,
    max_length: int | None = None,
    progress: bool | None = None,
    desc: str = "log-likelihoods",
) -> list[float]:
    """Total log-likelihood of each continuation after an empty context (natural log, summed over tokens).

    Args:
        model: Causal LM or PEFT wrapper (put in eval mode by the caller), or a
            :class:`tli.models.vllm_engine.VLLMModel` (``backend: vllm``).
        tokenizer: Its tokenizer.
        continuations: Texts to score, exactly as lm-eval passes them (with its leading target delimiter).
        batch_size: Sequences per forward pass; memory is about ``batch_size × length × vocab`` logits.
        max_length: Input length limit; None applies lm-eval's rule (:func:`resolve_max_length`).
        progress: tqdm bar (None: only on a terminal).
        desc: Label of the bar.

    Returns:
        One log-likelihood per continuation, in the order given.
    """
    max_length = max_length or resolve_max_length(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else prefix_token_id(tokenizer)
    requests = []  # (input ids, continuation ids)
    for text in continuations:
        context, tokens = encode_empty_context(tokenizer, text)
        if not tokens:
            raise ConfigError(f"continuation {text!r} is only the prefix token: nothing to score")
        if len(tokens) > max_length:
            raise ConfigError(
                f"continuation of {len(tokens)} tokens exceeds the model's {max_length}: {text[:60]!r}"
            )
        requests.append(((context + tokens)[-(max_length + 1) :][:-1], tokens))
    if is_vllm_model(model):  # backend: vllm — the whole sequence's prompt log-probabilities, the same sum
        sequences = [inputs + tokens[-1:] for inputs, tokens in requests]
        return model.continuation_logprobs(sequences, [len(tokens) for _, tokens in requests])
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i][0]))  # longest first, as lm-eval
    context = evaluation_context()  # under tli compare's launcher: each process scores its share
    bar = tqdm(total=len(requests), desc=desc, unit="seq", disable=None if progress is None else not progress)
    try:
        scores = score_in_shares(
            order,
            partial(
                _score_batches,
                model,
                requests,
                pad_id=pad_id,
                batch_size=batch_size,
                done=lambda n: bar.update(n * context.world_size),
            ),
        )
    finally:
        bar.close()
    return [scores[i] for i in range(len(requests))]


def _score_batches(
    model: Any,
    requests: list[tuple[list[int], list[int]]],
    indices: list[int],
    *,
    pad_id: int,
    batch_size: int,
    done: Callable[[int], Any],
) -> list[float]:
    """Summed log-likelihood of each ``requests[i]`` continuation for ``i`` in ``indices`` (batched in that
    order: longest first, right padded, no attention mask)."""
    device = input_device(model)  # where the embeddings live (a device-mapped model spans several)
    scores: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            width = max(len(requests[i][0]) for i in chunk)
            batch = torch.full((len(chunk), width), pad_id, dtype=torch.long)  # (batch, width), right padded
            for row, i in enumerate(chunk):
                inputs = requests[i][0]
                batch[row, : len(inputs)] = torch.tensor(inputs, dtype=torch.long)
            logits = model(input_ids=batch.to(device)).logits  # (batch, width, vocab)
            for row, i in enumerate(chunk):
                inputs, tokens = requests[i]
                # Position p predicts token p + 1: the last len(tokens) positions of the input score them.
                window = logits[row, len(inputs) - len(tokens) : len(inputs)].float()  # (len(tokens), vocab)
                target = torch.tensor(tokens, device=window.device).unsqueeze(1)  # (len(tokens), 1)
                scores.append(float(window.log_softmax(dim=-1).gather(1, target).sum()))
            done(len(chunk))
    return scores
