"""Dense encoders for retrieval and the on-disk embedding cache they write to.

An encoder turns texts into L2-normalised vectors at one or more *layers*:

- :class:`LLMEncoder`: any model tli loads (base, adapted, quantised), pooled hidden states from
  :func:`tli.embed.embed_all_layers` — the scan's recipes (``mean``, ``mean-no-special``, ``last``) and an
  optional prompt template per side (a template ending where the model would answer, with ``last`` pooling,
  is the PromptEOL-style recipe). One batched forward returns every layer, so the per-layer retrieval curve
  costs no extra pass.
- :class:`tli.retrieval.biencoder.SentenceEncoder`: a sentence-transformers bi-encoder (one "layer").

Corpora are encoded in chunks of ``chunk_size`` passages; each chunk is written to an
:class:`EmbeddingStore` as soon as it is computed — a folder keyed by SHA-256 of the model's state, the
recipe and the texts — so an interrupted encoding resumes at the first missing chunk, a second run (another
cell, another experiment) reuses it, and search reads one chunk at a time (bounded memory).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from tli.distributed import evaluation_context, score_in_shares
from tli.embed import EmbedConfig, embed_all_layers
from tli.errors import ConfigError, DataError
from tli.io import atomic_write_bytes, atomic_write_json, cache_dir, sha256_text
from tli.progress import Progress

log = logging.getLogger(__name__)

ROLES = ("query", "passage")
TEXT_SLOTS = ("{text}", "{word}")
CACHE_FORMAT = 1
_SAMPLED_ELEMENTS = 1 << 16  # elements hashed per parameter tensor (strided) for a model's state fingerprint


class Encoder(Protocol):
    """What retrieval needs from an encoder."""

    layers: tuple[int, ...]
    """The layers each :meth:`encode` call returns, in order."""

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the vectors: model state, recipe (JSON-serialisable)."""

    def encode(self, texts: Sequence[str], role: str, *, progress: bool | None = None) -> np.ndarray:
        """``(len(layers), len(texts), H)`` float32 L2-normalised vectors (``role``: query or passage)."""


@dataclass(frozen=True)
class DenseRecipe:
    """How an LLM embeds queries and passages for retrieval (recorded in every retrieval cell).

    Attributes:
        layers: Hidden-state indices to keep (0 = input embeddings; N = the final normalised output).
        pooling: ``mean`` | ``mean-no-special`` | ``last`` (see :mod:`tli.embed`).
        query_template: Prompt around each query with a ``{text}`` slot, or None for the bare text.
        passage_template: The same for passages.
        add_bos: ``auto`` | ``always`` | ``never`` (see :mod:`tli.embed`).
        bos_token: Start token to prepend instead of the document separator.
        max_query_tokens: Queries are cut to this many tokens (before the template).
        max_passage_tokens: Passages are cut to this many tokens (before the template).
        batch_size: Texts per forward pass (sorted by length, so padding stays small).
    """

    layers: tuple[int, ...]
    pooling: str = "mean-no-special"
    query_template: str | None = None
    passage_template: str | None = None
    add_bos: str = "auto"
    bos_token: str | None = None
    max_query_tokens: int = 64
    max_passage_tokens: int = 256
    batch_size: int = 16

    def template(self, role: str) -> str | None:
        """The role's template with tli.embed's ``{word}`` slot."""
        text = self.query_template if role == "query" else self.passage_template
        return None if text is None else text.replace("{text}", "{word}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_template(option: str, template: str | None) -> None:
    """Raise ConfigError unless ``template`` is None or has exactly one ``{text}`` slot and formats."""
    if template is None:
        return
    if not isinstance(template, str) or sum(template.count(slot) for slot in TEXT_SLOTS) != 1:
        raise ConfigError(
            f"{option} {template!r} needs exactly one {{text}} slot, e.g. "
            '\'This passage: "{text}" means in one word: "\''
        )
    try:
        template.replace("{text}", "{word}").format(word="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"{option} {template!r}: braces other than {{text}} must be doubled ({exc})"
        ) from exc


def truncate_texts(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> tuple[list[str], int]:
    """Each text cut to its first ``max_tokens`` tokens (no special tokens); how many were cut.

    A text that fits is returned unchanged; a longer one is decoded back from its first tokens.
    """
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    out, cut = [], 0
    for text, tokens in zip(texts, ids, strict=True):
        if len(tokens) > max_tokens:
            out.append(tokenizer.decode(tokens[:max_tokens], skip_special_tokens=True))
            cut += 1
        else:
            out.append(text)
    return out, cut


def model_state_fingerprint(model: Any, base: dict[str, Any] | None = None) -> str:
    """SHA-256 of a model's *current* weights (base fingerprint plus sampled parameter values).

    The base fingerprint names the checkpoint; every parameter tensor (adapters included) then adds its name,
    shape, dtype and ``2^16`` evenly strided elements, so a LoRA adapter (small tensors: hashed whole), a
    merged adapter or full fine-tuning (every element moves) gives a new key while the same weights always
    give the same key. Cost: one small strided read per tensor.
    """
    digest = sha256_text(json.dumps(base or {}, sort_keys=True, default=str))
    parts = [digest]
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            flat = parameter.detach().reshape(-1)
            step = max(1, flat.numel() // _SAMPLED_ELEMENTS)
            sample = flat[::step][:_SAMPLED_ELEMENTS].float().cpu().numpy()
            parts.append(
                f"{name}:{tuple(parameter.shape)}:{parameter.dtype}:{sha256_bytes(sample.tobytes())}"
            )
    return sha256_text("\n".join(parts))


def sha256_bytes(data: bytes) -> str:

    return hashlib.sha256(data).hexdigest()


class LLMEncoder:
    """Pooled, L2-normalised hidden states of a causal LM (any model tli loads) at chosen layers.

    Args:
        model: The causal LM (or PEFT wrapper) in eval mode.
        tokenizer: Its tokenizer.
        recipe: Layers, pooling, templates, truncation and batch size.
        model_fingerprint: :func:`model_state_fingerprint` of ``model`` (keys the cache).
    """

    def __init__(self, model: Any, tokenizer: Any, recipe: DenseRecipe, model_fingerprint: str) -> None:
        self.model, self.tokenizer, self.recipe = model, tokenizer, recipe
        self.layers = tuple(recipe.layers)
        self.model_fingerprint = model_fingerprint
        self.truncated: dict[str, int] = {"query": 0, "passage": 0}

    def fingerprint(self) -> dict[str, Any]:
        return {"encoder": "llm", "model": self.model_fingerprint, "recipe": self.recipe.to_dict()}

    def encode(self, texts: Sequence[str], role: str, *, progress: bool | None = None) -> np.ndarray:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        limit = self.recipe.max_query_tokens if role == "query" else self.recipe.max_passage_tokens
        texts, cut = truncate_texts(self.tokenizer, texts, limit)
        self.truncated[role] += cut
        config = EmbedConfig(
            pooling=self.recipe.pooling,
            template=self.recipe.template(role),
            add_bos=self.recipe.add_bos,
            bos_token=self.recipe.bos_token,
            batch_size=self.recipe.batch_size,
        )
        layers = list(self.layers)

        def embed(indices: list[int]) -> list[np.ndarray]:
            every = embed_all_layers(
                [texts[i] for i in indices],
                self.model,
                self.tokenizer,
                config,
                progress=False,
                desc=f"{role}s",
            )
            return list(every[layers].numpy().transpose(1, 0, 2))  # per text: (kept layers, H)

        # Under tli compare's launcher each process embeds its share of the texts (longest first, dealt).
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = score_in_shares(order, embed)
        return np.stack([vectors[i] for i in range(len(texts))], axis=1)  # (kept layers, n, H), L2-normalised


# --------------------------------------------------------------------------------------------------
# The on-disk embedding cache
# --------------------------------------------------------------------------------------------------


def cache_root(option: bool | str | None) -> Path | None:
    """Where embeddings are cached: ``True`` = ``<tli cache dir>/retrieval``, a folder, or None (``False``:
    in memory only)."""
    if option is False or option is None:
        return None
    if option is True:
        return cache_dir() / "retrieval"
    return Path(str(option)).expanduser()


@dataclass
class EmbeddingStore:
    """Embeddings of one text list by one encoder, in chunk files ``part-<i>.npy`` of shape ``(L, c, H)``.

    The folder name is SHA-256 of ``key`` (model state, recipe, role, the texts' SHA-256, chunk size), so
    any change to what would produce the vectors is a different folder; ``meta.json`` repeats the key for
    people. Each part is written atomically when computed. With ``root`` None the parts live in memory.

    Attributes:
        root: Cache root folder, or None for memory only.
        key: What the vectors depend on (JSON-serialisable).
        n: Number of texts.
        chunk_size: Texts per part.
    """

    root: Path | None
    key: dict[str, Any]
    n: int
    chunk_size: int
    writes: bool = True
    """False on the other processes of a launch: parts they compute stay in memory (the main process writes)."""
    _memory: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def digest(self) -> str:
        return sha256_text(json.dumps({**self.key, "chunk_size": self.chunk_size}, sort_keys=True))

    @property
    def folder(self) -> Path | None:
        return None if self.root is None else self.root / self.digest[:40]

    def bounds(self) -> list[tuple[int, int]]:
        return [(s, min(self.n, s + self.chunk_size)) for s in range(0, self.n, self.chunk_size)]

    def _part(self, i: int) -> Path:
        assert self.folder is not None
        return self.folder / f"part-{i:05d}.npy"

    def has(self, i: int) -> bool:
        return i in self._memory or (self.folder is not None and self._part(i).is_file())

    def put(self, i: int, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array, dtype=np.float32)
        if self.folder is None or not self.writes:
            self._memory[i] = array
            return
        if not (self.folder / "meta.json").is_file():
            atomic_write_json(
                self.folder / "meta.json",
                {"format": CACHE_FORMAT, "n": self.n, "chunk_size": self.chunk_size, **self.key},
            )

        buffer = io.BytesIO()
        np.save(buffer, array)
        atomic_write_bytes(self._part(i), buffer.getvalue())

    def get(self, i: int) -> np.ndarray:
        """Part ``i`` as ``(L, c, H)`` (memory-mapped from disk)."""
        if self.folder is None or i in self._memory:
            return self._memory[i]
        try:
            return np.load(self._part(i), mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataError(
                f"embedding cache part {self._part(i)} is unreadable ({exc}); delete {self.folder} and rerun"
            ) from exc

    def missing(self) -> list[int]:
        return [i for i in range(len(self.bounds())) if not self.has(i)]

    def clear(self) -> None:
        self._memory.clear()
        if self.folder is not None and self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)

    def layer_chunks(self, layer: int, mean: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, (c, H))`` vectors of one kept layer (by its position in the encoder's layers), chunk by
        chunk; with ``mean``, centred (``x − μ``) and L2-normalised again."""
        for i, (start, _) in enumerate(self.bounds()):
            vectors = np.array(self.get(i)[layer], dtype=np.float32)  # a writable copy of one chunk
            if mean is not None:
                vectors = normalise_rows(vectors - mean)
            yield start, vectors

    def layer_mean(self, layer: int) -> np.ndarray:
        """Mean vector of one kept layer over all texts (streamed over the parts)."""
        total, count = None, 0
        for _, vectors in self.layer_chunks(layer):
            part = vectors.sum(axis=0, dtype=np.float64)
            total = part if total is None else total + part
            count += len(vectors)
        assert total is not None
        return (total / max(1, count)).astype(np.float32)

    def matrix(self, layer: int, mean: np.ndarray | None = None) -> np.ndarray:
        """Every vector of one kept layer as one ``(n, H)`` array (queries; small corpora)."""
        return np.concatenate([v for _, v in self.layer_chunks(layer, mean)])


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """``x / ‖x‖`` row-wise (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def encode_texts(
    encoder: Encoder,
    texts: Sequence[str],
    role: str,
    *,
    cache: bool | str | None = True,
    chunk_size: int = 1024,
    progress: bool | None = None,
    desc: str | None = None,
) -> EmbeddingStore:
    """Encode ``texts`` in chunks into an :class:`EmbeddingStore`, reusing cached chunks.

    Progress is one bar over texts (``progress`` None: on a terminal, else a log line every 30 s).

    Raises:
        ConfigError: ``chunk_size`` below 1.
    """
    if chunk_size < 1:
        raise ConfigError(f"encode chunk_size must be >= 1, got {chunk_size}")
    key = {
        "role": role,
        "encoder": encoder.fingerprint(),
        "texts": sha256_text(json.dumps(list(texts), ensure_ascii=False)),
    }
    context = evaluation_context()  # under tli compare's launcher: the main process's view of the cache
    store = EmbeddingStore(cache_root(cache), context.main_value(key), len(texts), chunk_size)
    store.writes = context.is_main
    missing = context.main_value(store.missing())
    if not missing:
        return store
    if store.folder is not None and store.writes:
        os.makedirs(store.folder, exist_ok=True)
    bounds = store.bounds()
    todo = sum(bounds[i][1] - bounds[i][0] for i in missing)
    with Progress(todo, desc or f"encoding {role}s", unit="text", enabled=progress) as bar:
        for i in missing:
            start, stop = bounds[i]
            store.put(i, encoder.encode(texts[start:stop], role, progress=False))
            bar.update(stop - start)
    return store
