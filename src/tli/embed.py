"""Pooled word embeddings at every layer from one batched forward pass.

For a list of strings, :func:`embed_all_layers` returns a ``(layers, words, hidden)`` float32 tensor:
index 0 is the input embeddings, index i the output of block i, and index N the last block's output *after
the final norm*, exactly as ``hidden_states`` of a Hugging Face decoder. Every layer comes from the same
forward pass; the vocabulary projection (``lm_head``) is never computed, because only the decoder stack is
called.

Pooling recipes (``pooling=``):

- ``mean``: mean over all attention-masked tokens, first/special tokens included — the published pilot
  scan's statistic. In decoders the first token is an attention sink with massive activations, so this pools in
  a vector shared by every word; cosines come out near 1 for *any* pair at most layers.
- ``mean-no-special`` (the default of every command, :data:`tli.pooling.DEFAULT_POOLING`): mean over tokens
  that are neither special (BOS, EOS, …) nor at position 0 — the published evaluation's recipe.
- ``last``: the hidden state of the last token (natural with a prompt template that ends right before the
  model would produce the answer).

``add_bos`` controls whether a sequence-start token precedes each word: ``auto`` prepends the *document
separator* when the tokenizer itself adds no special token at the start (SmolLM2, Qwen2, GPT-2 style
tokenizers), so every word is embedded as the start of a new document, as models see it in pre-training; a
tokenizer that adds its own BOS (Llama-3, Gemma, Mistral) is left alone. The document separator is
``<|endoftext|>`` when the vocabulary has it, else the tokenizer's BOS token, else its EOS token:
SmolLM2-Instruct's
``bos_token`` is the chat-role token ``<|im_start|>``, not the separator ``<|endoftext|>``, and the scan is
very sensitive to the difference. ``bos_token`` names another token explicitly. The token used is recorded in
every result file (:func:`bos_record`).

Sequences are batched after sorting by length and padded on the right, so real tokens keep positions
``0..len-1`` and never attend to padding: a batched embedding equals the unpadded one-word forward.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tli.errors import ConfigError, DataError
from tli.metrics import PairIndex, centre
from tli.models import backbone, input_device
from tli.pooling import PoolingRecipe
from tli.progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedConfig(PoolingRecipe):
    """A :class:`~tli.pooling.PoolingRecipe` and how many words go through one forward pass."""

    batch_size: int = 32
    """Words per forward pass."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            problems.append(f"--batch-size must be >= 1, got {self.batch_size}")
        if problems:
            raise ConfigError("; ".join(problems))

    @classmethod
    def from_recipe(cls, recipe: PoolingRecipe, batch_size: int = 32) -> EmbedConfig:
        """The recipe of a command's options (:meth:`tli.config.EmbedOptions.recipe`) at ``batch_size``."""
        return cls(**dataclasses.asdict(recipe.recipe()), batch_size=batch_size)


@dataclass
class Encoded:
    """One tokenized string: token ids and the positions its pooling averages over."""

    input_ids: list[int]
    pool_positions: list[int]


DOCUMENT_SEPARATOR = "<|endoftext|>"
"""The document separator of GPT-2, Qwen2 and SmolLM2/StarCoder-style vocabularies."""


def _tokenizer_adds_start_token(tokenizer: Any) -> bool:
    probe = tokenizer("a", add_special_tokens=True, return_special_tokens_mask=True)
    return bool(probe["special_tokens_mask"][0]) if probe["input_ids"] else False


def document_separator(tokenizer: Any) -> int | None:
    """Id of the token that starts a document: ``<|endoftext|>`` if in the vocabulary, else BOS, else EOS."""
    vocab = tokenizer.get_vocab()
    if DOCUMENT_SEPARATOR in vocab:
        return int(vocab[DOCUMENT_SEPARATOR])
    for candidate in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return None


def _bos_to_prepend(tokenizer: Any, config: EmbedConfig) -> int | None:
    """The id to put in front of each sequence, or None (the tokenizer adds its own / ``never`` / none)."""
    if config.add_bos == "never":
        return None
    if config.bos_token is not None:
        token_id = tokenizer.get_vocab().get(config.bos_token)
        if token_id is None:
            raise ConfigError(f"--bos-token {config.bos_token!r} is not in this tokenizer's vocabulary")
        return int(token_id)
    if _tokenizer_adds_start_token(tokenizer):
        return None
    bos = document_separator(tokenizer)
    if bos is None and config.add_bos == "always":
        raise ConfigError(
            "--add-bos always: this tokenizer has no BOS, EOS or <|endoftext|> token; use never"
        )
    return bos


def bos_record(tokenizer: Any, config: EmbedConfig) -> dict[str, Any]:
    """Which start token precedes each word, and who put it there (for ``results.json``)."""
    prepended = _bos_to_prepend(tokenizer, config)
    if prepended is not None:
        return {
            "bos_token": tokenizer.convert_ids_to_tokens(prepended),
            "bos_token_id": prepended,
            "bos_by": "tli",
        }
    if config.add_bos != "never" and _tokenizer_adds_start_token(tokenizer):
        first = tokenizer("a", add_special_tokens=True)["input_ids"][0]
        return {
            "bos_token": tokenizer.convert_ids_to_tokens(first),
            "bos_token_id": int(first),
            "bos_by": "tokenizer",
        }
    return {"bos_token": None, "bos_token_id": None, "bos_by": "none"}


class UnembeddableWord(DataError):
    """A word that tokenizes to nothing, or leaves no token for the pooling recipe to pool."""


def encode_words(words: Sequence[str], tokenizer: Any, config: EmbedConfig) -> list[Encoded]:
    """Tokenize each string (optionally inside ``config.template``) and choose its pooled positions.

    Raises:
        UnembeddableWord: a string that tokenizes to nothing, or leaves no token to pool (see
            :func:`drop_unembeddable_pairs` to skip such pairs instead).
    """
    encoded = []
    for word, item in zip(words, _encode_or_explain(words, tokenizer, config), strict=True):
        if isinstance(item, str):
            raise UnembeddableWord(f"{word!r} {item}")
        encoded.append(item)
    return encoded


def _encode_or_explain(words: Sequence[str], tokenizer: Any, config: EmbedConfig) -> list[Encoded | str]:
    """Per word, its :class:`Encoded` or why it cannot be embedded with this recipe."""
    bos = _bos_to_prepend(tokenizer, config)
    texts = [config.template.format(word=w) if config.template else w for w in words]
    batch = tokenizer(texts, add_special_tokens=True, return_special_tokens_mask=True)
    out: list[Encoded | str] = []
    for ids, special in zip(batch["input_ids"], batch["special_tokens_mask"], strict=True):
        ids, special = list(ids), list(special)
        if not any(not s for s in special):
            out.append("tokenizes to no token: remove it from the lexicon")
            continue
        if bos is not None:
            ids, special = [bos, *ids], [1, *special]
        if config.pooling == "mean":
            positions = list(range(len(ids)))
        elif config.pooling == "mean-no-special":
            positions = [i for i, s in enumerate(special) if not s and i > 0]
        else:  # last: the last non-special token (a trailing EOS would carry nothing of the word)
            positions = [max(i for i, s in enumerate(special) if not s)]
        if not positions:
            out.append(
                "has no token left after excluding special and first tokens: use --add-bos auto/always, or "
                "--pooling mean / last"
            )
            continue
        out.append(Encoded(input_ids=ids, pool_positions=positions))
    return out


def drop_unembeddable_pairs(lexicon, tokenizer: Any, config: EmbedConfig) -> tuple[Any, list[dict[str, str]]]:
    """The lexicon without the pairs whose source or target cannot be embedded, and those pairs with why.

    A word that tokenizes to nothing (or leaves no token to pool) is reported, skipped and counted in the
    results instead of stopping a run over hundreds of good pairs.
    """
    words = sorted({w for pair in lexicon for w in (pair.source, pair.target)})
    reasons = {
        w: item
        for w, item in zip(words, _encode_or_explain(words, tokenizer, config), strict=True)
        if isinstance(item, str)
    }
    if not reasons:
        return lexicon, []
    kept = [p for p in lexicon if p.source not in reasons and p.target not in reasons]
    skipped = [
        {
            "source": p.source,
            "target": p.target,
            "reason": f"{w!r} {reasons[w]}",
        }
        for p in lexicon
        for w in [p.source if p.source in reasons else p.target]
        if w in reasons
    ]
    for row in skipped:
        log.warning("warning: skipped the pair %s – %s: %s", row["source"], row["target"], row["reason"])
    return dataclasses.replace(lexicon, pairs=kept), skipped


def _length_sorted_batches(encoded: Sequence[Encoded], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, so little compute is spent on padding."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_batch(items: Sequence[Encoded], pad_id: int, device: torch.device):
    """Right-padded ``input_ids``, ``attention_mask`` and the pooling weights, each ``(B, T)``.

    Right padding keeps every real token at positions ``0..len-1`` (default position ids) and, with a
    causal mask, no real token attends to padding.
    """
    width = max(len(e.input_ids) for e in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(items), width), dtype=torch.long)
    weights = torch.zeros((len(items), width), dtype=torch.float32)
    for row, item in enumerate(items):
        ids[row, : len(item.input_ids)] = torch.tensor(item.input_ids)
        attention[row, : len(item.input_ids)] = 1
        weights[row, item.pool_positions] = 1.0 / len(item.pool_positions)
    return ids.to(device), attention.to(device), weights.to(device)


def pool_tokens(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted sum over tokens: ``pooled[b] = sum_t weights[b, t] * hidden[b, t]``.

    Args:
        hidden: ``(B, T, H)`` hidden states of one layer.
        weights: ``(B, T)`` pooling weights; each row sums to 1 over its pooled positions.

    Returns:
        ``(B, H)`` float32.
    """
    return torch.einsum("bth,bt->bh", hidden.float(), weights)


def hidden_state_modules(model: Any) -> list[torch.nn.Module]:
    """The module whose output is ``hidden_states[i]`` for each index i = 0..N.

    Index 0 is the embedding layer, ``1..N-1`` the blocks' outputs, and N the final norm (Hugging Face
    replaces the last block's output by its normalised version in ``hidden_states``).
    """
    stack = backbone(model)
    layers = list(stack.layers[: stack.config.num_hidden_layers])
    return [stack.embed_tokens, *layers[:-1], stack.norm]


def forward_pooled(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Pooled hidden states of every layer from one forward of the decoder stack (no ``lm_head``).

    Each layer's ``(B, T, H)`` output is pooled by a forward hook as soon as it is computed and then
    dropped, so memory holds one layer's activations plus ``(layers, B, H)`` pooled vectors — not all
    ``hidden_states`` at once as ``output_hidden_states=True`` would. With a device map each layer is pooled
    on its own device and only the ``(B, H)`` result moves to the device of ``weights``.

    Returns:
        ``(layers, B, H)`` float32, on the device of ``weights``.
    """
    modules = hidden_state_modules(model)
    pooled: list[torch.Tensor | None] = [None] * len(modules)

    def hook_for(index: int):
        def hook(_module, _inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            pooled[index] = pool_tokens(hidden, weights.to(hidden.device)).to(weights.device)

        return hook

    handles = [module.register_forward_hook(hook_for(i)) for i, module in enumerate(modules)]
    try:
        backbone(model)(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    assert all(p is not None for p in pooled), "a hidden-state hook did not fire"
    return torch.stack(pooled)  # type: ignore[arg-type]


def truncated_stack(model: Any, layer: int) -> torch.nn.Module:
    """The decoder stack cut after ``hidden_states[layer]``: a module whose output is exactly that hidden
    state.

    A shallow copy of the stack (the same embedding, blocks and parameters — nothing is copied or frozen)
    whose block list ends at block ``layer - 1`` and whose final norm is the identity; index N (the last)
    keeps the norm, as Hugging Face's ``hidden_states[N]`` does. Unlike stopping a forward by raising from a
    hook, this is an ordinary forward that ``DistributedDataParallel`` / FSDP wrappers and autograd see whole.

    Raises:
        TliError: ``layer`` beyond the blocks this model holds.
    """
    stack = backbone(model)
    blocks = list(stack.layers[: stack.config.num_hidden_layers])
    if not 0 <= layer <= len(blocks):
        raise ConfigError(f"layer {layer} is beyond the model: hidden-state indices run 0..{len(blocks)}")
    if layer == len(blocks):
        return stack
    view = copy.copy(stack)  # shares parameters and submodules; only the module tables below are new
    view._modules = dict(stack._modules)
    view._forward_hooks, view._forward_pre_hooks = (
        type(stack._forward_hooks)(),
        type(stack._forward_pre_hooks)(),
    )
    view.layers = torch.nn.ModuleList(blocks[:layer])
    view.norm = torch.nn.Identity()
    return view


def pooled_at_layer(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, weights: torch.Tensor, layer: int
) -> torch.Tensor:
    """Pooled ``hidden_states[layer]`` with gradients; blocks after ``layer`` and ``lm_head`` never run.

    Returns:
        ``(B, H)`` float32 pooled (not normalised) embeddings.
    """
    stack = truncated_stack(model, layer)
    hidden = stack(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    return pool_tokens(hidden, weights.to(hidden.device))


class LayerEncoder(torch.nn.Module):
    """``(input_ids, attention_mask, weights) -> pooled hidden_states[layer]``: the part of a model a loss at
    one layer needs, as one module that DDP, FSDP or DeepSpeed can wrap (training through the wrapper's
    forward is what lets it reduce — or gather and shard — the parameters).

    Its parameters are the embedding and blocks ``0..layer-1`` of ``model`` (shared, not copied), so
    training it trains ``model``'s adapter.
    """

    def __init__(self, model: Any, layer: int) -> None:
        super().__init__()
        self.stack = truncated_stack(model, layer)
        self.layer = layer
        # What FSDP's transformer auto-wrap policy shards by (Accelerate reads it from the wrapped module).
        self._no_split_modules = getattr(backbone(model), "_no_split_modules", None)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """``(B, H)`` float32: ``sum_t weights[b, t] * hidden_states[layer][b, t]``."""
        hidden = self.stack(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        return pool_tokens(hidden, weights.to(hidden.device))


def embed_all_layers(
    words: Sequence[str],
    model: Any,
    tokenizer: Any,
    config: EmbedConfig | None = None,
    *,
    progress: bool | None = None,
    desc: str = "embedding",
) -> torch.Tensor:
    """Pooled, L2-normalised embeddings of ``words`` at every hidden-state index.

    Mean-centring (``config.center``) is not applied here because it needs to know the language of each
    string; :func:`center_and_normalise` does it per language.

    Returns:
        ``(layers, len(words), hidden)`` float32 on CPU, in the order of ``words``.
    """
    config = config or EmbedConfig()
    if not words:
        raise DataError("nothing to embed: the word list is empty")
    encoded = encode_words(words, tokenizer, config)
    device = input_device(model)
    n_layers = len(hidden_state_modules(model))
    result = torch.empty((n_layers, len(words), backbone(model).config.hidden_size))  # (layers, words, H)
    batches = _length_sorted_batches(encoded, config.batch_size)
    with torch.inference_mode(), Progress(len(batches), desc, unit="batch", enabled=progress) as bar:
        for batch in batches:
            ids, attention, weights = pad_batch([encoded[i] for i in batch], tokenizer.pad_token_id, device)
            result[:, batch] = forward_pooled(model, ids, attention, weights).cpu()  # (layers, B, H)
            bar.update(1)
    return result.div_(result.norm(dim=-1, keepdim=True).clamp_min(1e-12))  # in place: no second copy


def center_and_normalise(embeddings: torch.Tensor) -> torch.Tensor:
    """Subtract the mean over words at each layer, then L2-normalise: ``x ↦ (x − μ) / ‖x − μ‖``.

    Args:
        embeddings: ``(layers, words, hidden)`` embeddings of one language.
    """
    return centre(embeddings)


EmbeddingCache = dict
"""``{string: (layers, H) tensor}`` of one model state and one recipe: strings already embedded are reused
(``tli run`` embeds the trained pairs once for the scan and reuses them in the base-model evaluation)."""


def embed_strings(
    words: Sequence[str],
    model: Any,
    tokenizer: Any,
    config: EmbedConfig,
    *,
    cache: EmbeddingCache | None = None,
    progress: bool | None = None,
    desc: str = "embedding",
) -> torch.Tensor:
    """:func:`embed_all_layers`, computing only the strings missing from ``cache`` (and adding them to it).

    Returns:
        ``(layers, len(words), hidden)`` float32, in the order of ``words``.
    """
    if cache is None:
        return embed_all_layers(words, model, tokenizer, config, progress=progress, desc=desc)
    missing = [w for w in dict.fromkeys(words) if w not in cache]
    if missing:
        fresh = embed_all_layers(missing, model, tokenizer, config, progress=progress, desc=desc)
        cache.update({w: fresh[:, i] for i, w in enumerate(missing)})
    return torch.stack([cache[w] for w in words], dim=1)


def embed_lexicon(
    lexicon,
    loaded,
    config: EmbedConfig,
    *,
    cache: EmbeddingCache | None = None,
    progress: bool | None = None,
    stage: str = "",
):
    """Embeddings of the lexicon's unique source and target strings at every layer.

    Every distinct string of each language is embedded once, in length-sorted batches; the two languages
    are embedded apart so no gathered copy of the (layers × words × hidden) array is made. With
    ``config.center`` each language is mean-centred per layer.

    Args:
        stage: what the embeddings are for, in progress lines (``scan``, ``evaluation: base model``).

    Returns:
        ``(src, tgt, index)``: ``(layers, n_src, H)``, ``(layers, n_tgt, H)`` and the
        :class:`~tli.metrics.PairIndex`.
    """
    sources, targets, index = PairIndex.from_lexicon(lexicon)
    model, tokenizer = loaded.model, loaded.tokenizer
    prefix = f"{stage}: " if stage else ""
    src = embed_strings(
        sources, model, tokenizer, config, cache=cache, progress=progress, desc=f"{prefix}source words"
    )
    tgt = embed_strings(
        targets, model, tokenizer, config, cache=cache, progress=progress, desc=f"{prefix}target words"
    )
    if config.center:
        src, tgt = center_and_normalise(src), center_and_normalise(tgt)
    return src, tgt, index
