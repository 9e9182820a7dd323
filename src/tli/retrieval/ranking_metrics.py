"""Retrieval metrics from ranx, per query and over a query set, and ranx's paired t-test.

Every figure comes from `ranx <https://github.com/AmenRa/ranx>`_ (``ranx.evaluate``), never from
hand-written formulas, so it can be recomputed from the cell's TREC run and qrels files by ranx, trec_eval or
ir_measures. For a query ``q`` with relevant set ``R_q`` (relevance > 0) and ranking ``d_1, d_2, …``:

- ``recall@k = |R_q ∩ {d_1..d_k}| / |R_q|``;
- ``mrr@k = 1 / min{i ≤ k : d_i ∈ R_q}`` (0 when no relevant passage is in the top k);
- ``ndcg@k = DCG@k / IDCG@k`` with ``DCG@k = Σ_{i≤k} rel(d_i) / log2(i + 1)`` and ``IDCG@k`` the DCG of
  the ideal ordering (ranx's ``ndcg``, linear gains as trec_eval).

The score of a query set is the mean over its queries; a query with no retrieved document scores 0 (ranx's
``make_comparable``), so a system cannot gain by returning nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from tli.retrieval.libraries import need

METRICS = ("recall@1", "recall@5", "recall@10", "recall@100", "mrr@10", "mrr@100", "ndcg@10")
"""The metrics of every retrieval cell, named as ranx (and ``results.json``) name them."""
CURVE_METRIC = "mrr@10"
"""The metric of the per-layer retrieval curve."""


def per_query(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = METRICS,
) -> dict[str, dict[str, float]]:
    """``{metric: {query id: score}}`` for every query of ``qrels`` (ranx ``evaluate``, per query).

    Queries of ``run`` absent from ``qrels`` are ignored; queries of ``qrels`` absent from ``run`` score 0.
    """
    ranx = need("ranx")
    Qrels, Run, evaluate = ranx.Qrels, ranx.Run, ranx.evaluate
    kept = {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items() if q in qrels and docs}
    if not kept:  # nothing retrieved for any query: every metric is 0 (ranx cannot build an empty run)
        return {m: dict.fromkeys(qrels, 0.0) for m in metrics}
    qrels_obj = Qrels({q: {d: int(r) for d, r in docs.items()} for q, docs in qrels.items()})
    run_obj = Run(kept)
    with warnings.catch_warnings():
        # ranx casts hashed ids between uint64 and int64 inside numba; that loses no information it uses.
        warnings.simplefilter("ignore")
        evaluate(qrels_obj, run_obj, list(metrics), return_mean=False, make_comparable=True)
    return {m: {q: float(run_obj.scores[m][q]) for q in qrels} for m in metrics}


def mean_scores(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = METRICS,
) -> dict[str, float]:
    """Mean of :func:`per_query` over the queries of ``qrels``."""
    scores = per_query(qrels, run, metrics)
    return {m: float(np.mean(list(scores[m].values()))) for m in metrics}


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the paired Student t-test of per-query scores, from ranx.

    ``t = mean(d) / (sd(d) / sqrt(n))`` with ``d = a − b``, ``n − 1`` degrees of freedom; 1.0 when the two
    systems score every query alike (no variance to test).
    """
    paired_student_t_test = need("ranx.statistical_tests").paired_student_t_test

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or np.allclose(x, y):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p_value, _ = paired_student_t_test(x, y)
    return float(p_value) if np.isfinite(p_value) else 1.0
