"""Evaluation of a TLI adapter: base vs adapted, trained vs unseen control pairs, target vs final layer.

One model load serves both sides: the adapter stays unmerged (merging LoRA into 4-bit weights adds
rounding error) and the base model is the same network with the adapter disabled. Every string is embedded
at every layer before and after (in float32), so the layer curves come for free.

Per group (``trained``, ``control``) and reported layer (the target layer and the final layer; once when
they coincide), per pair or per query:

- ``similarity``: ``cos(s_k, t_k)`` — the published statistic;
- ``gap``: ``cos(s_k, t_k) − mean_{j ∉ gold(s_k)} cos(s_k, t_j)`` — similarity beyond what any word gets;
- ``centered gap``: the same after mean-centring each language at that layer (:func:`tli.metrics.centre`) —
  scale-free, so a training run that collapses every cosine towards 1 cannot fake or hide a change;
- ``reciprocal rank`` and ``P@1`` hit of each source word's best translation among all lexicon targets.

Claims (:mod:`tli.claims`), all corrected together (Holm by default):

- within each group: similarity, centred gap, MRR and P@1 rise (paired tests; pairs sharing a source word
  are one cluster: t-test on source-word means and a cluster bootstrap CI; a paired randomisation test for
  reciprocal ranks;
  exact McNemar for P@1);
- between groups: trained pairs gain more than control pairs (Welch), and control pairs gain as much as
  trained pairs within ``±equivalence_margin × |trained gain|`` (TOST) — for similarity and centred gap.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tli import group_claims
from tli.adapter import (
    attach_to,
    load_adapted_for,
    read_adapter_meta,
    read_recorded_split,
    regroup_as_trained,
)
from tli.bli import control_retrieval, embed_layers, resolve_vocabulary
from tli.claims import Claim, across_seeds, judge
from tli.config import EvaluateConfig
from tli.embed import EmbedConfig, EmbeddingCache, bos_record, drop_unembeddable_pairs, embed_lexicon
from tli.errors import ConfigError
from tli.lexicon import Lexicon, lexicon_record, resolve_lexicon
from tli.metrics import PairIndex, centre, retrieval_ranks
from tli.models import LoadedModel, base_causal_lm
from tli.progress import stage
from tli.report import write_evaluate_run, write_seeds_summary
from tli.runs import prepare_run_dir, provenance, require_complete
from tli.scan import per_layer_metrics
from tli.stats import mcnemar_exact, paired_randomisation, paired_stats
from tli.threads import configure_threads

log = logging.getLogger(__name__)

GROUPS = ("trained", "control")
SMALL_GROUP = 30
"""Below this many pairs in a group (trained or control) its claims rest on too little to read: say so."""
TESTS = {
    "similarity": "t-test on source-word means",
    "centered_gap": "t-test on source-word means",
    "mrr": "paired randomisation (sign-flip) test",
    "p_at_1": "McNemar exact",
}

INTERVALS = {
    "cluster": "95 % cluster-bootstrap CI over source words (this seed)",
    "items": "95 % bootstrap CI over words (this seed)",
    "groups": "95 % bootstrap CI over source words of both groups (this seed)",
}
"""What each claim's ``ci95_low``/``ci95_high`` span (the claim's ``interval``)."""

__all__ = ["EvaluateConfig", "evaluate", "run_evaluation"]


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


@dataclass
class Measures:
    """Per-pair and per-query figures of one group at one layer for one model state."""

    similarity: np.ndarray
    gap: np.ndarray
    centered_gap: np.ndarray
    clusters: np.ndarray
    """Source-word index of each pair: pairs of one word are one cluster."""
    reciprocal_rank: np.ndarray
    hit: np.ndarray
    """Per query: the best translation ranks first (P@1)."""
    mismatched_mean: float


def _gap(
    sim: torch.Tensor, gold: torch.Tensor, src_rows: torch.Tensor, tgt_rows: torch.Tensor
) -> torch.Tensor:
    """Per pair: ``sim[s, t] − mean of sim[s, j]`` over targets ``j`` that do not translate ``s``."""
    wrong = ~gold[src_rows]  # (n_rows, n_tgt)
    mismatched = (sim[src_rows] * wrong).sum(1) / wrong.sum(1).clamp_min(1)
    return sim[src_rows, tgt_rows] - mismatched


def measure(side: Side, layer: int, index: PairIndex, rows: np.ndarray) -> Measures:
    """Per-pair similarity, raw and centred gap, and per-query reciprocal rank and P@1, for pairs ``rows``."""
    src, tgt = side.src[layer], side.tgt[layer]
    sim = src @ tgt.T  # (n_src, n_tgt)
    centred = centre(src) @ centre(tgt).T
    gold = index.gold()
    src_rows, tgt_rows = index.src[rows], index.tgt[rows]
    queries = torch.unique(src_rows)
    ranks = retrieval_ranks(sim[queries], gold[queries])
    return Measures(
        similarity=sim[src_rows, tgt_rows].numpy(),
        gap=_gap(sim, gold, src_rows, tgt_rows).numpy(),
        centered_gap=_gap(centred, gold, src_rows, tgt_rows).numpy(),
        clusters=src_rows.numpy(),
        reciprocal_rank=(1.0 / ranks.float()).numpy(),
        hit=(ranks == 1).numpy(),
        mismatched_mean=float(sim[queries][~gold[queries]].mean()),
    )


def layer_roles(target_layer: int, final_layer: int) -> list[tuple[str, int]]:
    """``[("target", L), ("final", N)]``, or one role when the target layer is the final layer."""
    if target_layer == final_layer:
        return [("target = final", target_layer)]
    return [("target", target_layer), ("final", final_layer)]


def _where(group: str, role: str, layer: int) -> str:
    return f"{group} pairs at the {role} layer ({layer})"


def within_group(
    pre: Measures, post: Measures, group: str, role: str, layer: int, config: EvaluateConfig
) -> tuple[dict[str, Any], list[Claim]]:
    """The evaluation entry for one (group, layer) and its four change claims."""
    boot = {"n_boot": config.n_boot, "rng": config.seed, "alpha": config.alpha}
    sim = paired_stats(pre.similarity, post.similarity, clusters=pre.clusters, **boot)
    raw_gap = paired_stats(pre.gap, post.gap, clusters=pre.clusters, **boot)
    cgap = paired_stats(pre.centered_gap, post.centered_gap, clusters=pre.clusters, **boot)
    rr = paired_stats(pre.reciprocal_rank, post.reciprocal_rank, **boot)
    hits = paired_stats(pre.hit.astype(float), post.hit.astype(float), **boot)
    mcnemar = mcnemar_exact(pre.hit, post.hit)
    p_rr = paired_randomisation(
        pre.reciprocal_rank, post.reciprocal_rank, n_resamples=config.n_boot, rng=config.seed
    )
    entry = {
        "group": group,
        "layer": layer,
        "layer_role": role,
        **sim.to_dict(),
        "mismatched_pre": pre.mismatched_mean,
        "mismatched_post": post.mismatched_mean,
        "gap_pre": raw_gap.mean_pre,
        "gap_post": raw_gap.mean_post,
        "gap_change": raw_gap.change,
        "gap_ci95_low": raw_gap.ci95_low,
        "gap_ci95_high": raw_gap.ci95_high,
        "p_gap": raw_gap.p,
        "centered_gap_pre": cgap.mean_pre,
        "centered_gap_post": cgap.mean_post,
        "centered_gap_change": cgap.change,
        "centered_gap_ci95_low": cgap.ci95_low,
        "centered_gap_ci95_high": cgap.ci95_high,
        "p_centered_gap": cgap.p,
        "p_at_1_pre": hits.mean_pre,
        "p_at_1_post": hits.mean_post,
        "p_p_at_1": mcnemar.p,
        "mrr_pre": rr.mean_pre,
        "mrr_post": rr.mean_post,
        "mrr_ci95_low": rr.ci95_low,
        "mrr_ci95_high": rr.ci95_high,
        "p_mrr": p_rr,
        "p_mrr_wilcoxon": rr.p_wilcoxon,
        "n_queries": rr.n,
    }
    where = _where(group, role, layer)
    common = {"group": group, "layer": layer, "layer_role": role}

    def change(text: str, metric: str, stats, p: float, n_clusters: int | None) -> Claim:
        return group_claims.change_claim(
            text,
            metric,
            stats,
            test=TESTS[metric],
            p=p,
            n_clusters=n_clusters,
            interval=INTERVALS["cluster" if n_clusters else "items"],
            **common,
        )

    claims = [
        change(f"TLI raises similarity of {where}", "similarity", sim, sim.p, sim.n_clusters),
        change(
            f"TLI raises the centred matched − mismatched gap of {where}",
            "centered_gap",
            cgap,
            cgap.p,
            cgap.n_clusters,
        ),
        change(f"TLI improves translation retrieval (MRR) of {where}", "mrr", rr, p_rr, None),
        change(f"TLI raises P@1 of {where}", "p_at_1", hits, mcnemar.p, None),
    ]
    claims[3].tests_disagree = False  # McNemar is the only test of P@1
    return entry, claims


def between_group_claims(
    measures: dict[str, tuple[Measures, Measures]], role: str, layer: int, config: EvaluateConfig
) -> tuple[list[Claim], list[dict[str, Any]]]:
    """Trained vs control at one layer, for similarity and centred gap: a difference and an equivalence claim
    (:func:`tli.group_claims.between_group_claims`)."""
    (t_pre, t_post), (c_pre, c_post) = measures["trained"], measures["control"]
    claims, rows = [], []
    where = f"at the {role} layer ({layer})"
    for metric, label in (("similarity", "similarity"), ("centered_gap", "the centred gap")):
        texts = (
            f"TLI raises {label} of trained pairs more than of unseen control pairs {where}",
            f"Unseen control pairs gain as much in {label} as trained pairs {where} "
            f"(within ±{config.equivalence_margin:.0%} of the trained gain)",
        )
        pair_claims, figures = group_claims.between_group_claims(
            getattr(t_post, metric) - getattr(t_pre, metric),
            getattr(c_post, metric) - getattr(c_pre, metric),
            clusters_a=t_pre.clusters,
            clusters_b=c_pre.clusters,
            texts=texts,
            group="trained − control",
            metric=metric,
            units="source-word means",
            equivalence_margin=config.equivalence_margin,
            n_boot=config.n_boot,
            seed=config.seed,
            alpha=config.alpha,
            nothing_gained="trained pairs gained nothing measurable: nothing to be equivalent to",
            layer=layer,
            layer_role=role,
            interval=INTERVALS["groups"],
        )
        claims.extend(pair_claims)
        rows.append({"metric": metric, "layer": layer, "layer_role": role, **figures})
    return claims, rows


def layer_curves(
    side: Side, index: PairIndex, *, progress: bool | None = False, desc: str = ""
) -> list[dict]:
    """Scan figures at every layer for one model state (see :func:`tli.scan.per_layer_metrics`)."""
    return per_layer_metrics(side.src, side.tgt, index, progress=progress, desc=desc or "per-layer figures")


def _per_pair_rows(
    lexicon: Lexicon, rows: np.ndarray, group: str, role: str, layer: int, pre: Measures, post: Measures
):
    return [
        {
            "source": lexicon.pairs[row].source,
            "target": lexicon.pairs[row].target,
            "group": group,
            "layer": layer,
            "layer_role": role,
            "sim_pre": float(pre.similarity[k]),
            "sim_post": float(post.similarity[k]),
            "gap_pre": float(pre.gap[k]),
            "gap_post": float(post.gap[k]),
            "centered_gap_pre": float(pre.centered_gap[k]),
            "centered_gap_post": float(post.centered_gap[k]),
        }
        for k, row in enumerate(rows)
    ]


def run_evaluation(
    loaded: LoadedModel,
    lexicon: Lexicon,
    meta: dict[str, Any],
    config: EvaluateConfig,
    *,
    base_cache: EmbeddingCache | None = None,
    progress: bool | None = None,
) -> tuple[dict[str, Any], Embeddings]:
    """Every figure and judged claim of one adapter's evaluation (no file output).

    Args:
        lexicon: pairs with groups ``trained`` / ``control`` (see :func:`groups_for`).
        base_cache: base-model embeddings to reuse (``tli run`` passes its scan's).
        progress: progress bars, or log lines off a terminal (None); False = silent.

    Returns:
        ``(results, embeddings)``: the JSON-ready results and the embeddings for the plots.
    """
    name = f"evaluation (seed {meta.get('config', {}).get('seed', 0)})"
    with stage(name, enabled=progress) as bar:
        return _run_evaluation(loaded, lexicon, meta, config, base_cache, progress, bar, name)


def small_group_warnings(lexicon: Lexicon, n_claims: int) -> list[str]:
    """A word for each group too small for its verdicts to mean much (fewer than ``SMALL_GROUP`` pairs)."""
    warnings = []
    for group in GROUPS:
        pairs = [p for p in lexicon if p.group == group]
        words = len({p.source for p in pairs})
        if 2 <= len(pairs) < SMALL_GROUP:
            warnings.append(
                f"only {len(pairs)} {group} pairs ({words} source words): the {n_claims} claims judge them on too "
                f"few pairs to mean much (each verdict's n is in the report); use at least {SMALL_GROUP} {group} "
                "pairs — a lexicon of a few hundred pairs"
            )
    return warnings


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
    results = {
        "target_layer": target_layer,
        "final_layer": final_layer,
        "layer_roles": [role for role, _ in layer_roles(target_layer, final_layer)],
        "evaluation": evaluation,
        "between_groups": between,
        "claims": [c.to_dict() for c in claims],
        "bli": bli,
        "statistics": {
            "correction": config.correction,
            "alpha": config.alpha,
            "n_claims": len(claims),
            "equivalence_margin": config.equivalence_margin,
            "n_boot": config.n_boot,
        },
        "per_pair": per_pair,
        "skipped_groups": skipped,
        "skipped_pairs": skipped_pairs,
        "layers_pre": layer_curves(base, index, progress=progress, desc=f"{name}: layer curves before"),
        "layers_post": layer_curves(adapted, index, progress=progress, desc=f"{name}: layer curves after"),
        "warnings": warnings,
        "pooling": embed_config.describe() | bos_record(loaded.tokenizer, embed_config),
        "precision": "float32 embeddings" if loaded.dtype == torch.float32 else f"{loaded.dtype} embeddings",
        "timing": {"load_seconds": loaded.load_seconds, "evaluate_seconds": time.perf_counter() - start},
    }
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
            per_pair.extend(_per_pair_rows(lexicon, rows, group, role, layer, pre, post))
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


def groups_for(
    adapter: str | Path, meta: dict[str, Any], lexicon: Lexicon | None
) -> tuple[Lexicon, dict[str, Any]]:
    """The trained / control groups an adapter must be judged on.

    The split recorded with the adapter decides: a pair trained on is ``trained``; validation pairs are left
    out; any other pair is ``control`` only when it shares no source, target or word with the training pairs
    (a lexicon file given to ``evaluate`` is never re-split). Adapters without a recorded split fall back to
    the training lexicon's split.
    """
    recorded = read_recorded_split(adapter)
    if recorded is None:
        source = lexicon if lexicon is not None else resolve_lexicon(meta["config"].get("lexicon"))
        config = meta["config"]
        grouped = (
            source
            if source.has_split()
            else source.with_split(config["control_fraction"], config["split_seed"])
        )
        return grouped, {"origin": "re-split (adapter without a recorded split)"}
    if lexicon is None:
        return recorded.lexicon(), {"origin": "adapter", **recorded.counts()}
    grouped, record = regroup_as_trained(lexicon, recorded)
    if record["n_control_dropped_as_seen"]:
        log.warning(
            "warning: %d pair(s) of %s share a word with the training pairs and are not counted as control",
            record["n_control_dropped_as_seen"],
            lexicon.path,
        )
    return grouped, record


def aggregate(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures over seeds: per (group, layer) entry the mean and sd of every number (a CI bound's mean is the
    mean of the per-seed bounds, not a CI), and the claims across seeds (:func:`tli.claims.across_seeds`:
    random-effects estimate, across-seed CI and p, judged together with the run's correction)."""
    first = per_seed[0]
    evaluation = []
    for i, entry in enumerate(first["evaluation"]):
        versions = [seed["evaluation"][i] for seed in per_seed]
        row = dict(entry)
        for key, value in entry.items():
            if isinstance(value, float):
                values = np.array([v[key] for v in versions], dtype=float)
                finite = values[np.isfinite(values)]
                row[key] = float(finite.mean()) if finite.size else float("nan")
                row[f"{key}_sd"] = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
        evaluation.append(row)
    statistics = first.get("statistics", {})
    claims = across_seeds(
        [seed["claims"] for seed in per_seed],
        correction=statistics.get("correction", "holm"),
        alpha=statistics.get("alpha", 0.05),
    )
    return {
        "evaluation": evaluation,
        "claims": claims,
        "bli": aggregate_bli([seed.get("bli") or [] for seed in per_seed]),
    }


SHARED_BY_SEEDS = ("target_layer", "final_layer", "layer_roles", "statistics", "pooling", "model", "lexicon")
"""What every seed of one evaluation shares (same base model, lexicon and recipe): taken from the first."""


def seed_summary(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation over seeds (``tli evaluate`` with several adapters, ``tli run --seeds``): the figures
    and claims over seeds (:func:`aggregate`), each seed's own, what the seeds share, the groups left out
    and every seed's warnings (once each)."""
    first = per_seed[0]
    return {
        "seeds": [r["seed"] for r in per_seed],
        **aggregate(per_seed),
        "per_seed": [{k: r[k] for k in ("seed", "evaluation", "claims", "adapter")} for r in per_seed],
        **{key: first[key] for key in SHARED_BY_SEEDS},
        "skipped_groups": first["skipped_groups"],
        "warnings": list(dict.fromkeys(w for r in per_seed for w in r.get("warnings", []))),
    }


def aggregate_bli(per_seed: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """BLI figures over seeds, per layer and system: each figure's mean over seeds and its sd (``<key>_sd``,
    ``ddof=1``); each interval ``[min of the seeds' lows, max of their highs]`` (the envelope of the per-seed
    95 % intervals), so no seed's interval is narrower than the one reported. One seed: its rows unchanged.

    The base model and the Procrustes map do not depend on the training seed (sd 0); the adapted model does.
    """
    if len(per_seed) <= 1 or not all(per_seed):
        return [dict(row) for row in per_seed[0]] if per_seed else []
    rows = []
    for versions in zip(*per_seed, strict=True):
        row = {k: v for k, v in versions[0].items() if k != "systems"} | {"n_seeds": len(versions)}
        row["systems"] = {}
        for system, first in versions[0]["systems"].items():
            reports = [v["systems"][system] for v in versions]
            combined: dict[str, Any] = {}
            for key, value in first.items():
                if not _is_number(value) or key.endswith("_chance") or key in _BLI_FIXED:
                    combined[key] = value  # the same in every seed: sizes, chance levels, the method
                    continue
                values = np.array([r[key] for r in reports], dtype=float)
                if key.endswith("_ci_low"):
                    combined[key] = float(values.min())
                elif key.endswith("_ci_high"):
                    combined[key] = float(values.max())
                else:
                    combined[key], combined[f"{key}_sd"] = float(values.mean()), float(values.std(ddof=1))
            row["systems"][system] = combined
        rows.append(row)
    return rows


_BLI_FIXED = ("n_queries", "n_candidates", "confidence", "csls_k")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def evaluate(
    adapter: str | Path | list[str | Path],
    *,
    model: str | LoadedModel | None = None,
    lexicon: str | Path | Lexicon | None = None,
    out: str | Path | None = None,
    progress: bool | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate TLI adapter(s) against their base model and write the run directory.

    Several adapters (one per training seed, or the directory of a ``tli train --seeds`` run) give per-seed
    evaluations in ``out/seed-<k>/`` and an aggregate in ``out``: mean ± sd of every figure and the claims
    that hold across seeds.

    Writes ``results.json`` (``evaluation`` entries per group and layer, ``claims`` with corrected verdicts),
    ``pairs.csv`` (per pair: source, target, group, layer, similarity and gaps before/after),
    ``report.md`` and plots.

    Args:
        adapter: ``RUN/adapter`` of ``tli train``, a list of them, or a multi-seed training directory.
        model: base model spec or a loaded model with this adapter attached; None = recorded base model.
        lexicon: word pairs; None = the split recorded with the adapter.
        out: run directory (nothing is written when None).
        progress: progress bars on a terminal, log lines every 30 s otherwise (None); False = silent.
        **options: other :class:`~tli.config.EvaluateConfig` fields.
    """
    adapters = expand_adapters(adapter)
    config = EvaluateConfig(
        adapter=[str(a) for a in adapters], model=None if isinstance(model, LoadedModel) else model, **options
    )
    configure_threads(config.threads)
    metas = [read_adapter_meta(a) for a in adapters]
    if out is not None:
        prepare_run_dir(out, overwrite=config.overwrite)
    given = (
        resolve_lexicon(lexicon if lexicon is not None else config.lexicon)
        if (lexicon or config.lexicon)
        else None
    )
    per_seed = []
    loaded = model if isinstance(model, LoadedModel) else None
    caches: dict[str, EmbeddingCache] = {}  # base embeddings, shared by adapters of one base and recipe
    for path, meta in zip(adapters, metas, strict=True):
        if loaded is None or loaded.adapter != str(path):
            loaded = _adapted(path, meta, config, loaded)
        grouped, split = groups_for(path, meta, given)
        key = json.dumps([meta["base_model"]["fingerprint"], meta["embed"]], sort_keys=True)
        results, embeddings = run_evaluation(
            loaded, grouped, meta, config, base_cache=caches.setdefault(key, {}), progress=progress
        )
        seed = meta["config"].get("seed", 0)
        results.update(provenance("evaluate", asdict(config), config.seed))
        results.update(
            seed=seed,
            split=split,
            model=loaded.describe(),
            lexicon=lexicon_record(grouped),
            adapter={"path": str(path), "trained_with": meta["config"]},
        )
        if out is not None:
            where = Path(out) / f"seed-{seed}" if len(adapters) > 1 else Path(out)
            with stage(f"report and plots (seed {seed})", enabled=progress):
                write_evaluate_run(where, results, embeddings)
        per_seed.append(results)
    if len(per_seed) == 1:
        return per_seed[0]
    summary = {**seed_summary(per_seed), **provenance("evaluate", asdict(config), config.seed)}
    if out is not None:
        write_seeds_summary(Path(out), summary)
    return summary


def _adapted(
    path: Path, meta: dict[str, Any], config: EvaluateConfig, previous: LoadedModel | None
) -> LoadedModel:
    """The base model with this adapter: reuse a loaded base (same fingerprint) when one is at hand."""
    if previous is not None and previous.fingerprint.get("sha256") == meta["base_model"]["fingerprint"].get(
        "sha256"
    ):
        previous.model = previous.model.unload() if hasattr(previous.model, "unload") else previous.model
        return attach_to(previous, path)
    return load_adapted_for(path, config, meta)


def expand_adapters(adapter: str | Path | list[str | Path]) -> list[Path]:
    """Adapter directories from a path, a list, or a ``tli train --seeds`` run (its ``seed-*/adapter``)."""
    items = adapter if isinstance(adapter, (list, tuple)) else [adapter]
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if (path / "adapter_config.json").is_file():
            found.append(path)
        elif (path / "adapter" / "adapter_config.json").is_file():
            found.append(path / "adapter")
        elif seeds := sorted(path.glob("seed-*/adapter"), key=lambda p: int(p.parent.name.split("-")[1])):
            found.extend(seeds)
        else:
            found.append(path)  # read_adapter_meta names what is missing
    if not found:
        raise ConfigError("--adapter: no adapter given")
    for adapter in found:
        run = adapter.parent
        if (run / "checkpoints").is_dir():  # the adapter of a tli train run: that run must have finished
            require_complete(run, "training run", f"finish it with `tli train --resume --out {run}`")
    return found
