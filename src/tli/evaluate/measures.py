"""Per-pair figures of one group at one layer, and the claims they support.

Per group (``trained``, ``control``) and reported layer (the target layer and the final layer; once when
they coincide), per pair or per query:

- ``similarity``: ``cos(s_k, t_k)`` — the published statistic;
- ``gap``: ``cos(s_k, t_k) − mean_{j ∉ gold(s_k)} cos(s_k, t_j)`` — similarity beyond what any word gets;
- ``centered gap``: the same after mean-centring each language at that layer (:func:`tli.metrics.centre`) —
  scale-free, so a training run that collapses every cosine towards 1 cannot fake or hide a change;
- ``reciprocal rank`` and ``P@1`` hit of each source word's best translation among all lexicon targets.

Claims: within each group similarity, centred gap, MRR and P@1 rise (:func:`within_group`); between groups,
trained pairs gain more than control pairs, and control pairs gain as much within a margin
(:func:`between_group_claims`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tli import group_claims
from tli.claims import Claim
from tli.config import EvaluateConfig
from tli.evaluate.embeddings import Side
from tli.lexicon import Lexicon
from tli.metrics import PairIndex, centre, retrieval_ranks
from tli.stats import mcnemar_exact, paired_randomisation, paired_stats

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


def per_pair_rows(
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
