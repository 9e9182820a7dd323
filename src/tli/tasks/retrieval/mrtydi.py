"""Mr. TyDi and MIRACL: monolingual passage retrieval over Wikipedia, with Swahili.

Two layouts are read (Zhang et al., MRL 2021; Zhang et al., TACL 2023):

1. **Corpus, topics, qrels** (the releases' files): a corpus in JSON Lines with ``docid, title, text``
   (Mr. TyDi's ``collection/docs.jsonl`` uses ``id, contents``; both read, ``.gz`` too), topics as TSV
   ``query_id<TAB>query``, and TREC qrels ``query_id Q0 doc_id relevance``. ``path`` is the language's
   folder (``mrtydi-v1.1-swahili/``, ``miracl-v1.0-sw/``), a folder holding such folders, or the files are
   named by ``corpus``, ``topics`` and ``qrels``. Files are found by split: ``topic.test.tsv`` /
   ``topics.miracl-v1.0-sw-dev.tsv``, ``qrels.test.txt`` / ``qrels.miracl-v1.0-sw-dev.tsv``.
2. **Query jsonl** (the hub datasets ``castorini/mr-tydi``, ``miracl/miracl``): one query per line with
   ``query_id, query, positive_passages, negative_passages``, each passage ``{docid, title, text}``; the
   corpus is then every passage in the file (positives are relevant). ``path`` is the file, or a folder
   holding ``<split>.jsonl[.gz]``.

Queries with judgements are evaluated; topics without any judgement (a topics file covering several splits)
are left out and counted. Bad input stops with one line naming the file and line: qrels naming an unknown
query or passage, a corpus with an empty or repeated id, a judged query without a relevant passage, a
language the data lacks. Passages with an empty text stay in the corpus and are counted as unscorable.
Published Mr. TyDi Swahili test figures (MRR@100): BM25 0.389, zero-shot mDPR 0.189.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tli.errors import ConfigError, TliError
from tli.retrieval.data import Corpus, Query, RetrievalData
from tli.retrieval.trec import read_qrels
from tli.tasks.base import TaskDataError
from tli.tasks.retrieval.base import RetrievalConfig, RetrievalTask
from tli.tasks.retrieval.tydi import LANGUAGES as TYDI_LANGUAGES
from tli.tasks.sources import check_text_length, read_jsonl, read_lines, resolve_source

LANGUAGES = {
    **TYDI_LANGUAGES,
    "spanish": "es",
    "persian": "fa",
    "french": "fr",
    "hindi": "hi",
    "chinese": "zh",
    "german": "de",
    "yoruba": "yo",
}
"""Mr. TyDi (first eleven) and MIRACL language names → codes."""
SPLIT_NAMES = {"test": ("test",), "validation": ("dev", "validation"), "train": ("train",)}
PUBLISHED_MRR100 = {"sw": {"bm25": 0.389, "mdpr-zero-shot": 0.189}}
"""Published Mr. TyDi test MRR@100 (Zhang et al., MRL 2021), printed beside tli's figures."""
_ID_FIELDS = ("docid", "id", "_id")
_TEXT_FIELDS = ("text", "contents")


@dataclass
class MrTyDiConfig(RetrievalConfig):
    """Options of the Mr. TyDi / MIRACL retrieval task (YAML ``tasks: {mrtydi: {...}}``); see
    :class:`RetrievalConfig`."""

    corpus: str | None = None
    """The corpus jsonl (default: found in ``path`` by name)."""
    topics: str | None = None
    """The topics TSV (default: found in ``path`` by split)."""
    qrels: str | None = None
    """The TREC qrels (default: found in ``path`` by split)."""
    compare_metrics: tuple[str, ...] = ("mrr@100",)

    task_name: ClassVar[str] = "mrtydi"

    def __post_init__(self) -> None:
        super().__post_init__()
        given = [name for name in ("corpus", "topics", "qrels") if getattr(self, name) is not None]
        if given and len(given) != 3:
            missing = sorted({"corpus", "topics", "qrels"} - set(given))
            raise ConfigError(
                f"tasks.mrtydi: give corpus, topics and qrels together (missing {', '.join(missing)})"
            )


def _json_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``("FILE:LINE", object)`` for every row of a JSON Lines file (``.gz`` too)."""
    return [(f"{path}:{number}", row) for number, row in read_jsonl(path)]


def _first(row: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((row[n] for n in names if n in row), None)


def _passage(row: dict[str, Any], where: str) -> tuple[str, str, str]:
    """``(id, title, text)`` of a corpus row or passage object."""
    doc_id = _first(row, _ID_FIELDS)
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise TaskDataError(f"{where}: empty or missing passage id (a passage needs docid, title, text)")
    if any(ch.isspace() for ch in doc_id):
        raise TaskDataError(f"{where}: passage id {doc_id!r} contains whitespace (TREC files cannot hold it)")
    text = _first(row, _TEXT_FIELDS)
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise TaskDataError(f"{where}: passage {doc_id!r}: field 'text' must be a string")
    title = row.get("title") if isinstance(row.get("title"), str) else ""
    check_text_length(text, where, "text")
    check_text_length(title, where, "title")
    return doc_id, title, text


def read_corpus(path: Path) -> Corpus:
    """A corpus jsonl (``docid, title, text`` or ``id, contents``).

    Raises:
        TaskDataError: invalid JSON, an empty or missing id, an id that repeats (file and both lines).
    """
    ids, titles, texts, seen = [], [], [], {}
    for where, row in _json_rows(path):
        doc_id, title, text = _passage(row, where)
        if doc_id in seen:
            raise TaskDataError(f"{where}: passage id {doc_id!r} repeats {seen[doc_id]} (ids must be unique)")
        seen[doc_id] = f"line {where.rsplit(':', 1)[1]}"
        ids.append(doc_id)
        titles.append(title)
        texts.append(text)
    return Corpus(ids, titles, texts, source=str(path))


def read_topics(path: Path) -> dict[str, str]:
    """``{query id: query}`` from a topics TSV (``query_id<TAB>query``).

    Raises:
        TaskDataError: a line without a tab, an empty id or query, or an id that repeats.
    """
    topics: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise TaskDataError(f"{path}:{number}: expected 'query_id<TAB>query'")
        query_id, text = (part.strip() for part in line.split("\t", 1))
        if not query_id or any(ch.isspace() for ch in query_id):
            raise TaskDataError(f"{path}:{number}: empty query id or one with spaces ({query_id!r})")
        if not text:
            raise TaskDataError(f"{path}:{number}: query {query_id!r} has an empty text")
        check_text_length(text, f"{path}:{number}", "query")
        if query_id in topics:
            raise TaskDataError(f"{path}:{number}: query id {query_id!r} repeats line {lines[query_id]}")
        topics[query_id], lines[query_id] = text, number
    if not topics:
        raise TaskDataError(f"{path}: no topics")
    return topics


def from_files(corpus_path: Path, topics_path: Path, qrels_path: Path, language: str) -> RetrievalData:
    """Retrieval data from a corpus jsonl, a topics TSV and TREC qrels (validated against each other)."""
    corpus = read_corpus(corpus_path)
    topics = read_topics(topics_path)
    try:
        qrels = read_qrels(qrels_path, query_ids=topics, doc_ids=corpus.index, require_relevant=True)
    except TliError as exc:
        raise TaskDataError(str(exc)) from exc
    queries = [Query(qid, text, language) for qid, text in topics.items() if qid in qrels]
    return RetrievalData(
        task="mrtydi",
        language=language,
        queries=queries,
        corpus=corpus,
        qrels={q.id: qrels[q.id] for q in queries},
        query_language=language,
        passage_language=language,
        notes={
            "files": [str(corpus_path), str(topics_path), str(qrels_path)],
            "unjudged_queries": len(topics) - len(queries),
        },
    )


def from_query_jsonl(path: Path, language: str) -> RetrievalData:
    """Retrieval data from a jsonl of ``query_id, query, positive_passages, negative_passages``.

    Raises:
        TaskDataError: a missing field, a query without positive passages, a repeated query id, or a passage
            id given two different texts (file and line).
    """
    ids, titles, texts = [], [], []
    first: dict[str, tuple[str, str, str]] = {}
    queries, qrels = [], {}
    needs = "query_id, query, positive_passages, negative_passages"
    for where, row in _json_rows(path):
        query_id, text = row.get("query_id"), row.get("query")
        if isinstance(query_id, int) and not isinstance(query_id, bool):
            query_id = str(query_id)
        if (
            not isinstance(query_id, str)
            or not query_id.strip()
            or not isinstance(text, str)
            or not text.strip()
        ):
            raise TaskDataError(f"{where}: missing or empty query_id / query (rows need {needs})")
        check_text_length(text, where, "query")
        if query_id in qrels:
            raise TaskDataError(f"{where}: query_id {query_id!r} repeats (ids must be unique)")
        positives = row.get("positive_passages")
        negatives = row.get("negative_passages", [])
        if not isinstance(positives, list) or not isinstance(negatives, list):
            raise TaskDataError(
                f"{where}: positive_passages and negative_passages must be lists (rows need {needs})"
            )
        if not positives:
            raise TaskDataError(f"{where}: query {query_id!r} has no positive passage (nothing to retrieve)")
        judged = {}
        for relevance, group in ((1, positives), (0, negatives)):
            for item in group:
                if not isinstance(item, dict):
                    raise TaskDataError(f"{where}: a passage of query {query_id!r} is not an object")
                doc_id, title, body = _passage(item, where)
                if doc_id in first and first[doc_id][1:] != (title, body):
                    raise TaskDataError(
                        f"{where}: passage {doc_id!r} has another text than at {first[doc_id][0]}"
                    )
                if doc_id not in first:
                    first[doc_id] = (where, title, body)
                    ids.append(doc_id)
                    titles.append(title)
                    texts.append(body)
                judged[doc_id] = max(relevance, judged.get(doc_id, 0))
        queries.append(Query(query_id, text, language))
        qrels[query_id] = judged
    return RetrievalData(
        task="mrtydi",
        language=language,
        queries=queries,
        corpus=Corpus(ids, titles, texts, source=str(path)),
        qrels=qrels,
        query_language=language,
        passage_language=language,
        notes={"files": [str(path)], "corpus": "every passage of the query file"},
    )


def _language_of_name(name: str) -> str | None:
    lowered = name.lower()
    for language_name, code in LANGUAGES.items():
        if language_name in lowered:
            return code
    for part in lowered.replace("_", "-").replace(".", "-").split("-"):
        if part in LANGUAGES.values():
            return part
    return None


def _language_folders(folder: Path) -> dict[str, Path]:
    return {
        code: p
        for p in sorted(folder.iterdir())
        if p.is_dir()
        and (code := _language_of_name(p.name))
        and p.name not in ("collection", "topics", "qrels", "corpus")
    }


def _find(folder: Path, patterns: list[str]) -> Path | None:
    for pattern in patterns:
        found = sorted(p for p in folder.glob(pattern) if p.is_file())
        if found:
            return found[0]
    return None


def _split_patterns(kind: str, split: str) -> list[str]:
    names = SPLIT_NAMES[split]
    if kind == "topics":
        return [
            g
            for n in names
            for g in (f"topic.{n}.tsv", f"topics.{n}.tsv", f"topics/*{n}*.tsv", f"*topic*{n}*.tsv")
        ]
    return [g for n in names for g in (f"qrels.{n}.txt", f"qrels.{n}.tsv", f"qrels/*{n}*", f"*qrels*{n}*")]


CORPUS_PATTERNS = [
    "corpus.jsonl",
    "corpus.jsonl.gz",
    "collection/docs.jsonl",
    "collection/docs.jsonl.gz",
    "docs.jsonl",
    "docs.jsonl.gz",
    "corpus/*.jsonl",
    "corpus/*.jsonl.gz",
    "*corpus*.jsonl*",
]


class MrTyDiTask(RetrievalTask):
    """Mr. TyDi / MIRACL: queries retrieve Wikipedia passages of the same language."""

    name = "mrtydi"
    config_class = MrTyDiConfig
    primary_metric: ClassVar[str] = "mrr@100"

    def load_data(self, path: Any, language: str, split: str, config: Any = None) -> RetrievalData:
        if config is not None and getattr(config, "corpus", None):
            files = (config.corpus, config.topics, config.qrels)
            return from_files(*(Path(f).expanduser() for f in files), language)
        source = resolve_source(path, self.name)
        if source.kind == "hub":
            raise TaskDataError(
                f"mrtydi data {path!r}: download the language's release (e.g. mrtydi-v1.1-swahili.tar.gz "
                "from https://github.com/castorini/mr.tydi) and pass its folder; hub ids are not read for "
                "retrieval"
            )
        if source.kind == "file":
            named = _language_of_name(source.location.name)
            if named is not None and named != language:
                raise TaskDataError(f"{source.location}: holds language {named}, not {language!r}")
            return from_query_jsonl(source.location, language)
        folder = source.location
        folders = _language_folders(folder)
        if folders:
            if language not in folders:
                raise TaskDataError(
                    f"{folder}: no folder for language {language!r}; languages there: "
                    f"{', '.join(sorted(folders))}"
                )
            folder = folders[language]
        corpus = _find(folder, CORPUS_PATTERNS)
        topics = _find(folder, _split_patterns("topics", split))
        qrels = _find(folder, _split_patterns("qrels", split))
        if corpus and topics and qrels:
            return from_files(corpus, topics, qrels, language)
        query_file = _find(
            folder, [f"{n}.jsonl" for n in SPLIT_NAMES[split]] + [f"{n}.jsonl.gz" for n in SPLIT_NAMES[split]]
        )
        if query_file is not None:
            return from_query_jsonl(query_file, language)
        missing = [
            name
            for name, found in (
                ("corpus jsonl", corpus),
                (f"{split} topics TSV", topics),
                (f"{split} qrels", qrels),
            )
            if not found
        ]
        raise TaskDataError(
            f"{folder}: no {', '.join(missing)} (and no {split}.jsonl); expected e.g. collection/docs.jsonl, "
            f"topic.{SPLIT_NAMES[split][0]}.tsv, qrels.{SPLIT_NAMES[split][0]}.txt, or name them with "
            "tasks.mrtydi.corpus / topics / qrels"
        )

    def available_languages(self, path: Any) -> list[str]:
        """Languages of the language folders at ``path``, or of the file's name ([] when it does not say)."""
        source = resolve_source(path, self.name)
        if source.kind == "hub":
            return []
        if source.kind == "file":
            named = _language_of_name(source.location.name)
            return [named] if named else []
        folders = _language_folders(source.location)
        if folders:
            return sorted(folders)
        named = _language_of_name(source.location.name)
        return [named] if named else []
