"""The whole BLI evaluation of one layer (:func:`bli_evaluate`, ``tli bli``), and the retrieval of the unseen
control words inside ``tli evaluate`` (:func:`control_retrieval`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tli.bli.embeddings import embed_layer
from tli.bli.procrustes import fit_procrustes, procrustes_baseline
from tli.bli.retrieval import METHODS, VocabularyRetrieval
from tli.bli.vocabulary import resolve_vocabulary
from tli.embed import EmbedConfig
from tli.errors import ConfigError
from tli.lexicon import Lexicon, read_lexicon
from tli.metrics import CSLS_K, PairIndex
from tli.models import LoadedModel


def train_test_split(lexicon: Lexicon, test_lexicon: Lexicon | None) -> tuple[Lexicon, Lexicon, int]:
    """``(train, test, n_dropped)``: the lexicon's trained/control sides, or ``lexicon`` against
    ``test_lexicon`` with the training pairs whose source is a test source dropped (BLI test words must be
    unseen in training); ``n_dropped`` counts them."""
    if test_lexicon is None:
        train, test = lexicon.trained_and_control()
        return train, test, 0
    train = lexicon.subset("trained") if lexicon.has_split() else lexicon
    test_sources = set(test_lexicon.sources)
    kept = [pair for pair in train if pair.source not in test_sources]
    if not kept:
        raise ConfigError("--test-lexicon: every training pair has a test source word; nothing left to fit")
    dropped = len(train) - len(kept)
    return Lexicon(kept, train.source_lang, train.target_lang, train.path), test_lexicon, dropped


def bli_evaluate(
    loaded: LoadedModel,
    lexicon: Lexicon,
    *,
    layer: int,
    embed_config: EmbedConfig,
    vocabulary: str | os.PathLike | Sequence[str] | None = None,
    test_lexicon: Lexicon | str | os.PathLike | None = None,
    csls_k: int = CSLS_K,
    procrustes_center: bool = False,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """BLI at one layer: the test (control) sources retrieve their translations among a full vocabulary.

    Queries are the unique test sources: the control side of ``lexicon`` (its stored split, else its default
    seeded split; apply ``lexicon.with_split(...)`` first to match a training run), or ``test_lexicon``.
    Candidates are ``vocabulary`` (see :func:`resolve_vocabulary`) ∪ every target of the lexicon, in that
    order. Reported: plain cosine and CSLS in the model's space, and the same after an orthogonal
    Procrustes map fitted on the trained pairs at this layer — the cheap baseline TLI must beat.

    With ``embed_config.center`` each side is centred over the words embedded here: all sources (train and
    test) and all candidates; the centring mean therefore depends on the vocabulary.

    Returns:
        A JSON-ready dict: ``layer``, ``pooling``, sizes, ``vocabulary`` provenance, ``reports``
        (``cosine``, ``csls``, ``procrustes_cosine``, ``procrustes_csls``: :meth:`RetrievalReport.to_dict`)
        and ``queries`` (per query: gold, rank and top-1 word for each report).
    """
    if isinstance(test_lexicon, (str, os.PathLike)):
        test_lexicon = read_lexicon(test_lexicon)
    train, test, dropped = train_test_split(lexicon, test_lexicon)
    vocab_words, vocab_record = resolve_vocabulary(vocabulary, loaded.tokenizer)
    words = BliWords.of(train, test, vocab_words)

    src = embed_layer(words.sources, loaded, embed_config, layer, progress=progress)  # (n_sources, H)
    cand = embed_layer(words.candidates, loaded, embed_config, layer, progress=progress)  # (n_candidates, H)
    spaces = _retrieval_spaces(words, src, cand, train, test, center=procrustes_center, chunk_size=chunk_size)

    per_query = _query_rows(words.queries, test)
    reports = _score_spaces(
        spaces, per_query, words.candidates, csls_k=csls_k, confidence=confidence, n_boot=n_boot, seed=seed
    )
    return {
        "layer": layer,
        "pooling": embed_config.describe(),
        "csls_k": csls_k,
        "confidence": confidence,
        "n_train_pairs": len(train),
        "n_test_pairs": len(test),
        "n_train_pairs_dropped_overlap": dropped,
        "n_queries": len(words.queries),
        "n_candidates": len(words.candidates),
        "vocabulary": {
            **vocab_record,
            "n_words": len(vocab_words),
            "n_gold_added": len(words.candidates) - len(vocab_words),
        },
        "procrustes": {"center": procrustes_center, "fitted_on_pairs": len(train)},
        "reports": reports,
        "queries": per_query,
    }


@dataclass(frozen=True)
class BliWords:
    """The words one BLI evaluation embeds, each list deduplicated in first-seen order."""

    candidates: list[str]
    """The vocabulary's words, then every training and test target."""
    sources: list[str]
    """The test sources (the queries), then the training sources: one embedding pass serves both."""
    queries: list[str]
    """The unique test sources: the first ``len(queries)`` rows of ``sources``."""

    @classmethod
    def of(cls, train: Lexicon, test: Lexicon, vocab_words: Sequence[str]) -> BliWords:
        return cls(
            candidates=list(dict.fromkeys([*vocab_words, *train.targets, *test.targets])),
            sources=list(dict.fromkeys([*test.sources, *train.sources])),
            queries=list(dict.fromkeys(test.sources)),
        )

    def rows(self, lexicon: Lexicon) -> tuple[list[int], list[int]]:
        """``(source rows, candidate rows)`` of each pair of ``lexicon``."""
        src_row = {word: i for i, word in enumerate(self.sources)}
        cand_row = {word: i for i, word in enumerate(self.candidates)}
        return [src_row[p.source] for p in lexicon], [cand_row[p.target] for p in lexicon]


def _retrieval_spaces(
    words: BliWords,
    src: torch.Tensor,
    cand: torch.Tensor,
    train: Lexicon,
    test: Lexicon,
    *,
    center: bool,
    chunk_size: int | None,
) -> dict[str, VocabularyRetrieval]:
    """The test queries' retrieval in the model's own space (``none``) and after an orthogonal Procrustes map
    fitted on the training pairs (``procrustes``)."""
    query_emb = src[: len(words.queries)]  # (n_queries, H): test sources come first in `sources`
    test_src, test_cand = words.rows(test)
    gold = PairIndex(
        src=torch.tensor(test_src),
        tgt=torch.tensor(test_cand),
        n_src=len(words.queries),
        n_tgt=len(words.candidates),
    )
    train_src, train_cand = words.rows(train)
    procrustes = fit_procrustes(src[train_src], cand[train_cand], center=center)
    return {
        "none": VocabularyRetrieval(query_emb, cand, gold, chunk_size=chunk_size),
        "procrustes": VocabularyRetrieval(
            procrustes.map_source(query_emb), procrustes.prepare_target(cand), gold, chunk_size=chunk_size
        ),
    }


def _query_rows(queries: list[str], test: Lexicon) -> list[dict[str, Any]]:
    """One row per query, ``{"source", "gold"}``: its gold translations in lexicon order."""
    gold_words: dict[str, list[str]] = {q: [] for q in queries}
    for pair in test:
        gold_words[pair.source].append(pair.target)
    return [{"source": q, "gold": gold_words[q]} for q in queries]


def _score_spaces(
    spaces: dict[str, VocabularyRetrieval],
    per_query: list[dict[str, Any]],
    candidates: list[str],
    *,
    csls_k: int,
    confidence: float,
    n_boot: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """The :func:`retrieval_report` of every method (cosine, CSLS) in every space (the model's, Procrustes):
    ``cosine``, ``csls``, ``procrustes_cosine``, ``procrustes_csls``. Each query's rank and top-1 word under
    each report are added to its row of ``per_query``."""
    reports: dict[str, dict[str, Any]] = {}
    for mapping, retrieval in spaces.items():
        for method in METHODS:
            name = method if mapping == "none" else f"{mapping}_{method}"
            found = retrieval.retrieve(method, csls_k)
            reports[name] = retrieval.report(
                method,
                csls_k=csls_k,
                mapping=mapping,
                confidence=confidence,
                n_boot=n_boot,
                rng=seed,
                ranks=found.ranks,
            ).to_dict()
            for row, rank, top in zip(per_query, found.ranks.tolist(), found.top1.tolist(), strict=True):
                row[f"{name}_rank"], row[f"{name}_top1"] = rank, candidates[top]
    return reports


def control_retrieval(
    base: tuple[torch.Tensor, torch.Tensor],
    adapted: tuple[torch.Tensor, torch.Tensor],
    index: PairIndex,
    groups: Sequence[str],
    *,
    extra_base: torch.Tensor | None = None,
    extra_adapted: torch.Tensor | None = None,
    csls_k: int = CSLS_K,
    n_boot: int = 10_000,
    rng: np.random.Generator | int | None = 0,
) -> dict[str, Any]:
    """BLI figures at one layer for the unseen control words: base, TLI-adapted, and the Procrustes baseline.

    Queries are the control pairs' source words; candidates are every lexicon target (plus ``extra_*``
    vocabulary rows, the same words embedded by each model state); the gold answers of a query are its
    control translations. The Procrustes map is fitted on the *trained* pairs' base-model embeddings at the
    same layer, with MUSE's preprocessing (normalise, centre, normalise) — the classic, cheap baseline that TLI
    must beat on unseen words. (Both languages live in one model space here, so the identity map is a strong
    competitor: the base model's own retrieval is reported beside it.)

    Args:
        base, adapted: ``(src, tgt)`` embeddings ``(n_src, H)``, ``(n_tgt, H)`` of each model state.
        index: the lexicon's pairs as indices.
        groups: ``"trained"`` / ``"control"`` per pair.

    Returns:
        JSON-ready: ``n_queries``, ``n_candidates`` and one :class:`RetrievalReport` dict per system
        (``base``, ``base_csls``, ``procrustes``, ``adapted``, ``adapted_csls``).
    """
    groups = np.asarray(groups)
    control = np.flatnonzero(groups == "control")
    trained = np.flatnonzero(groups == "trained")
    queries = torch.unique(index.src[control])  # source rows of the control words
    position = {int(q): i for i, q in enumerate(queries)}
    gold = PairIndex(
        src=torch.tensor([position[int(s)] for s in index.src[control]]),
        tgt=index.tgt[control],
        n_src=len(queries),
        n_tgt=index.n_tgt + (0 if extra_base is None else len(extra_base)),
    )

    def candidates(tgt: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        return tgt if extra is None or not len(extra) else torch.cat([tgt, extra])

    reports: dict[str, Any] = {}
    for state, (src, tgt), extra in (("base", base, extra_base), ("adapted", adapted, extra_adapted)):
        retrieval = VocabularyRetrieval(src[queries], candidates(tgt, extra), gold)
        reports[state] = retrieval.report("cosine", n_boot=n_boot, rng=rng).to_dict()
        reports[f"{state}_csls"] = retrieval.report("csls", csls_k=csls_k, n_boot=n_boot, rng=rng).to_dict()
    src_base, tgt_base = base
    # MUSE's supervised recipe: normalise, mean-centre, normalise, then the orthogonal Procrustes map.
    reports["procrustes"] = procrustes_baseline(
        src_base[index.src[trained]],
        tgt_base[index.tgt[trained]],
        src_base[queries],
        candidates(tgt_base, extra_base),
        gold,
        center=True,
        n_boot=n_boot,
        rng=rng,
    ).to_dict()
    return {"n_queries": int(len(queries)), "n_candidates": int(gold.n_tgt), "systems": reports}
