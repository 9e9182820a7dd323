"""Both model states' embeddings of a lexicon: the base model (adapter disabled) and the adapted model.

One model load serves both sides: the adapter stays unmerged (merging LoRA into 4-bit weights adds
rounding error) and the base model is the same network with the adapter disabled. Every string is embedded
at every layer before and after (in float32), so the layer curves come for free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tli.embed import EmbedConfig, EmbeddingCache, embed_lexicon
from tli.lexicon import Lexicon
from tli.metrics import PairIndex
from tli.models import LoadedModel
from tli.scan import per_layer_metrics


@dataclass
class Side:
    """Embeddings of one model state: ``(layers, n_src, H)`` and ``(layers, n_tgt, H)``."""

    src: torch.Tensor
    tgt: torch.Tensor


@dataclass
class Embeddings:
    """What the plots need besides the figures: both states' embeddings and the index."""

    base: Side
    adapted: Side
    index: PairIndex
    lexicon: Lexicon


def embed_config_of(meta: dict[str, Any], batch_size: int) -> EmbedConfig:
    """The embedding recipe recorded with the adapter (the one training used at the target layer)."""
    embed = meta["embed"]
    return EmbedConfig(
        pooling=embed["pooling"],
        center=embed.get("center", False),
        template=embed.get("template"),
        add_bos=embed.get("add_bos", "auto"),
        bos_token=embed.get("bos_token_requested"),
        batch_size=batch_size,
    )


def embed_both(
    loaded: LoadedModel,
    lexicon: Lexicon,
    config: EmbedConfig,
    *,
    base_cache: EmbeddingCache | None = None,
    progress: bool | None = False,
    stage: str = "evaluation",
) -> tuple[Side, Side, PairIndex]:
    """Every-layer embeddings of the lexicon with the adapter disabled (base) and enabled (adapted).

    Args:
        base_cache: base-model embeddings already computed with this recipe (``tli run``'s scan), reused.
    """
    loaded.model.eval()
    with loaded.model.disable_adapter():
        src, tgt, index = embed_lexicon(
            lexicon, loaded, config, cache=base_cache, progress=progress, stage=f"{stage}: base model"
        )
    base = Side(src, tgt)
    src, tgt, _ = embed_lexicon(lexicon, loaded, config, progress=progress, stage=f"{stage}: adapted model")
    return base, Side(src, tgt), index


def layer_curves(
    side: Side, index: PairIndex, *, progress: bool | None = False, desc: str = ""
) -> list[dict]:
    """Scan figures at every layer for one model state (see :func:`tli.scan.per_layer_metrics`)."""
    return per_layer_metrics(side.src, side.tgt, index, progress=progress, desc=desc or "per-layer figures")
