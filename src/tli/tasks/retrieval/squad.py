"""Reading SQuAD v1.1-format JSON (XQuAD, TyDi QA GoldP) as retrieval data.

The format: ``{"version": ..., "data": [{"title": ..., "paragraphs": [{"context": ..., "qas": [{"id": ...,
"question": ..., "answers": [...]}]}]}]}``. As retrieval, each question is a query and each paragraph
(``context``) a passage; a question's relevant passage is its own paragraph. Identical paragraphs are merged
(they would tie under every scorer and make each other misses), and the merge is counted.

Errors name the file and the JSON position (``data[3].paragraphs[2].qas[5]``), SQuAD files being single JSON
documents rather than lines; a file that is not valid JSON names its line and column.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tli.limits import json_too_deep, nesting_message
from tli.retrieval.data import Corpus, Query, RetrievalData, merge_duplicate_passages
from tli.tasks.base import TaskDataError
from tli.tasks.sources import check_text_length


@dataclass(frozen=True)
class SquadQuestion:
    """A question of a SQuAD file with the position of its paragraph."""

    id: str
    text: str
    article: int
    paragraph: int
    where: str


@dataclass
class SquadFile:
    """A SQuAD file read as paragraphs (``(article, paragraph) → (title, context)``) and questions."""

    path: Path
    paragraphs: dict[tuple[int, int], tuple[str, str]]
    questions: list[SquadQuestion]


def read_json(path: Path) -> Any:
    """A JSON document, with a file:line:column error when it is not valid JSON."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskDataError(f"{path}: cannot read ({exc})") from exc
    if (deep := json_too_deep(text)) is not None:
        raise TaskDataError(f"{path}:{deep}: {nesting_message()}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskDataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from exc


def _string(value: Any, path: Path, where: str, name: str, *, allow_empty: bool = False) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and name == "id":
        return str(value)
    if not isinstance(value, str):
        state = "missing" if value is None else f"not a string ({type(value).__name__})"
        raise TaskDataError(f"{path}: {where}: field {name!r} is {state} (SQuAD v1.1 format)")
    if not allow_empty and not value.strip():
        raise TaskDataError(f"{path}: {where}: field {name!r} is empty")
    check_text_length(value, f"{path}: {where}", name)
    return value


def read_squad(path: Path, *, keep: Callable[[str], bool] | None = None) -> SquadFile:
    """Read a SQuAD v1.1 file; ``keep(question_id)`` selects questions (TyDi: by language prefix).

    Raises:
        TaskDataError: invalid JSON, no ``data`` list, a missing or empty field (file and JSON position), a
            question id used twice.
    """
    document = read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise TaskDataError(f"{path}: not SQuAD format (expected an object with a 'data' list of articles)")
    paragraphs: dict[tuple[int, int], tuple[str, str]] = {}
    questions: list[SquadQuestion] = []
    seen: dict[str, str] = {}
    for a, article in enumerate(document["data"]):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise TaskDataError(f"{path}: data[{a}]: expected an object with a 'paragraphs' list")
        title = article.get("title") if isinstance(article.get("title"), str) else ""
        for p, paragraph in enumerate(article["paragraphs"]):
            where = f"data[{a}].paragraphs[{p}]"
            if not isinstance(paragraph, dict):
                raise TaskDataError(f"{path}: {where}: expected an object with 'context' and 'qas'")
            qas = paragraph.get("qas")
            if not isinstance(qas, list):
                raise TaskDataError(f"{path}: {where}: field 'qas' is missing or not a list")
            selected = []
            for q, qa in enumerate(qas):
                at = f"{where}.qas[{q}]"
                if not isinstance(qa, dict):
                    raise TaskDataError(f"{path}: {at}: expected an object with 'id' and 'question'")
                question_id = _string(qa.get("id"), path, at, "id")
                if keep is not None and not keep(question_id):
                    continue
                if question_id in seen:
                    raise TaskDataError(
                        f"{path}: {at}: question id {question_id!r} repeats {seen[question_id]}"
                    )
                seen[question_id] = at
                selected.append(
                    SquadQuestion(question_id, _string(qa.get("question"), path, at, "question"), a, p, at)
                )
            if selected or keep is None:
                context = _string(paragraph.get("context"), path, where, "context", allow_empty=True)
                paragraphs[a, p] = (title, context)
                questions += selected
    return SquadFile(path, paragraphs, questions)


def passage_id(article: int, paragraph: int) -> str:
    """The passage id of a SQuAD paragraph: ``a<article>p<paragraph>`` (the same in parallel files)."""
    return f"a{article}p{paragraph}"


def squad_retrieval(
    queries: SquadFile,
    passages: SquadFile,
    *,
    task: str,
    language: str,
    query_language: str,
    passage_language: str,
):
    """Retrieval data: questions of ``queries`` against paragraphs of ``passages`` (the same file for
    monolingual retrieval; parallel files, matched by paragraph position, for cross-lingual).

    Raises:
        TaskDataError: a question whose paragraph position does not exist in the passage file (the files
            are not parallel), or no question at all.
    """
    keys = sorted(passages.paragraphs)
    kept, representative = merge_duplicate_passages([passages.paragraphs[k] for k in keys])
    position = {k: i for i, k in enumerate(keys)}
    corpus = Corpus(
        ids=[passage_id(*keys[i]) for i in kept],
        titles=[passages.paragraphs[keys[i]][0] for i in kept],
        texts=[passages.paragraphs[keys[i]][1] for i in kept],
        source=str(passages.path),
    )
    query_list, qrels = [], {}
    for question in queries.questions:
        key = (question.article, question.paragraph)
        if key not in position:
            raise TaskDataError(
                f"{queries.path}: {question.where}: question {question.id!r} has no parallel paragraph "
                f"data[{key[0]}].paragraphs[{key[1]}] in {passages.path} (are the files parallel?)"
            )
        query_list.append(Query(question.id, question.text, language))
        qrels[question.id] = {passage_id(*keys[representative[position[key]]]): 1}
    if not query_list:
        raise TaskDataError(f"{queries.path}: no questions (a query set with no relevant passage)")
    return RetrievalData(
        task=task,
        language=language,
        queries=query_list,
        corpus=corpus,
        qrels=qrels,
        query_language=query_language,
        passage_language=passage_language,
        notes={
            "files": sorted({str(queries.path), str(passages.path)}),
            "duplicate_passages_merged": len(keys) - len(kept),
        },
    )
