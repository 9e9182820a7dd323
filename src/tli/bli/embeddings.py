"""Words embedded at one or a few layers in bounded memory, and one layer's embeddings exported for BLI tools.

Export writes ``.npy``, a word list and word2vec text (``.vec``), the formats MUSE, VecMap and gensim read.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tli.embed import EmbedConfig, center_and_normalise, embed_all_layers
from tli.errors import ConfigError, DataError
from tli.io import atomic_write_bytes, atomic_write_text
from tli.models import LoadedModel

_WORDS_PER_PASS = 1024  # words embedded at once by embed_layer: bounds the (layers, words, H) array


def embed_layer(
    words: Sequence[str],
    loaded: LoadedModel,
    embed_config: EmbedConfig,
    layer: int,
    *,
    words_per_pass: int = _WORDS_PER_PASS,
    progress: bool | None = None,
) -> torch.Tensor:
    """L2-normalised embeddings of ``words`` at hidden-state index ``layer``, shape ``(n, H)``.

    Uses :func:`tli.embed.embed_all_layers` (every layer in one forward) on ``words_per_pass`` words at a
    time and keeps only ``layer``, so a 50k-word vocabulary never holds ``(layers, 50k, H)``. With
    ``embed_config.center`` the words are treated as one language: the mean over *these* words is
    subtracted (:func:`tli.embed.center_and_normalise`).
    """
    if not 0 <= layer <= loaded.num_layers:
        raise ConfigError(
            f"--layer {layer} is out of range: this model has hidden states 0..{loaded.num_layers}"
        )
    if words_per_pass < 1:
        raise ConfigError(f"words_per_pass must be >= 1, got {words_per_pass}")
    parts = []
    for start in range(0, len(words), words_per_pass):
        chunk = list(words[start : start + words_per_pass])
        every = embed_all_layers(chunk, loaded.model, loaded.tokenizer, embed_config, progress=progress)
        parts.append(every[layer].clone())  # (chunk, H); the (layers, chunk, H) array is freed
    if not parts:
        raise DataError("nothing to embed: the word list is empty")
    vectors = torch.cat(parts)
    return center_and_normalise(vectors[None])[0] if embed_config.center else vectors


def vec_key(word: str) -> str:
    """The word as a word2vec text key: runs of whitespace become ``_`` (the format is space-separated)."""
    return "_".join(word.split())


def export_embeddings(
    words: Sequence[str],
    vectors: torch.Tensor | np.ndarray,
    out: str | os.PathLike,
    *,
    layer: int,
    lang: str,
    precision: int = 6,
) -> dict[str, Path]:
    """Write one layer's embeddings in the formats BLI tools read.

    Files (each written atomically):

    - ``<out>/<lang>.layer<L>.npy``: float32 array ``(n, H)``, exact;
    - ``<out>/<lang>.layer<L>.words.txt``: one word per line, same order, words unchanged;
    - ``<out>/<lang>.layer<L>.vec``: word2vec / fastText text format read by MUSE, VecMap and gensim
      (``KeyedVectors.load_word2vec_format``): a first line ``n H``, then ``word v1 … vH`` with
      ``precision`` significant digits. The format separates fields by spaces, so a multiword entry is
      written with its spaces replaced by ``_`` (``thank you`` → ``thank_you``; see :func:`vec_key`).

    Raises:
        ConfigError: a word that is empty, holds a line break, or whose ``.vec`` key collides with another.
    """
    array = np.ascontiguousarray(
        vectors.detach().cpu().numpy() if isinstance(vectors, torch.Tensor) else vectors, dtype=np.float32
    )
    words = list(words)
    if array.ndim != 2 or len(words) != len(array):
        raise ValueError(f"{len(words)} words but vectors of shape {array.shape}; need (n_words, H)")
    keys: dict[str, str] = {}
    for word in words:
        if not word.strip() or "\n" in word or "\r" in word:
            raise ConfigError(
                f"cannot export word {word!r}: empty or with a line break — clean the word list"
            )
        if (key := vec_key(word)) in keys:
            raise ConfigError(
                f"words {keys[key]!r} and {word!r} both become {key!r} in the .vec file — keep one of them"
            )
        keys[key] = word
    out = Path(out)
    stem = f"{lang}.layer{layer}"
    npy = io.BytesIO()
    np.save(npy, array)
    text = io.StringIO()
    text.write(f"{len(words)} {array.shape[1]}\n")
    for key, row in zip(keys, array, strict=True):
        text.write(key + " " + " ".join(f"{value:.{precision}g}" for value in row.tolist()) + "\n")
    return {
        "npy": atomic_write_bytes(out / f"{stem}.npy", npy.getvalue()),
        "words": atomic_write_text(out / f"{stem}.words.txt", "".join(w + "\n" for w in words)),
        "vec": atomic_write_text(out / f"{stem}.vec", text.getvalue()),
    }


def embed_layers(
    words: Sequence[str],
    loaded: LoadedModel,
    embed_config: EmbedConfig,
    layers: Sequence[int],
    *,
    words_per_pass: int = _WORDS_PER_PASS,
    progress: bool | None = None,
) -> dict[int, torch.Tensor]:
    """``{layer: (n, H)}`` L2-normalised embeddings of ``words`` at a few layers, one forward per chunk.

    Like :func:`embed_layer`, a large vocabulary is embedded ``words_per_pass`` words at a time and only
    the asked layers are kept.
    """
    parts: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    for start in range(0, len(words), words_per_pass):
        chunk = list(words[start : start + words_per_pass])
        every = embed_all_layers(chunk, loaded.model, loaded.tokenizer, embed_config, progress=progress)
        for layer in layers:
            parts[layer].append(every[layer].clone())
    return {layer: torch.cat(chunks) if chunks else torch.empty(0) for layer, chunks in parts.items()}
