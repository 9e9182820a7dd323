"""The layer-wise alignment scan: the published statistic next to its controls, at every layer.

For each hidden-state index (0 = input embeddings, i = output of block i, N = the last block's output after
the final norm) the scan reports the mean cosine of matched pairs (the published statistic), the mean cosine
of mismatched pairs, their gap, the same gap after mean-centring each language (comparable across layers),
and retrieval P@1 / P@5 / MRR (plain cosine) and P@1 (CSLS) over the whole lexicon. It then selects a TLI
target layer under a named criterion among the early layers (``min_layer .. max_layer``).

A model larger than one device is scanned spread over several (``device_map="auto"``, with ``max_memory`` and
disk offload), or streamed from its checkpoint one block at a time (``stream=True``, :mod:`tli.stream`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from tli.config import CRITERIA, ScanConfig
from tli.embed import EmbedConfig, EmbeddingCache, bos_record, drop_unembeddable_pairs, embed_lexicon
from tli.errors import ConfigError, DataError
from tli.lexicon import Lexicon, lexicon_record, resolve_lexicon, split_for_study
from tli.metrics import PairIndex, artifact_layers, chance_p_at_1, layer_metrics
from tli.models import LoadedModel, load_model
from tli.progress import Progress
from tli.report import write_scan_run
from tli.runs import prepare_run_dir
from tli.stream import StreamedModel, embed_lexicon_streamed, open_streamed
from tli.threads import configure_threads

log = logging.getLogger(__name__)


SMALL_LEXICON = 30
"""Below this many pairs, chance-level retrieval and the statistics are too noisy to read; say so."""


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
    """Layers where any two words have cosine ≥ 0.5 and translations add < 5 %: raw cosine says nothing."""
    published_choice: int | None = None
    """The layer the published rule (highest matched mean cosine, all layers) would pick."""
    selectable_layers: list[int] = field(default_factory=list)
    """``[low, high]``: the range the TLI target was chosen from (an early-layer method)."""
    best_overall: int | None = None
    """The layer the criterion would pick among *all* layers ≥ ``min_layer`` (may lie beyond ``high``)."""
    chance_p_at_1: float | None = None
    """P@1 of a random ranking, counting words with several translations."""
    split: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    skipped_pairs: list[dict[str, str]] = field(default_factory=list)
    """Pairs left out because a word cannot be embedded with this recipe (each with the reason)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lexicon_index(lexicon: Lexicon) -> tuple[list[str], list[str], PairIndex]:
    """Unique source and target strings and the pairs as indices (see :meth:`PairIndex.from_lexicon`)."""
    return PairIndex.from_lexicon(lexicon)


def per_layer_metrics(
    src: torch.Tensor,
    tgt: torch.Tensor,
    index: PairIndex,
    *,
    progress: bool | None = False,
    desc: str = "scan: per-layer figures",
) -> list[dict]:
    """:func:`tli.metrics.layer_metrics` at every layer, with the layer index first."""
    rows = []
    with Progress(len(src), desc, unit="layer", enabled=progress) as bar:
        for layer in range(len(src)):
            rows.append({"layer": layer, **layer_metrics(src[layer], tgt[layer], index)})
            bar.update(1)
    return rows


def select_layer(
    layers: list[dict[str, float]], criterion: str, low: int = 1, high: int | None = None
) -> int:
    """The layer in ``[low, high]`` that maximises the criterion's figure; ties → higher MRR, then centred
    gap.

    Raises:
        TliError: no layer in the range.
    """
    key = CRITERIA[criterion]
    candidates = [row for row in layers if row["layer"] >= low and (high is None or row["layer"] <= high)]
    if not candidates:
        raise ConfigError(
            f"no layer between --min-layer {low} and --max-layer {high} (layers 0..{len(layers) - 1})"
        )

    def score(row: dict[str, float]) -> tuple:
        values = (row[key], row["mrr"], row.get("centered_gap", row["gap"]))
        return (*(v if v == v else float("-inf") for v in values), -row["layer"])  # NaN ranks last

    return int(max(candidates, key=score)["layer"])


def resolve_model(
    model: str | LoadedModel | StreamedModel | None, config: ScanConfig
) -> LoadedModel | StreamedModel:
    """A loaded (or, with ``config.stream``, streamed) model from a spec; a given model unchanged."""
    if isinstance(model, (LoadedModel, StreamedModel)):
        return model
    if config.stream:
        return open_streamed(
            model, dtype=config.dtype, device=config.device, trust_remote_code=config.trust_remote_code
        )
    return load_model(model, **config.load_options())


def small_lexicon_warning(n_pairs: int, chance: float, n_candidates: int) -> list[str]:
    """A word about chance when a lexicon is too small for its figures to mean much."""
    if n_pairs >= SMALL_LEXICON:
        return []
    return [
        f"only {n_pairs} pairs: retrieval ranks among {n_candidates} candidates (chance P@1 = {chance:.3f}) "
        "and paired statistics on so few pairs are noise; use a lexicon of a few hundred pairs"
    ]


def run_scan(
    loaded: LoadedModel | StreamedModel,
    lexicon: Lexicon,
    config: ScanConfig,
    *,
    progress: bool | None = None,
    cache: EmbeddingCache | None = None,
) -> ScanResult:
    """Scan a loaded (or streamed) model on a lexicon (no file output).

    Args:
        cache: strings already embedded by this model state with this recipe (filled as a side effect).
    """
    embed_config = EmbedConfig.from_recipe(config.recipe(), config.batch_size)
    lexicon, skipped = drop_unembeddable_pairs(lexicon, loaded.tokenizer, embed_config)
    if len(lexicon) < 2:
        dropped = f" ({len(skipped)} more cannot be embedded)" if skipped else ""
        raise DataError(
            f"{lexicon.path or 'the lexicon'}: {len(lexicon)} pair(s) to scan{dropped}: the mismatched control "
            "and retrieval need >= 2"
        )
    # A layer range the model does not have is bad input: refuse it before minutes of embedding.
    low, high = config.layer_range(loaded.num_layers)
    start = time.perf_counter()
    if isinstance(loaded, StreamedModel):
        src, tgt, index = embed_lexicon_streamed(
            lexicon, loaded, embed_config, cache=cache, progress=progress
        )
    else:
        src, tgt, index = embed_lexicon(
            lexicon, loaded, embed_config, cache=cache, progress=progress, stage="scan"
        )
    layers = per_layer_metrics(src, tgt, index, progress=progress)
    chance = chance_p_at_1(index.gold())
    warnings = small_lexicon_warning(len(lexicon), chance, index.n_tgt)
    if skipped:
        warnings.append(f"{len(skipped)} pair(s) skipped: a word cannot be embedded (see skipped_pairs)")
    for warning in warnings:
        log.warning("warning: %s", warning)
    return ScanResult(
        layers=layers,
        selected_layer=select_layer(layers, config.select_by, low, high),
        criterion=config.select_by,
        pooling=embed_config.describe() | bos_record(loaded.tokenizer, embed_config),
        n_pairs=len(lexicon),
        timing={"load_seconds": loaded.load_seconds, "scan_seconds": time.perf_counter() - start},
        model=loaded.describe(),
        lexicon=lexicon_record(lexicon),
        artifact_layers=artifact_layers(layers),
        published_choice=select_layer(layers, "cosine", 0),
        selectable_layers=[low, high],
        best_overall=select_layer(layers, config.select_by, low),
        chance_p_at_1=chance,
        warnings=warnings,
        skipped_pairs=skipped,
    )


def scan(
    model: str | LoadedModel | None = None,
    lexicon: str | Path | Lexicon | None = None,
    *,
    out: str | Path | None = None,
    progress: bool | None = None,
    **options: Any,
) -> ScanResult:
    """Run the layer-wise alignment scan and, when ``out`` is given, write the run directory.

    With ``test_lexicon`` (MUSE-style separate dictionaries) the figures are computed on the test pairs;
    otherwise on every pair of the lexicon.

    Args:
        model: model spec (see :func:`tli.models.load_model`) or an already loaded (or streamed) model.
        lexicon: word-pair file, a :class:`~tli.lexicon.Lexicon`, or None for the shipped lexicon.
        out: run directory to write ``results.json``, ``layers.csv``, ``report.md`` and ``layers.png``.
        progress: show a progress bar (None = only on a terminal).
        **options: any :class:`~tli.config.ScanConfig` field (``pooling``, ``select_by``, ``batch_size``,
            ``stream``, ``device_map``, ``max_memory``, ``offload_folder``, …).

    Example:
        >>> import tli
        >>> result = tli.scan(lexicon="pairs.csv", pooling="mean-no-special", out="runs/scan")
        >>> result.selected_layer
    """
    lexicon_path = str(lexicon) if isinstance(lexicon, (str, Path)) else None
    given = isinstance(model, (LoadedModel, StreamedModel))
    config = ScanConfig(model=None if given else model, **{"lexicon": lexicon_path, **options})
    configure_threads(config.threads)
    if out is not None:
        prepare_run_dir(out, overwrite=config.overwrite)
    if config.test_lexicon is not None:
        study = split_for_study(lexicon, config.test_lexicon)
        lex, split = study.control, study.record()
    else:
        lex, split = resolve_lexicon(lexicon), None
    loaded = resolve_model(model, config)
    result = run_scan(loaded, lex, config, progress=progress)
    result.split = split
    if out is not None:
        write_scan_run(Path(out), result, config)
    return result


__all__ = ["CRITERIA", "ScanConfig", "ScanResult", "run_scan", "scan", "select_layer"]
