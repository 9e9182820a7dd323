"""What a retrieval evaluation is made of: a corpus of passages, a query set and relevance judgements.

A :class:`RetrievalData` holds one (query language, passage language) evaluation: queries, the corpus they
search and the qrels saying which passages answer which query, plus what the loader had to do to build it
(duplicate passages merged, queries without judgements left out). Every task loader (XQuAD, TyDi QA GoldP,
Mr. TyDi / MIRACL) returns one, and every system (dense, BM25, fusion, trained bi-encoders) ranks it.

Passages whose text is empty cannot be scored by any system: they stay in the corpus (their ids are valid in
qrels) but are counted and reported (:meth:`Corpus.unscorable`), never silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tli.io import sha256_text


@dataclass
class Corpus:
    """Passages to search, in file order.

    Attributes:
        ids: Unique, non-empty passage ids.
        titles: Titles (empty strings where the format has none).
        texts: Passage texts; an empty text cannot be scored (counted in :meth:`unscorable`).
        source: The file the corpus was read from (for messages and provenance).
    """

    ids: list[str]
    titles: list[str]
    texts: list[str]
    source: str = ""
    _index: dict[str, int] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def index(self) -> dict[str, int]:
        """Passage id → position."""
        if self._index is None:
            self._index = {doc_id: i for i, doc_id in enumerate(self.ids)}
        return self._index

    def document(self, i: int, *, with_title: bool = True) -> str:
        """The text a system sees for passage ``i``: ``title`` and ``text`` on two lines (title optional)."""
        title, text = self.titles[i].strip(), self.texts[i].strip()
        if with_title and title and text:
            return f"{title}\n{text}"
        return text

    def scorable(self) -> list[int]:
        """Positions of passages with a non-empty text."""
        return [i for i, text in enumerate(self.texts) if text.strip()]

    def unscorable(self) -> list[str]:
        """Ids of passages with an empty text: no system can score them."""
        return [self.ids[i] for i, text in enumerate(self.texts) if not text.strip()]

    def fingerprint(self) -> str:
        """SHA-256 of the ids, titles and texts in order."""
        return sha256_text(json.dumps([self.ids, self.titles, self.texts], ensure_ascii=False))


@dataclass(frozen=True)
class Query:
    """One query: its id, text and language (``language`` makes a query set usable as task examples)."""

    id: str
    text: str
    language: str


@dataclass
class RetrievalData(Sequence):
    """One retrieval evaluation: queries in one language searching passages in one language.

    It is a sequence of its :class:`Query` objects (what ``tli compare`` passes around as a cell's examples),
    with the corpus and the qrels attached.

    Attributes:
        task: Task name (``xquad``, ``tydi``, ``mrtydi``).
        language: The cell's language label: ``sw`` (same language) or ``de-en`` (queries-passages).
        queries: Evaluated queries (each has at least one relevant passage), in file order.
        corpus: Every passage searched.
        qrels: ``{query id: {passage id: relevance}}``; relevance > 0 is relevant.
        query_language, passage_language: Language codes of the two sides.
        notes: What loading did, for the report: ``duplicate_passages_merged``, ``unjudged_queries``, files.
    """

    task: str
    language: str
    queries: list[Query]
    corpus: Corpus
    qrels: dict[str, dict[str, int]]
    query_language: str
    passage_language: str
    notes: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, item):  # type: ignore[override]
        return self.queries[item]

    def __iter__(self) -> Iterator[Query]:
        return iter(self.queries)

    @property
    def query_ids(self) -> list[str]:
        return [q.id for q in self.queries]

    @property
    def query_texts(self) -> list[str]:
        return [q.text for q in self.queries]

    def limited(self, limit: int | None) -> RetrievalData:
        """The first ``limit`` queries (file order) against the whole corpus; qrels cut to match."""
        if limit is None or limit >= len(self.queries):
            return self
        queries = self.queries[:limit]
        kept = {q.id for q in queries}
        return RetrievalData(
            self.task,
            self.language,
            queries,
            self.corpus,
            {qid: rel for qid, rel in self.qrels.items() if qid in kept},
            self.query_language,
            self.passage_language,
            {**self.notes, "limit": limit, "queries_before_limit": len(self.queries)},
        )

    def relevant(self, query_id: str) -> list[str]:
        """Ids of the passages judged relevant (> 0) to a query, in qrels order."""
        return [doc for doc, rel in self.qrels.get(query_id, {}).items() if rel > 0]

    def fingerprint(self) -> str:
        """SHA-256 of the queries, the corpus fingerprint and the qrels."""
        payload = [[q.id, q.text] for q in self.queries], self.corpus.fingerprint(), self.qrels
        return sha256_text(json.dumps(payload, ensure_ascii=False, sort_keys=True))

    def describe(self) -> dict[str, Any]:
        """Sizes and loading notes, for ``results.json``."""
        unscorable = self.corpus.unscorable()
        relevant = {doc for qid in self.qrels for doc in self.relevant(qid)}
        return {
            "queries": len(self.queries),
            "passages": len(self.corpus),
            "query_language": self.query_language,
            "passage_language": self.passage_language,
            "judgements": sum(len(r) for r in self.qrels.values()),
            "unscorable_passages": len(unscorable),
            "unscorable_relevant_passages": len(relevant & set(unscorable)),
            "fingerprint": self.fingerprint(),
            **self.notes,
        }


def merge_duplicate_passages(
    keys: list[tuple[str, str]],
) -> tuple[list[int], dict[int, int]]:
    """Group passages with identical (title, text): the first of each group represents the others.

    Two identical passages would tie under every scorer, and a query whose answer is in one of them would
    count the other as a miss; merging them keeps rankings and judgements meaningful.

    Args:
        keys: ``(title, text)`` per passage, in order.

    Returns:
        ``(kept, representative)``: positions of the first passage of each group, and for every position the
        position of its group's first passage.
    """
    first: dict[tuple[str, str], int] = {}
    kept, representative = [], {}
    for i, key in enumerate(keys):
        normalised = (" ".join(key[0].split()), " ".join(key[1].split()))
        if normalised not in first:
            first[normalised] = i
            kept.append(i)
        representative[i] = first[normalised]
    return kept, representative
