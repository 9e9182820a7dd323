"""One adapter's evaluation, no file output: embeddings, figures and claims per group and layer, the BLI of the
unseen control words, and the layer curves (:func:`run_evaluation`)."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from tli.bli import control_retrieval, embed_layers, resolve_vocabulary
from tli.claims import judge
from tli.config import EvaluateConfig
from tli.embed import EmbedConfig, EmbeddingCache, bos_record, drop_unembeddable_pairs
from tli.errors import ConfigError
from tli.evaluate.embeddings import Embeddings, Side, embed_both, embed_config_of, layer_curves
from tli.evaluate.groups import GROUPS, small_group_warnings
from tli.evaluate.measures import between_group_claims, layer_roles, measure, per_pair_rows, within_group
from tli.evaluate.results import EvaluationResult
from tli.lexicon import Lexicon
from tli.metrics import PairIndex
from tli.models import LoadedModel, base_causal_lm
from tli.progress import stage

log = logging.getLogger(__package__)  # "tli.evaluate", the logger name these warnings always had


def run_evaluation(
    loaded: LoadedModel,
    lexicon: Lexicon,
    meta: dict[str, Any],
    config: EvaluateConfig,
    *,
    base_cache: EmbeddingCache | None = None,
    progress: bool | None = None,
) -> tuple[EvaluationResult, Embeddings]:
    """Every figure and judged claim of one adapter's evaluation (no file output).

    Args:
        lexicon: pairs with groups ``trained`` / ``control`` (see :func:`groups_for`).
        base_cache: base-model embeddings to reuse (``tli run`` passes its scan's).
        progress: progress bars, or log lines off a terminal (None); False = silent.

    Returns:
        ``(results, embeddings)``: the figures and claims (``results.to_dict()`` is the JSON form) and the
        embeddings for the plots.
    """
    name = f"evaluation (seed {meta.get('config', {}).get('seed', 0)})"
    with stage(name, enabled=progress) as bar:
        return _run_evaluation(loaded, lexicon, meta, config, base_cache, progress, bar, name)


def _run_evaluation(loaded, lexicon, meta, config, base_cache, progress, bar, name):
    """:func:`run_evaluation` inside its progress stage (``bar.update(0, step=…)`` names each part)."""
    target_layer = int(meta["target_layer"])
    final_layer = int(base_causal_lm(loaded.model).config.num_hidden_layers)
    if target_layer > final_layer:
        raise ConfigError(f"adapter target layer {target_layer} is beyond this model ({final_layer} blocks)")
    embed_config = embed_config_of(meta, config.batch_size)
    start = time.perf_counter()
    lexicon, skipped_pairs = drop_unembeddable_pairs(lexicon, loaded.tokenizer, embed_config)
    bar.update(0, step="embeddings")
    base, adapted, index = embed_both(
        loaded, lexicon, embed_config, base_cache=base_cache, progress=progress, stage=name
    )
    groups = np.array([p.group for p in lexicon])
    bar.update(0, step="claims")

    skipped = []
    usable = {g: np.flatnonzero(groups == g) for g in GROUPS}
    for group, rows in usable.items():
        if len(rows) < 2:  # a paired test needs at least two pairs
            skipped.append({"group": group, "n": int(len(rows))})
    evaluation, claims, per_pair, between = _measure_claims(
        lexicon, base, adapted, index, usable, layer_roles(target_layer, final_layer), config
    )
    judge(claims, correction=config.correction, alpha=config.alpha)
    warnings = small_group_warnings(lexicon, len(claims))
    for warning in warnings:
        log.warning("warning: %s", warning)
    bar.update(0, step="BLI")
    bli = bli_figures(
        loaded,
        lexicon,
        base,
        adapted,
        index,
        groups,
        layer_roles(target_layer, final_layer),
        config,
        embed_config,
        progress=progress,
    )
    bar.update(0, step="layer curves")
    results = EvaluationResult(
        target_layer=target_layer,
        final_layer=final_layer,
        layer_roles=[role for role, _ in layer_roles(target_layer, final_layer)],
        evaluation=evaluation,
        between_groups=between,
        claims=[c.to_dict() for c in claims],
        bli=bli,
        statistics={
            "correction": config.correction,
            "alpha": config.alpha,
            "n_claims": len(claims),
            "equivalence_margin": config.equivalence_margin,
            "n_boot": config.n_boot,
        },
        per_pair=per_pair,
        skipped_groups=skipped,
        skipped_pairs=skipped_pairs,
        layers_pre=layer_curves(base, index, progress=progress, desc=f"{name}: layer curves before"),
        layers_post=layer_curves(adapted, index, progress=progress, desc=f"{name}: layer curves after"),
        warnings=warnings,
        pooling=embed_config.describe() | bos_record(loaded.tokenizer, embed_config),
        precision="float32 embeddings" if loaded.dtype == torch.float32 else f"{loaded.dtype} embeddings",
        timing={"load_seconds": loaded.load_seconds, "evaluate_seconds": time.perf_counter() - start},
    )
    return results, Embeddings(base, adapted, index, lexicon)


def _measure_claims(lexicon, base, adapted, index, usable, roles, config):
    """``(evaluation rows, claims, per-pair rows, between-group rows)`` at each layer of ``roles``: the
    before/after figures and claims of every group with at least 2 pairs (``usable``: group → row indices),
    and the between-group claims when both groups are measured. The claims are not yet judged."""
    evaluation, claims, per_pair, between = [], [], [], []
    for role, layer in roles:
        measured = {}
        for group, rows in usable.items():
            if len(rows) < 2:
                continue
            pre, post = measure(base, layer, index, rows), measure(adapted, layer, index, rows)
            measured[group] = (pre, post)
            entry, entry_claims = within_group(pre, post, group, role, layer, config)
            evaluation.append(entry)
            claims.extend(entry_claims)
            per_pair.extend(per_pair_rows(lexicon, rows, group, role, layer, pre, post))
        if len(measured) == 2:
            group_claims, rows = between_group_claims(measured, role, layer, config)
            claims.extend(group_claims)
            between.extend(rows)
    return evaluation, claims, per_pair, between


def bli_figures(
    loaded: LoadedModel,
    lexicon: Lexicon,
    base: Side,
    adapted: Side,
    index: PairIndex,
    groups: np.ndarray,
    roles: list[tuple[str, int]],
    config: EvaluateConfig,
    embed_config: EmbedConfig,
    *,
    progress: bool | None = False,
) -> list[dict[str, Any]]:
    """Retrieval of the unseen control words at each reported layer (:func:`tli.bli.control_retrieval`):
    base, adapted and the Procrustes baseline, over the lexicon's targets or ``config.vocabulary``."""
    if (groups == "control").sum() < 1 or (groups == "trained").sum() < 2:
        return []
    layers = [layer for _, layer in roles]
    extra_base = extra_adapted = None
    record: dict[str, Any] = {"source": "lexicon targets"}
    if config.vocabulary:
        words, record = resolve_vocabulary(config.vocabulary, loaded.tokenizer)
        known = set(lexicon.targets)
        words = [w for w in words if w not in known]
        with loaded.model.disable_adapter():
            extra_base = embed_layers(words, loaded, embed_config, layers, progress=progress)
        extra_adapted = embed_layers(words, loaded, embed_config, layers, progress=progress)
        record = record | {"n_words": len(words)}
    rows = []
    for role, layer in roles:
        figures = control_retrieval(
            (base.src[layer], base.tgt[layer]),
            (adapted.src[layer], adapted.tgt[layer]),
            index,
            groups,
            extra_base=None if extra_base is None else extra_base[layer],
            extra_adapted=None if extra_adapted is None else extra_adapted[layer],
            n_boot=min(config.n_boot, 2000),
            rng=config.seed,
        )
        rows.append({"layer": layer, "layer_role": role, "candidates": record, **figures})
    return rows
