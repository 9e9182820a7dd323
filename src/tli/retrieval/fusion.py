"""Rank fusion of two or more runs: reciprocal rank fusion from ranx.

Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009):
``RRF(d) = Σ_{r ∈ runs} 1 / (k + rank_r(d))`` over the runs that retrieve ``d`` (``k = 60``), computed by
``ranx.fuse(method="rrf")`` without score normalisation (RRF uses ranks only). A query that only some runs
retrieve anything for is fused over those runs. RRF ties are common (a document first in one run and
second in the other scores the same as one second and first); tli breaks them by document id and writes
untied scores (:func:`tli.retrieval.trec.untie`), so every IR tool reads the same fused ranking.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from tli.errors import ConfigError
from tli.retrieval.libraries import need
from tli.retrieval.trec import Run, untie

RRF_K = 60


def _ranked_scores(results: Mapping[str, float], depth: int) -> dict[str, float]:
    ordered = sorted(results.items(), key=lambda item: (-item[1], item[0]))[:depth]
    untied = untie(np.array([score for _, score in ordered], dtype=float)) if ordered else []
    return {doc: float(score) for (doc, _), score in zip(ordered, untied, strict=True)}


def rrf(runs: Sequence[Mapping[str, Mapping[str, float]]], *, k: int = RRF_K, depth: int = 100) -> Run:
    """Reciprocal rank fusion of ``runs`` (ranx), cut to ``depth`` documents per query, untied.

    Raises:
        ConfigError: fewer than two runs, or ``k`` / ``depth`` below 1.
    """
    ranx = need("ranx")
    RanxRun, fuse = ranx.Run, ranx.fuse

    if len(runs) < 2:
        raise ConfigError(f"rank fusion needs at least two runs, got {len(runs)}")
    if k < 1 or depth < 1:
        raise ConfigError(f"rrf needs k >= 1 and depth >= 1, got k={k}, depth={depth}")
    queries = list(dict.fromkeys(q for run in runs for q, docs in run.items() if docs))
    fused: Run = {}
    groups: dict[tuple[int, ...], list[str]] = {}
    for query in queries:  # which runs retrieve something for each query
        groups.setdefault(tuple(i for i, run in enumerate(runs) if run.get(query)), []).append(query)
    for members, group in groups.items():
        if len(members) == 1:  # RRF of a single run: 1 / (k + rank)
            only = runs[members[0]]
            for query in group:
                ordered = sorted(only[query].items(), key=lambda item: (-item[1], item[0]))
                fused[query] = {doc: 1.0 / (k + rank) for rank, (doc, _) in enumerate(ordered, start=1)}
            continue
        inputs = [RanxRun({q: dict(runs[i][q]) for q in group}) for i in members]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fuse(runs=inputs, norm=None, method="rrf", params={"k": k})
        table = result.to_dict()
        for query in group:
            fused[query] = {doc: float(score) for doc, score in table.get(query, {}).items()}
    return {query: _ranked_scores(fused[query], depth) for query in queries}
