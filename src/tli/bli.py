"""Bilingual lexicon induction (BLI) conventions: the evaluation a MUSE / VecMap reader expects.

Four things the lexicon-only figures of :mod:`tli.metrics` do not give:

1. **Retrieval over a full target vocabulary.** Queries (source words) are ranked against every word of a
   candidate vocabulary — a word-list file or the tokenizer's whole words — plus every gold target, not
   only against the lexicon's targets. :class:`VocabularyRetrieval` computes the ranks in blocks of
   queries, so a 50k-word vocabulary never needs a full ``(queries, candidates)`` matrix in memory.
2. **Precision@k with an interval and its chance level**, and MRR with a bootstrap interval
   (:class:`RetrievalReport`).
3. **The classic baseline:** an orthogonal Procrustes map fitted on the trained pairs at the same layer
   (:func:`fit_procrustes`, :func:`procrustes_baseline`). A TLI adapter must beat this cheap linear map.
4. **Export** of one layer's embeddings as ``.npy``, a word list and word2vec text (``.vec``), the formats
   other BLI tools read (:func:`export_embeddings`).

:func:`bli_evaluate` ties them together for one layer of a loaded model.
"""

from __future__ import annotations

import io
import math
import os
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.stats import binomtest, hypergeom

from tli.embed import EmbedConfig, center_and_normalise, embed_all_layers
from tli.errors import ConfigError, DataError
from tli.io import atomic_write_bytes, atomic_write_text, sha256_file
from tli.lexicon import Lexicon, read_lexicon
from tli.limits import MAX_TABLE_BYTES, MAX_WORD_CHARS, too_big, too_long
from tli.metrics import CSLS_K, PairIndex
from tli.models import LoadedModel
from tli.stats import bootstrap_ci_mean

METHODS = ("cosine", "csls")
WORD_BOUNDARY_MARKERS = ("Ġ", "▁")
"""Word-start markers of byte-level BPE (GPT-2, Llama-3, Qwen2: ``Ġ`` = a space) and SentencePiece
(Llama-2, Gemma, Mistral: ``▁``)."""
TOKENIZER_VOCABULARY = "tokenizer"
"""``vocabulary=`` value meaning "the tokenizer's whole words" (a file of that name: ``./tokenizer``)."""
PRECISION_KS = (1, 5, 10)
_BLOCK_ELEMENTS = 1 << 24  # scores per block (64 MiB of float32) when chunk_size is not given
_MARKS = ("Mn", "Mc")  # combining marks, part of a written letter
_WORDS_PER_PASS = 1024  # words embedded at once by embed_layer: bounds the (layers, words, H) array


class VocabularyError(DataError):
    """A candidate word list that cannot be read (message names the file and the line)."""


# --------------------------------------------------------------------------------------------------
# Candidate vocabularies
# --------------------------------------------------------------------------------------------------


def read_word_list(path: str | os.PathLike) -> list[str]:
    """Read a candidate vocabulary: one word (or phrase) per line, UTF-8.

    Blank lines and lines whose first non-space character is ``#`` are skipped; whitespace inside an entry
    is collapsed to one space; repeated entries are kept once, at their first position.

    Raises:
        VocabularyError: missing file, a directory, bytes that are not UTF-8, a tab-separated line (a
            frequency list or a lexicon, not a word list), or no word at all; one line naming file and line.
    """
    path = Path(path)
    if not path.exists():
        raise VocabularyError(f"{path}: no such word-list file — check the --vocabulary path")
    if path.is_dir():
        raise VocabularyError(f"{path}: is a directory — give a text file with one word per line")

    if problem := too_big(path.stat().st_size, MAX_TABLE_BYTES):
        raise VocabularyError(f"{path}: the file {problem} — give one word per line")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise VocabularyError(
            f"{path} line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}) — re-save the file as UTF-8"
        ) from exc
    words: dict[str, None] = {}
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        if "\t" in entry:
            raise VocabularyError(
                f"{path} line {number}: {entry[:40]!r} has a tab — write one word per line "
                "(keep the first column, e.g. cut -f1)"
            )
        if problem := too_long(entry, MAX_WORD_CHARS):
            raise VocabularyError(f"{path} line {number}: the entry {problem} — write one word per line")
        words.setdefault(" ".join(entry.split()), None)
    if not words:
        raise VocabularyError(f"{path}: no words (only blank or # lines) — add one word per line")
    return list(words)


def word_boundary_marker(tokenizer: Any) -> str:
    """The prefix (``Ġ`` or ``▁``) this tokenizer puts on a token that starts a word.

    Found by tokenizing ``"a a"``: the pieces of the second word carry the marker.

    Raises:
        ConfigError: the tokenizer marks no word start (WordPiece, character-level); then a whole-word
            vocabulary cannot be read off it.
    """
    for piece in tokenizer.tokenize("a a")[1:]:
        for marker in WORD_BOUNDARY_MARKERS:
            if piece.startswith(marker):
                return marker
    raise ConfigError(
        f"--vocabulary {TOKENIZER_VOCABULARY}: {type(tokenizer).__name__} marks no word start with "
        f"{' or '.join(WORD_BOUNDARY_MARKERS)}; pass a word-list file (one word per line) instead"
    )


def is_letters(text: str) -> bool:
    """Whether ``text`` is a letter followed by letters or combining marks.

    Combining marks (Unicode Mn/Mc: Devanagari or Bengali vowel signs, Arabic harakat) are part of a
    written letter, so ``में`` counts as a word while ``ng'ombe`` and ``3d`` do not.
    """
    return (
        bool(text)
        and text[0].isalpha()
        and all(c.isalpha() or unicodedata.category(c) in _MARKS for c in text)
    )


def tokenizer_vocabulary(tokenizer: Any, *, min_chars: int = 2, max_words: int | None = None) -> list[str]:
    """The tokenizer's whole words: the usual BLI candidate set when no word list is at hand.

    Rule: a vocabulary entry is a word when it **starts with the word-boundary marker** (``Ġ`` for
    byte-level BPE, ``▁`` for SentencePiece; see :func:`word_boundary_marker`) and, decoded
    (``convert_tokens_to_string``) and stripped of the marker's space, consists of **letters only** (see
    :func:`is_letters`: any script, combining marks allowed after a letter; no digits, punctuation,
    apostrophes or partial UTF-8 bytes) and has at least ``min_chars`` characters. Special tokens never
    qualify. Such a token is a word start, which may be a whole word (``Ġdog``) or the first piece of a
    longer one (``Ġele`` of *elephant*); tokenizers do not say which. Entries without the marker (a word at
    the very start of a text, continuations) are skipped.

    Order: by token id, first occurrence kept when two entries decode alike. BPE ids follow the merge
    order, which tracks corpus frequency, so ``max_words`` keeps the most frequent words.

    Returns:
        Deduplicated words, deterministic for a given tokenizer.
    """
    if min_chars < 1:
        raise ConfigError(f"min_chars must be >= 1, got {min_chars}")
    if max_words is not None and max_words < 1:
        raise ConfigError(f"max_words must be >= 1 or None, got {max_words}")
    marker = word_boundary_marker(tokenizer)
    special = set(tokenizer.all_special_tokens)
    words: dict[str, None] = {}
    for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]):
        if not token.startswith(marker) or token in special:
            continue
        word = tokenizer.convert_tokens_to_string([token]).strip()
        if len(word) >= min_chars and is_letters(word):
            words.setdefault(word, None)
            if max_words is not None and len(words) >= max_words:
                break
    return list(words)


def resolve_vocabulary(
    vocabulary: str | os.PathLike | Sequence[str] | None, tokenizer: Any
) -> tuple[list[str], dict[str, Any]]:
    """The candidate words asked for and a record of where they came from.

    Args:
        vocabulary: None (no extra words: the lexicon's targets only), ``"tokenizer"``
            (:func:`tokenizer_vocabulary`), a word-list path (:func:`read_word_list`), or a list of words.
        tokenizer: the model's tokenizer (used for ``"tokenizer"``).
    """
    if vocabulary is None:
        return [], {"source": "lexicon targets"}
    if isinstance(vocabulary, str) and vocabulary == TOKENIZER_VOCABULARY:
        words = tokenizer_vocabulary(tokenizer)
        return words, {"source": TOKENIZER_VOCABULARY, "marker": word_boundary_marker(tokenizer)}
    if isinstance(vocabulary, (str, os.PathLike)):
        return read_word_list(vocabulary), {"source": str(vocabulary), "file_sha256": sha256_file(vocabulary)}
    return list(dict.fromkeys(vocabulary)), {"source": "list"}


# --------------------------------------------------------------------------------------------------
# Retrieval over a full vocabulary
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retrieved:
    """Per-query outcome of a retrieval."""

    ranks: torch.Tensor  # (n_queries,) long: rank of the best gold candidate, 1 = first
    top1: torch.Tensor  # (n_queries,) long: index of the highest-scoring candidate (first on ties)


class VocabularyRetrieval:
    """Rank the gold translations of each query among all candidates, in bounded memory.

    ``rank_i = 1 + #{j ∉ gold_i : score_ij ≥ max_{g ∈ gold_i} score_ig}`` — the best gold translation
    counts, and ties count against it, exactly as :func:`tli.metrics.retrieval_ranks`. Scores are
    ``cosine(x, y) = x·y`` (rows are L2-normalised) or CSLS (:meth:`csls_block`).

    Queries are processed in blocks of ``chunk_size`` rows against all candidates, so the largest array is
    ``(chunk_size, n_candidates)`` scores; the default chunk holds 2^24 scores (64 MiB). 1k queries × 50k
    candidates × hidden 4096 thus needs the two embedding matrices plus about 80 MiB of work space, never
    the 200 MB score matrix. CSLS costs a second pass over the blocks (for ``r_S``).

    Args:
        queries: ``(n_queries, H)`` L2-normalised source embeddings.
        candidates: ``(n_candidates, H)`` L2-normalised target embeddings.
        gold: pair ``k`` says candidate ``gold.tgt[k]`` translates query ``gold.src[k]``; every query needs
            at least one gold candidate. Repeated pairs count once.
        chunk_size: queries per block; None = as many as fit in 2^24 scores.
    """

    def __init__(
        self,
        queries: torch.Tensor,
        candidates: torch.Tensor,
        gold: PairIndex,
        *,
        chunk_size: int | None = None,
    ) -> None:
        queries, candidates = torch.as_tensor(queries).float(), torch.as_tensor(candidates).float()
        if queries.ndim != 2 or candidates.ndim != 2 or queries.shape[1] != candidates.shape[1]:
            raise ValueError(
                f"queries {tuple(queries.shape)} and candidates {tuple(candidates.shape)} must be (n, H) "
                "with the same H"
            )
        if (gold.n_src, gold.n_tgt) != (len(queries), len(candidates)):
            raise ValueError(
                f"gold indexes {gold.n_src} queries × {gold.n_tgt} candidates, "
                f"embeddings have {len(queries)} × {len(candidates)}"
            )
        if chunk_size is not None and chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1 or None, got {chunk_size}")
        n_c = len(candidates)
        src, tgt = gold.src.long().to(queries.device), gold.tgt.long().to(queries.device)
        if len(src) and (src.min() < 0 or src.max() >= len(queries) or tgt.min() < 0 or tgt.max() >= n_c):
            raise ValueError("gold indices fall outside the query or candidate rows")
        keys = torch.unique(src * n_c + tgt)  # sorted by query, then candidate
        self.gold_src, self.gold_tgt = keys // n_c, keys % n_c  # (n_gold,) each
        self.n_gold_per_query = torch.bincount(self.gold_src, minlength=len(queries))  # (n_queries,)
        if len(queries) == 0 or bool((self.n_gold_per_query == 0).any()):
            missing = int((self.n_gold_per_query == 0).nonzero()[0]) if len(queries) else None
            raise ValueError(f"every query needs a gold candidate (query {missing} has none)")
        self.queries, self.candidates, self.chunk_size = queries, candidates, chunk_size

    @property
    def n_queries(self) -> int:
        return len(self.queries)

    @property
    def n_candidates(self) -> int:
        return len(self.candidates)

    def _cosine_blocks(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """``(start, stop, queries[start:stop] @ candidates.T)`` for consecutive query blocks."""
        step = self.chunk_size or max(1, _BLOCK_ELEMENTS // max(1, self.n_candidates))
        for start in range(0, self.n_queries, step):
            stop = min(self.n_queries, start + step)
            yield start, stop, self.queries[start:stop] @ self.candidates.T  # (b, n_candidates)

    def candidate_neighbourhood(self, k: int = CSLS_K) -> torch.Tensor:
        """``r_S(y)``: mean cosine of each candidate with its ``k`` nearest queries; ``(n_candidates,)``.

        ``k`` is capped by the number of queries. A running top-k over query blocks keeps memory at one
        block plus ``(k, n_candidates)``.
        """
        k = min(_check_k(k), self.n_queries)
        best: torch.Tensor | None = None  # (≤ k, n_candidates): the largest cosines seen so far
        for _, _, block in self._cosine_blocks():
            stacked = block if best is None else torch.cat([best, block])
            best = stacked.topk(min(k, len(stacked)), dim=0).values
        assert best is not None and len(best) == k
        return best.mean(dim=0)

    def csls_block(self, cosine: torch.Tensor, r_s: torch.Tensor, k: int) -> torch.Tensor:
        """CSLS of a query block (Conneau et al., 2018, "Word translation without parallel data").

        ``CSLS(x, y) = 2 cos(x, y) − r_T(x) − r_S(y)``: ``r_T(x)`` is the mean cosine of query ``x`` with
        its ``k`` nearest candidates (capped by the candidate count), ``r_S(y)`` the mean cosine of
        candidate ``y`` with its ``k`` nearest queries (:meth:`candidate_neighbourhood`). Overwrites
        ``cosine`` (``(b, n_candidates)``) to save a copy, and returns it.
        """
        r_t = cosine.topk(min(k, self.n_candidates), dim=1).values.mean(dim=1, keepdim=True)  # (b, 1)
        return cosine.mul_(2).sub_(r_t).sub_(r_s[None, :])

    def _score_blocks(self, method: str, csls_k: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        if method not in METHODS:
            raise ConfigError(f"retrieval method {method!r} is not one of {', '.join(METHODS)}")
        r_s = self.candidate_neighbourhood(csls_k) if method == "csls" else None
        for start, stop, block in self._cosine_blocks():
            yield start, stop, block if r_s is None else self.csls_block(block, r_s, csls_k)

    def scores(self, method: str = "cosine", csls_k: int = CSLS_K) -> torch.Tensor:
        """The full ``(n_queries, n_candidates)`` score matrix — for small problems and tests only."""
        return torch.cat([block for _, _, block in self._score_blocks(method, csls_k)])

    def retrieve(self, method: str = "cosine", csls_k: int = CSLS_K) -> Retrieved:
        """Ranks of the best gold candidate and the top-1 candidate of every query (one pass over blocks)."""
        ranks = torch.empty(self.n_queries, dtype=torch.long)
        top1 = torch.empty(self.n_queries, dtype=torch.long)
        device = self.queries.device
        bounds = torch.searchsorted(self.gold_src, torch.arange(self.n_queries + 1, device=device)).tolist()
        for start, stop, block in self._score_blocks(method, csls_k):
            lo, hi = bounds[start], bounds[stop]
            rows, cols = self.gold_src[lo:hi] - start, self.gold_tgt[lo:hi]  # gold cells of this block
            gold_scores = block[rows, cols]
            best = torch.full((stop - start,), float("-inf"), device=device)
            best = best.scatter_reduce(0, rows, gold_scores, "amax")  # (b,) best gold score per query
            at_or_above = (block >= best[:, None]).sum(dim=1)  # every candidate scoring ≥ the best gold…
            gold_at_best = torch.zeros(stop - start, dtype=torch.long, device=device).scatter_add(
                0, rows, (gold_scores >= best[rows]).long()
            )  # …minus the gold ones among them
            ranks[start:stop] = (at_or_above - gold_at_best + 1).cpu()
            top1[start:stop] = block.argmax(dim=1).cpu()
        return Retrieved(ranks=ranks, top1=top1)

    def ranks(self, method: str = "cosine", csls_k: int = CSLS_K) -> torch.Tensor:
        """``(n_queries,)`` rank of the best gold candidate (see the class docstring)."""
        return self.retrieve(method, csls_k).ranks

    def report(
        self,
        method: str = "cosine",
        *,
        csls_k: int = CSLS_K,
        mapping: str = "none",
        confidence: float = 0.95,
        n_boot: int = 10_000,
        rng: np.random.Generator | int | None = 0,
        ranks: torch.Tensor | None = None,
    ) -> RetrievalReport:
        """:func:`retrieval_report` of :meth:`ranks` (or of ``ranks`` already retrieved with ``method``)."""
        return retrieval_report(
            self.ranks(method, csls_k) if ranks is None else ranks,
            self.n_gold_per_query,
            self.n_candidates,
            method=method,
            mapping=mapping,
            csls_k=csls_k if method == "csls" else None,
            confidence=confidence,
            n_boot=n_boot,
            rng=rng,
        )


def _check_k(k: int) -> int:
    if int(k) < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    return int(k)


# --------------------------------------------------------------------------------------------------
# Precision@k, MRR, intervals and chance levels
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval."""

    value: float
    low: float
    high: float


def _as_ranks(ranks: Any) -> np.ndarray:
    arr = np.asarray(ranks.cpu() if isinstance(ranks, torch.Tensor) else ranks)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) or arr.min() < 1:
        raise ValueError("ranks must be a non-empty 1-D array of integers >= 1")
    return arr.astype(np.int64)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")


def precision_at_k_with_ci(ranks: Any, k: int, confidence: float = 0.95) -> Estimate:
    """P@k with a Wilson score interval.

    ``P@k = x / n`` with ``x = #{i : rank_i ≤ k}`` over ``n`` queries. The Wilson interval (Wilson, 1927;
    ``scipy.stats.binomtest(x, n).proportion_ci(method="wilson")``) is
    ``(p̂ + z²/2n ± z √(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)``, ``z`` the normal quantile: unlike the normal
    approximation it stays inside [0, 1] and is not degenerate at P@k = 0 or 1, the usual case for
    small control sets.

    Args:
        ranks: ``(n,)`` integer ranks ≥ 1.
        k: cut-off ≥ 1.
    """
    arr, k = _as_ranks(ranks), _check_k(k)
    _check_confidence(confidence)
    hits = int((arr <= k).sum())
    interval = binomtest(hits, arr.size).proportion_ci(confidence_level=confidence, method="wilson")
    return Estimate(hits / arr.size, float(interval.low), float(interval.high))


def chance_precision_at_k(n_gold_per_query: Any, n_candidates: int, k: int) -> float:
    """Expected P@k of a uniformly random ranking.

    ``chance = mean_i [1 − C(n − g_i, k) / C(n, k)]``: the probability that at least one of query ``i``'s
    ``g_i`` gold candidates lands in the top ``k`` of ``n``. A word with several translations has a higher
    chance level than ``k / n``.

    Args:
        n_gold_per_query: ``(n_queries,)`` number of distinct gold candidates of each query (1 ≤ g ≤ n).
        n_candidates: ``n``, the number of candidates ranked.
        k: cut-off ≥ 1.
    """
    golds, n, k = _check_golds(n_gold_per_query, n_candidates), int(n_candidates), _check_k(k)
    # With k >= n every candidate is in the top k: a hit is certain (and C(n, k) would be 0).
    by_g = {g: 1.0 if k >= n else 1.0 - math.comb(n - g, k) / math.comb(n, k) for g in set(golds.tolist())}
    return float(np.mean([by_g[g] for g in golds.tolist()]))


def chance_mrr(n_gold_per_query: Any, n_candidates: int) -> float:
    """Expected MRR of a uniformly random ranking.

    With ``g`` gold among ``n`` candidates, the first gold position ``R`` has ``P(R ≥ r) = C(n − g, r − 1) /
    C(n, r − 1)`` (no gold among the first ``r − 1``; the hypergeometric ``pmf(0)``), so ``chance =
    mean_i Σ_r P(R_i = r) / r``. With ``g = 1`` it is ``H_n / n`` (``H_n`` the harmonic number).
    """
    golds, n = _check_golds(n_gold_per_query, n_candidates), int(n_candidates)
    by_g = {}
    for g in set(golds.tolist()):
        r = np.arange(1, n - g + 2)  # possible first-gold positions
        survival = hypergeom.pmf(0, n, g, np.arange(0, n - g + 2))  # P(R ≥ r) for r = 1 .. n − g + 2
        by_g[g] = float(((survival[:-1] - survival[1:]) / r).sum())
    return float(np.mean([by_g[g] for g in golds.tolist()]))


def _check_golds(n_gold_per_query: Any, n_candidates: int) -> np.ndarray:
    arr = np.asarray(
        n_gold_per_query.cpu() if isinstance(n_gold_per_query, torch.Tensor) else n_gold_per_query
    ).astype(np.int64)
    if arr.ndim != 1 or arr.size == 0 or arr.min() < 1 or arr.max() > n_candidates:
        raise ValueError(f"each query needs 1..{n_candidates} gold candidates, got {arr.tolist()[:10]}")
    return arr


def mrr_with_ci(
    ranks: Any, confidence: float = 0.95, n_boot: int = 10_000, rng: np.random.Generator | int | None = 0
) -> Estimate:
    """MRR ``= mean_i 1 / rank_i`` with a percentile bootstrap interval over queries
    (:func:`tli.stats.bootstrap_ci_mean`)."""
    reciprocal = 1.0 / _as_ranks(ranks)
    low, high = bootstrap_ci_mean(reciprocal, n_boot=n_boot, confidence=confidence, rng=rng)
    return Estimate(float(reciprocal.mean()), low, high)


@dataclass(frozen=True)
class RetrievalReport:
    """BLI figures of one retrieval, each beside its interval and its chance level."""

    method: str
    """``cosine`` or ``csls``."""
    mapping: str
    """``none`` (the model's own space) or ``procrustes`` (queries mapped by the fitted orthogonal W)."""
    n_queries: int
    n_candidates: int
    csls_k: int | None
    confidence: float
    """Level of every interval (Wilson for P@k, percentile bootstrap for MRR)."""
    p_at_1: float
    p_at_1_ci_low: float
    p_at_1_ci_high: float
    p_at_1_chance: float
    p_at_5: float
    p_at_5_ci_low: float
    p_at_5_ci_high: float
    p_at_5_chance: float
    p_at_10: float
    p_at_10_ci_low: float
    p_at_10_ci_high: float
    p_at_10_chance: float
    mrr: float
    mrr_ci_low: float
    mrr_ci_high: float
    mrr_chance: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def retrieval_report(
    ranks: Any,
    n_gold_per_query: Any,
    n_candidates: int,
    *,
    method: str,
    mapping: str = "none",
    csls_k: int | None = None,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    rng: np.random.Generator | int | None = 0,
) -> RetrievalReport:
    """P@1/5/10 (Wilson intervals, chance levels) and MRR (bootstrap interval, chance level) of ``ranks``."""
    figures: dict[str, float] = {}
    for k in PRECISION_KS:
        estimate = precision_at_k_with_ci(ranks, k, confidence)
        figures[f"p_at_{k}"], figures[f"p_at_{k}_ci_low"] = estimate.value, estimate.low
        figures[f"p_at_{k}_ci_high"] = estimate.high
        figures[f"p_at_{k}_chance"] = chance_precision_at_k(n_gold_per_query, n_candidates, k)
    mrr = mrr_with_ci(ranks, confidence, n_boot, rng)
    return RetrievalReport(
        method=method,
        mapping=mapping,
        n_queries=int(_as_ranks(ranks).size),
        n_candidates=int(n_candidates),
        csls_k=csls_k,
        confidence=confidence,
        **figures,
        mrr=mrr.value,
        mrr_ci_low=mrr.low,
        mrr_ci_high=mrr.high,
        mrr_chance=chance_mrr(n_gold_per_query, n_candidates),
    )


# --------------------------------------------------------------------------------------------------
# Orthogonal Procrustes baseline
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# One layer's embeddings, and their export
# --------------------------------------------------------------------------------------------------


def embed_layer(
    words: Sequence[str],
    loaded: LoadedModel,
    embed_config: EmbedConfig,
    layer: int,
    *,
    words_per_pass: int = _WORDS_PER_PASS,
    progress: bool | None = None,
) -> torch.Tensor:
    """L2-normalised embeddings of ``words`` at hidden-state index ``layer``, shape ``(n, H)``.

    Uses :func:`tli.embed.embed_all_layers` (every layer in one forward) on ``words_per_pass`` words at a
    time and keeps only ``layer``, so a 50k-word vocabulary never holds ``(layers, 50k, H)``. With
    ``embed_config.center`` the words are treated as one language: the mean over *these* words is
    subtracted (:func:`tli.embed.center_and_normalise`).
    """
    if not 0 <= layer <= loaded.num_layers:
        raise ConfigError(
            f"--layer {layer} is out of range: this model has hidden states 0..{loaded.num_layers}"
        )
    if words_per_pass < 1:
        raise ConfigError(f"words_per_pass must be >= 1, got {words_per_pass}")
    parts = []
    for start in range(0, len(words), words_per_pass):
        chunk = list(words[start : start + words_per_pass])
        every = embed_all_layers(chunk, loaded.model, loaded.tokenizer, embed_config, progress=progress)
        parts.append(every[layer].clone())  # (chunk, H); the (layers, chunk, H) array is freed
    if not parts:
        raise DataError("nothing to embed: the word list is empty")
    vectors = torch.cat(parts)
    return center_and_normalise(vectors[None])[0] if embed_config.center else vectors


def vec_key(word: str) -> str:
    """The word as a word2vec text key: runs of whitespace become ``_`` (the format is space-separated)."""
    return "_".join(word.split())


def export_embeddings(
    words: Sequence[str],
    vectors: torch.Tensor | np.ndarray,
    out: str | os.PathLike,
    *,
    layer: int,
    lang: str,
    precision: int = 6,
) -> dict[str, Path]:
    """Write one layer's embeddings in the formats BLI tools read.

    Files (each written atomically):

    - ``<out>/<lang>.layer<L>.npy``: float32 array ``(n, H)``, exact;
    - ``<out>/<lang>.layer<L>.words.txt``: one word per line, same order, words unchanged;
    - ``<out>/<lang>.layer<L>.vec``: word2vec / fastText text format read by MUSE, VecMap and gensim
      (``KeyedVectors.load_word2vec_format``): a first line ``n H``, then ``word v1 … vH`` with
      ``precision`` significant digits. The format separates fields by spaces, so a multiword entry is
      written with its spaces replaced by ``_`` (``thank you`` → ``thank_you``; see :func:`vec_key`).

    Raises:
        ConfigError: a word that is empty, holds a line break, or whose ``.vec`` key collides with another.
    """
    array = np.ascontiguousarray(
        vectors.detach().cpu().numpy() if isinstance(vectors, torch.Tensor) else vectors, dtype=np.float32
    )
    words = list(words)
    if array.ndim != 2 or len(words) != len(array):
        raise ValueError(f"{len(words)} words but vectors of shape {array.shape}; need (n_words, H)")
    keys: dict[str, str] = {}
    for word in words:
        if not word.strip() or "\n" in word or "\r" in word:
            raise ConfigError(
                f"cannot export word {word!r}: empty or with a line break — clean the word list"
            )
        if (key := vec_key(word)) in keys:
            raise ConfigError(
                f"words {keys[key]!r} and {word!r} both become {key!r} in the .vec file — keep one of them"
            )
        keys[key] = word
    out = Path(out)
    stem = f"{lang}.layer{layer}"
    npy = io.BytesIO()
    np.save(npy, array)
    text = io.StringIO()
    text.write(f"{len(words)} {array.shape[1]}\n")
    for key, row in zip(keys, array, strict=True):
        text.write(key + " " + " ".join(f"{value:.{precision}g}" for value in row.tolist()) + "\n")
    return {
        "npy": atomic_write_bytes(out / f"{stem}.npy", npy.getvalue()),
        "words": atomic_write_text(out / f"{stem}.words.txt", "".join(w + "\n" for w in words)),
        "vec": atomic_write_text(out / f"{stem}.vec", text.getvalue()),
    }


# --------------------------------------------------------------------------------------------------
# The whole BLI evaluation of one layer
# --------------------------------------------------------------------------------------------------


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
    candidates = list(dict.fromkeys([*vocab_words, *train.targets, *test.targets]))
    sources = list(dict.fromkeys([*test.sources, *train.sources]))
    queries = list(dict.fromkeys(test.sources))  # the first len(queries) rows of `sources`
    cand_row = {word: i for i, word in enumerate(candidates)}
    src_row = {word: i for i, word in enumerate(sources)}

    src = embed_layer(sources, loaded, embed_config, layer, progress=progress)  # (n_sources, H)
    cand = embed_layer(candidates, loaded, embed_config, layer, progress=progress)  # (n_candidates, H)
    query_emb = src[: len(queries)]  # (n_queries, H): test sources come first in `sources`
    gold = PairIndex(
        src=torch.tensor([src_row[p.source] for p in test]),
        tgt=torch.tensor([cand_row[p.target] for p in test]),
        n_src=len(queries),
        n_tgt=len(candidates),
    )
    procrustes = fit_procrustes(
        src[[src_row[p.source] for p in train]],
        cand[[cand_row[p.target] for p in train]],
        center=procrustes_center,
    )
    spaces = {
        "none": VocabularyRetrieval(query_emb, cand, gold, chunk_size=chunk_size),
        "procrustes": VocabularyRetrieval(
            procrustes.map_source(query_emb), procrustes.prepare_target(cand), gold, chunk_size=chunk_size
        ),
    }
    gold_words: dict[str, list[str]] = {q: [] for q in queries}
    for pair in test:
        gold_words[pair.source].append(pair.target)
    per_query: list[dict[str, Any]] = [{"source": q, "gold": gold_words[q]} for q in queries]
    reports = _score_spaces(
        spaces, per_query, candidates, csls_k=csls_k, confidence=confidence, n_boot=n_boot, seed=seed
    )
    return {
        "layer": layer,
        "pooling": embed_config.describe(),
        "csls_k": csls_k,
        "confidence": confidence,
        "n_train_pairs": len(train),
        "n_test_pairs": len(test),
        "n_train_pairs_dropped_overlap": dropped,
        "n_queries": len(queries),
        "n_candidates": len(candidates),
        "vocabulary": {
            **vocab_record,
            "n_words": len(vocab_words),
            "n_gold_added": len(candidates) - len(vocab_words),
        },
        "procrustes": {"center": procrustes_center, "fitted_on_pairs": len(train)},
        "reports": reports,
        "queries": per_query,
    }


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


# --------------------------------------------------------------------------------------------------
# Inside tli evaluate: retrieval of the unseen control words, and the Procrustes baseline
# --------------------------------------------------------------------------------------------------


def embed_layers(
    words: Sequence[str],
    loaded: LoadedModel,
    embed_config: EmbedConfig,
    layers: Sequence[int],
    *,
    words_per_pass: int = _WORDS_PER_PASS,
    progress: bool | None = None,
) -> dict[int, torch.Tensor]:
    """``{layer: (n, H)}`` L2-normalised embeddings of ``words`` at a few layers, one forward per chunk.

    Like :func:`embed_layer`, a large vocabulary is embedded ``words_per_pass`` words at a time and only
    the asked layers are kept.
    """
    parts: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    for start in range(0, len(words), words_per_pass):
        chunk = list(words[start : start + words_per_pass])
        every = embed_all_layers(chunk, loaded.model, loaded.tokenizer, embed_config, progress=progress)
        for layer in layers:
            parts[layer].append(every[layer].clone())
    return {layer: torch.cat(chunks) if chunks else torch.empty(0) for layer, chunks in parts.items()}


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
