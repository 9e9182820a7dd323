"""The layer-wise alignment scan: the published statistic next to its controls, at every layer.

For each hidden-state index (0 = input embeddings … N = last block's output) the scan reports the mean
cosine of matched pairs (the published statistic), the mean cosine of mismatched pairs, their gap, and
retrieval P@1 / P@5 / MRR (plain cosine) and P@1 (CSLS) over the whole lexicon; then it selects a target
layer under a named criterion.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from tli.embed import EmbedConfig, center_and_normalise, embed_all_layers
from tli.errors import ConfigError, TliError
from tli.lexicon import Lexicon, default_lexicon, read_lexicon
from tli.metrics import PairIndex, layer_metrics
from tli.models import LoadedModel, load_model

CRITERIA = {
    "gap": "gap",
    "cosine": "matched_mean",
    "p_at_1": "p_at_1",
    "csls": "csls_p_at_1",
}
"""Selection criterion → the per-layer figure it maximises (ties broken by MRR, then gap)."""

ARTIFACT_COSINE = 0.95
ARTIFACT_GAP = 0.05


@dataclass
class ScanConfig:
    """Options of ``tli scan`` (the same names as the CLI flags)."""

    model: str | None = None
    """Local HF directory, hub id, .gguf file; None = embedded SmolLM2-135M-Instruct."""
    lexicon: str | None = None
    """Word-pair file (JSON/CSV/TSV); None = the shipped Swahili–English lexicon."""
    pooling: str = "mean"
    """``mean`` (published) | ``mean-no-special`` | ``last``."""
    center: bool = False
    """Mean-centre each language's embeddings per layer before the cosine."""
    template: str | None = None
    """Prompt with a ``{word}`` slot (use with ``--pooling last``)."""
    add_bos: str = "auto"
    """``auto`` | ``always`` | ``never``."""
    select_by: str = "gap"
    """``gap`` (default, artifact-robust) | ``cosine`` (published) | ``p_at_1`` | ``csls``."""
    min_layer: int = 1
    """Lowest layer the selection may pick (layer 0 is the embedding table: no block to adapt)."""
    batch_size: int = 32
    """Words per forward pass."""
    dtype: str = "auto"
    device: str = "auto"
    quantization: str = "none"
    seed: int = 0
    """Recorded for provenance (the scan itself is deterministic)."""

    def __post_init__(self) -> None:
        if self.select_by not in CRITERIA:
            raise ConfigError(f"--select-by {self.select_by!r} is not one of {', '.join(CRITERIA)}")
        if self.min_layer < 0:
            raise ConfigError(f"--min-layer must be >= 0, got {self.min_layer}")
        self.embed_config()  # validates pooling, template, add_bos and batch size before any loading

    def embed_config(self) -> EmbedConfig:
        return EmbedConfig(
            pooling=self.pooling,
            center=self.center,
            template=self.template,
            add_bos=self.add_bos,
            batch_size=self.batch_size,
        )


@dataclass
class ScanResult:
    """Per-layer figures, the selected layer, and everything needed to trust them."""

    layers: list[dict[str, float]]
    selected_layer: int
    criterion: str
    pooling: dict[str, Any]
    n_pairs: int
    timing: dict[str, float]
    model: dict[str, Any]
    lexicon: dict[str, Any]
    artifact_layers: list[int] = field(default_factory=list)
    """Layers whose matched mean cosine > 0.95 while the gap < 0.05: raw cosine says nothing there."""
    published_choice: int | None = None
    """The layer the published rule (highest matched mean cosine) would pick."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lexicon_index(lexicon: Lexicon) -> tuple[list[str], list[str], PairIndex]:
    """Unique source and target strings (first-seen order) and the pairs as indices into them."""
    sources = list(dict.fromkeys(lexicon.sources))
    targets = list(dict.fromkeys(lexicon.targets))
    src_pos = {w: i for i, w in enumerate(sources)}
    tgt_pos = {w: i for i, w in enumerate(targets)}
    index = PairIndex(
        src=torch.tensor([src_pos[p.source] for p in lexicon]),
        tgt=torch.tensor([tgt_pos[p.target] for p in lexicon]),
        n_src=len(sources),
        n_tgt=len(targets),
    )
    return sources, targets, index


def embed_lexicon(
    lexicon: Lexicon, loaded: LoadedModel, config: EmbedConfig, *, progress: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor, PairIndex]:
    """Embeddings of the lexicon's unique source and target strings at every layer.

    Every distinct string of each language is embedded once, in length-sorted batches; the two
    languages are embedded apart so no gathered copy of the (layers × words × hidden) array is made.

    Returns:
        ``(src, tgt, index)``: ``(layers, n_src, H)``, ``(layers, n_tgt, H)`` and the pair index.
    """
    sources, targets, index = lexicon_index(lexicon)
    model, tokenizer = loaded.model, loaded.tokenizer
    src = embed_all_layers(sources, model, tokenizer, config, progress=progress, desc="source words")
    tgt = embed_all_layers(targets, model, tokenizer, config, progress=progress, desc="target words")
    if config.center:
        src, tgt = center_and_normalise(src), center_and_normalise(tgt)
    return src, tgt, index


def per_layer_metrics(src: torch.Tensor, tgt: torch.Tensor, index: PairIndex) -> list[dict]:
    """:func:`tli.metrics.layer_metrics` at every layer, with the layer index first."""
    return [{"layer": layer, **layer_metrics(src[layer], tgt[layer], index)} for layer in range(len(src))]


def select_layer(layers: list[dict[str, float]], criterion: str, min_layer: int = 1) -> int:
    """The layer (``>= min_layer``) that maximises the criterion's figure; ties → higher MRR, then gap."""
    if criterion not in CRITERIA:
        raise ConfigError(f"--select-by {criterion!r} is not one of {', '.join(CRITERIA)}")
    candidates = [row for row in layers if row["layer"] >= min_layer]
    if not candidates:
        raise ConfigError(f"--min-layer {min_layer} is beyond the last layer ({len(layers) - 1})")
    key = CRITERIA[criterion]
    best = max(candidates, key=lambda row: (row[key], row["mrr"], row["gap"], -row["layer"]))
    return int(best["layer"])


def artifact_layers(layers: list[dict[str, float]]) -> list[int]:
    """Layers where the raw statistic looks near-perfect but does not separate true from false pairs."""
    return [
        int(row["layer"])
        for row in layers
        if row["matched_mean"] > ARTIFACT_COSINE and row["gap"] < ARTIFACT_GAP
    ]


def resolve_lexicon(lexicon: str | Path | Lexicon | None) -> Lexicon:
    """A :class:`Lexicon` from a path, an object, or None (the shipped lexicon)."""
    if lexicon is None:
        return default_lexicon()
    if isinstance(lexicon, Lexicon):
        return lexicon
    return read_lexicon(lexicon)


def resolve_model(model: str | LoadedModel | None, config: ScanConfig) -> LoadedModel:
    """A loaded model from a spec, or the given :class:`LoadedModel` unchanged."""
    if isinstance(model, LoadedModel):
        return model
    return load_model(model, dtype=config.dtype, device=config.device, quantization=config.quantization)


def run_scan(
    loaded: LoadedModel, lexicon: Lexicon, config: ScanConfig, *, progress: bool | None = None
) -> ScanResult:
    """Scan a loaded model on a lexicon (no file output)."""
    if len(lexicon) < 2:
        raise TliError(
            f"the lexicon has {len(lexicon)} pair(s): the mismatched control and retrieval need >= 2"
        )
    start = time.perf_counter()
    embed_config = config.embed_config()
    src, tgt, index = embed_lexicon(lexicon, loaded, embed_config, progress=progress)
    layers = per_layer_metrics(src, tgt, index)
    scan_seconds = time.perf_counter() - start
    return ScanResult(
        layers=layers,
        selected_layer=select_layer(layers, config.select_by, config.min_layer),
        criterion=config.select_by,
        pooling=embed_config.describe(),
        n_pairs=len(lexicon),
        timing={"load_seconds": loaded.load_seconds, "scan_seconds": scan_seconds},
        model=loaded.describe(),
        lexicon=lexicon_record(lexicon),
        artifact_layers=artifact_layers(layers),
        published_choice=select_layer(layers, "cosine", 0),
    )


def lexicon_record(lexicon: Lexicon) -> dict[str, Any]:
    """Lexicon provenance: path, file SHA-256, content fingerprint, size and languages."""
    from tli.io import sha256_file

    path = getattr(lexicon, "path", None)
    return {
        "path": str(path) if path else "shipped",
        "file_sha256": sha256_file(path) if path and Path(path).is_file() else None,
        "sha256": lexicon.fingerprint(),
        "n_pairs": len(lexicon),
        "n_sources": len(set(lexicon.sources)),
        "n_targets": len(set(lexicon.targets)),
        "source_lang": lexicon.source_lang,
        "target_lang": lexicon.target_lang,
    }


def scan(
    model: str | LoadedModel | None = None,
    lexicon: str | Path | Lexicon | None = None,
    *,
    out: str | Path | None = None,
    progress: bool | None = None,
    **options: Any,
) -> ScanResult:
    """Run the layer-wise alignment scan and, when ``out`` is given, write the run directory.

    Args:
        model: model spec (see :func:`tli.models.load_model`) or an already loaded model.
        lexicon: word-pair file, a :class:`~tli.lexicon.Lexicon`, or None for the shipped lexicon.
        out: run directory to write ``results.json``, ``layers.csv``, ``report.md`` and ``layers.png``.
        progress: show a progress bar (None = only on a terminal).
        **options: any :class:`ScanConfig` field (``pooling``, ``select_by``, ``batch_size``, …).

    Example:
        >>> import tli
        >>> result = tli.scan(lexicon="pairs.csv", pooling="mean-no-special", out="runs/scan")
        >>> result.selected_layer
    """
    from tli.report import write_scan_run
    from tli.runs import check_writable

    config = ScanConfig(model=None if isinstance(model, LoadedModel) else model, **options)
    if out is not None:
        check_writable(out)
    lex = resolve_lexicon(lexicon)
    loaded = resolve_model(model, config)
    result = run_scan(loaded, lex, config, progress=progress)
    if out is not None:
        write_scan_run(Path(out), result, config)
    return result
