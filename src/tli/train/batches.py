"""Which pairs each step trains on, and how they reach the model.

An epoch's order depends only on (seed, epoch) (:func:`epoch_order`), so a resumed run sees exactly the
examples an uninterrupted run would; :class:`PairBatcher` turns a batch of pairs into one padded forward of
the target-layer encoder (every distinct string tokenized once).
"""

from __future__ import annotations

import random

import torch

from tli.config import TrainConfig
from tli.embed import EmbedConfig, Encoded, encode_words, pad_batch
from tli.lexicon import Lexicon, Pair
from tli.models import LoadedModel

EPOCH_SEED_STRIDE = 1_000_003
"""A prime: epoch ``e`` of seed ``s`` shuffles with ``s·1000003 + e``, distinct for every epoch below it."""


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """``0..n-1`` shuffled by ``random.Random(seed·1000003 + epoch)``: the order depends only on (seed, epoch),
    so a resumed run sees exactly the examples an uninterrupted run would (TLI training and task fine-tuning)."""
    order = list(range(n))
    random.Random(seed * EPOCH_SEED_STRIDE + epoch).shuffle(order)
    return order


def epoch_batches(n_pairs: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch's batches of pair indices, in :func:`epoch_order`."""
    return chunk(epoch_order(n_pairs, seed, epoch), batch_size)


def chunk(order: list[int], batch_size: int) -> list[list[int]]:
    """Consecutive batches of ``batch_size``; a lone last pair (no negative) joins the previous batch."""
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches[-2].extend(batches.pop())
    return batches


class PairBatcher:
    """Pairs → padded model inputs for the target layer (every distinct string tokenized once)."""

    def __init__(self, loaded: LoadedModel, config: TrainConfig, *lexicons: Lexicon | None):
        embed_config = EmbedConfig.from_recipe(config.recipe())
        self.tokenizer, self.embed_config = loaded.tokenizer, embed_config
        strings = list(dict.fromkeys(w for lex in lexicons if lex for p in lex for w in (p.source, p.target)))
        self.encoded: dict[str, Encoded] = dict(
            zip(strings, encode_words(strings, loaded.tokenizer, embed_config), strict=True)
        )
        self.pad_id, self.device, self.layer = (
            loaded.tokenizer.pad_token_id,
            loaded.device,
            config.target_layer,
        )
        self.tokens_seen = 0
        """Non-padding tokens of every forward so far."""

    def pooled(self, encoder, pairs: list[Pair]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled target-layer embeddings ``(B, H)`` of the sources and of the targets, in one forward of the
        (possibly DDP / FSDP-wrapped) :class:`~tli.embed.LayerEncoder`."""
        items = [self.encoded[p.source] for p in pairs] + [self.encoded[p.target] for p in pairs]
        ids, attention, weights = pad_batch(items, self.pad_id, self.device)
        self.tokens_seen += int(attention.sum())
        pooled = encoder(ids, attention, weights)  # (2B, H)
        return pooled[: len(pairs)], pooled[len(pairs) :]

    def pooled_words(self, encoder, words: list[str]) -> torch.Tensor:
        """Pooled target-layer embeddings ``(N, H)`` of any words (encoded once, then cached)."""
        new = [w for w in dict.fromkeys(words) if w not in self.encoded]
        if new:
            self.encoded.update(zip(new, encode_words(new, self.tokenizer, self.embed_config), strict=True))
        ids, attention, weights = pad_batch([self.encoded[w] for w in words], self.pad_id, self.device)
        self.tokens_seen += int(attention.sum())
        return encoder(ids, attention, weights)
