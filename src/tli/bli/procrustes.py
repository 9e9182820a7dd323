"""The classic BLI baseline: an orthogonal Procrustes map fitted on the trained pairs at the same layer.

A TLI adapter must beat this cheap linear map on unseen words (:func:`procrustes_baseline`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import orthogonal_procrustes

from tli.bli.estimates import RetrievalReport
from tli.bli.retrieval import VocabularyRetrieval
from tli.metrics import CSLS_K, PairIndex


def _unit(x: torch.Tensor, mean: torch.Tensor | None = None) -> torch.Tensor:
    """Rows L2-normalised, then (when ``mean`` is given) centred and normalised again (MUSE's
    ``renorm,center,renorm``)."""
    x = torch.nn.functional.normalize(torch.as_tensor(x).float(), dim=-1)
    return x if mean is None else torch.nn.functional.normalize(x - mean, dim=-1)


@dataclass(frozen=True)
class ProcrustesMap:
    """An orthogonal map from the source to the target space, with the preprocessing it was fitted on."""

    weight: torch.Tensor
    """``(H, H)`` orthogonal ``W``: a source row ``x`` maps to ``x W``."""
    src_mean: torch.Tensor | None
    """``(H,)`` mean of the normalised training sources when fitted with ``center=True``, else None."""
    tgt_mean: torch.Tensor | None
    """``(H,)`` mean of the normalised training targets when fitted with ``center=True``, else None."""

    def map_source(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, H)`` source embeddings → preprocessed as in fitting, then ``x W`` (unit rows)."""
        return _unit(x, self.src_mean) @ self.weight

    def prepare_target(self, y: torch.Tensor) -> torch.Tensor:
        """``(n, H)`` target embeddings → preprocessed as in fitting (unit rows)."""
        return _unit(y, self.tgt_mean)


def fit_procrustes(src: torch.Tensor, tgt: torch.Tensor, *, center: bool = False) -> ProcrustesMap:
    """Orthogonal Procrustes (Schönemann, 1966; the supervised map of MUSE and VecMap).

    ``W = argmin_{WᵀW = I} ‖X W − Y‖_F = U Vᵀ`` with ``U Σ Vᵀ = svd(Xᵀ Y)``, computed by
    ``scipy.linalg.orthogonal_procrustes`` in float64. ``X`` and ``Y`` are the L2-normalised embeddings of
    the training pairs (row ``k`` of ``src`` translates to row ``k`` of ``tgt``); with ``center=True``
    each side is also mean-centred over its training rows and renormalised, and the returned map applies
    the same preprocessing to new words.

    Args:
        src: ``(n_pairs, H)`` source embeddings.
        tgt: ``(n_pairs, H)`` target embeddings.
    """
    if src.shape != tgt.shape or src.ndim != 2 or len(src) == 0:
        raise ValueError(f"src {tuple(src.shape)} and tgt {tuple(tgt.shape)} must both be (n_pairs ≥ 1, H)")
    src_mean = _unit(src).mean(dim=0) if center else None
    tgt_mean = _unit(tgt).mean(dim=0) if center else None
    x, y = _unit(src, src_mean), _unit(tgt, tgt_mean)
    weight, _ = orthogonal_procrustes(x.double().numpy(), y.double().numpy())
    return ProcrustesMap(torch.from_numpy(weight).float(), src_mean, tgt_mean)


def procrustes_baseline(
    src_train: torch.Tensor,
    tgt_train: torch.Tensor,
    src_test: torch.Tensor,
    tgt_candidates: torch.Tensor,
    gold: PairIndex,
    *,
    method: str = "cosine",
    center: bool = False,
    csls_k: int = CSLS_K,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    rng: np.random.Generator | int | None = 0,
    chunk_size: int | None = None,
) -> RetrievalReport:
    """Fit :func:`fit_procrustes` on the trained pairs, map the test queries, retrieve among candidates.

    Args:
        src_train, tgt_train: ``(n_pairs, H)`` embeddings of the trained pairs, row-aligned.
        src_test: ``(n_queries, H)`` embeddings of the test (control) source words.
        tgt_candidates: ``(n_candidates, H)`` candidate target embeddings.
        gold: test query → gold candidate indices (as for :class:`VocabularyRetrieval`).
    """
    mapping = fit_procrustes(src_train, tgt_train, center=center)
    retrieval = VocabularyRetrieval(
        mapping.map_source(src_test), mapping.prepare_target(tgt_candidates), gold, chunk_size=chunk_size
    )
    return retrieval.report(
        method, csls_k=csls_k, mapping="procrustes", confidence=confidence, n_boot=n_boot, rng=rng
    )
