"""BM25, the lexical baseline every dense number stands beside (``bm25s``, Lucene's BM25 variant).

``score(q, d) = Σ_{t ∈ q} IDF(t) · tf(t, d) / (tf(t, d) + k1 · (1 − b + b · |d| / avgdl))`` with Lucene's
``IDF(t) = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))`` (Lucene ≥ 8 drops the constant ``k1 + 1`` factor,
which changes no ranking); a query term repeated counts once per occurrence; defaults ``k1 = 0.9``,
``b = 0.4`` (Pyserini's, with which Mr. TyDi's published BM25 baselines were computed).

Tokenisation follows the language (:func:`analyzer`, built on :func:`tli.words.words`): Unicode NFKC,
lower case, words as runs of letters, digits and combining marks (so Hindi, Bengali or Telugu words keep their
vowel signs) with inner apostrophes kept (Swahili ``ng'ombe``), the stopwords ``bm25s`` ships for the
language where it has a list (none for Swahili, as Lucene's standard analyzer), and overlapping bigrams of
grapheme clusters for scripts written without spaces (Chinese, Japanese, Thai, Lao, Khmer, Myanmar, Hangul),
as Lucene's CJK analyzer does. No stemming: Snowball has no Swahili stemmer, and the same rule for every language keeps
rows comparable.

A passage with no token left after analysis can never be retrieved; a query with none retrieves nothing
(scores 0 on every metric). Both are counted and reported, and documents with a score of 0 (no query term)
are not listed in the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from tli.errors import ConfigError
from tli.retrieval.libraries import need
from tli.retrieval.search import TopK, merge_top_k, top_k_block
from tli.words import words

_STOPWORD_LISTS = {
    "en": "STOPWORDS_EN",
    "de": "STOPWORDS_GERMAN",
    "es": "STOPWORDS_SPANISH",
    "fr": "STOPWORDS_FRENCH",
    "it": "STOPWORDS_ITALIAN",
    "nl": "STOPWORDS_DUTCH",
    "pt": "STOPWORDS_PORTUGUESE",
    "ru": "STOPWORDS_RUSSIAN",
    "sv": "STOPWORDS_SWEDISH",
    "da": "STOPWORDS_DANISH",
    "no": "STOPWORDS_NORWEGIAN",
    "tr": "STOPWORDS_TURKISH",
}
_QUERY_BLOCK = 256  # queries scored per (block × corpus) matrix
logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on its logger: one line per index


def stopwords(language: str) -> frozenset[str]:
    """The stopword list ``bm25s`` ships for ``language`` (empty when it has none, e.g. Swahili)."""
    name = _STOPWORD_LISTS.get(language)
    if name is None:
        return frozenset()
    lists = need("bm25s.stopwords")

    return frozenset(getattr(lists, name))


def analyzer(language: str, *, remove_stopwords: bool = True) -> Callable[[str], list[str]]:
    """Text → tokens for ``language``: :func:`tli.words.words` (NFKC, lower case, words with their combining
    marks and inner apostrophes, grapheme bigrams for scripts without spaces), minus the language's stopwords."""
    stop = stopwords(language) if remove_stopwords else frozenset()

    def analyse(text: str) -> list[str]:
        return [token for token in words(text, underscore=True) if token not in stop]

    return analyse


@dataclass
class BM25Index:
    """A BM25 index of a passage list, searched exactly with ties broken by passage position.

    Args:
        texts: Passages (their text as every system sees it).
        language: Language code of the passages and queries (tokenisation and stopwords).
        k1, b: BM25 parameters.
    """

    texts: Sequence[str]
    language: str
    k1: float = 0.9
    b: float = 0.4
    empty_documents: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        bm25s = need("bm25s")

        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ConfigError(f"bm25 needs k1 >= 0 and 0 <= b <= 1, got k1={self.k1}, b={self.b}")
        self.analyse = analyzer(self.language)
        tokens = [self.analyse(text) for text in self.texts]
        self.empty_documents = [i for i, t in enumerate(tokens) if not t]
        self.retriever = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        self.retriever.index(tokens, show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """``(n_passages,)`` BM25 scores of one query (0 where no query term occurs)."""
        tokens = [t for t in self.analyse(query) if t in self.retriever.vocab_dict]
        if not tokens:
            return np.zeros(len(self.texts), dtype=np.float32)
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)

    def search(self, queries: Sequence[str], k: int) -> tuple[TopK, list[int]]:
        """Top-``k`` passages per query; slots past the last passage with a positive score are empty.

        Returns:
            ``(top_k, queries_without_terms)``: the ranking and the positions of queries none of whose
            tokens occur in the corpus.
        """
        n, empty = len(queries), []
        indices = np.full((n, k), -1, dtype=np.int64)
        values = np.full((n, k), -np.inf, dtype=np.float32)
        for lo in range(0, n, _QUERY_BLOCK):
            block = np.stack([self.scores(q) for q in queries[lo : lo + _QUERY_BLOCK]])  # (b, n_passages)
            for row, scores in enumerate(block):
                if not scores.any():
                    empty.append(lo + row)
            scores = torch.from_numpy(block)
            pos, val = top_k_block(scores, k)
            pos, val = merge_top_k(pos, val, k)
            pos, val = pos.numpy(), val.numpy()
            matched = val > 0  # a passage without any query term is not retrieved
            width = pos.shape[1]
            indices[lo : lo + len(block), :width] = np.where(matched, pos, -1)
            values[lo : lo + len(block), :width] = np.where(matched, val, -np.inf)
        return TopK(indices, values), empty
