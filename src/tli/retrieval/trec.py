"""TREC run and qrels files: the formats every IR tool reads (trec_eval, ranx, ir_measures, Pyserini).

- **qrels**: one judgement per line, ``query_id iteration doc_id relevance`` (whitespace separated; the
  iteration column is ignored, usually ``0`` or ``Q0``); relevance > 0 is relevant.
- **run**: one retrieved document per line, ``query_id Q0 doc_id rank score tag``.

IR tools order a run by score and break ties their own way (trec_eval by document id, ranx in an order
that can change between processes), so a run with tied scores can give different figures in different
tools. tli never writes one: scores tied in tli's ranking are separated by the smallest float step in rank
order (:func:`untie`), and *reading* a run with ties, or one that lists a document twice for a query, is an
error naming the file and both lines. Unknown query or document ids are errors too (file and line), when
the caller passes the known ids.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from tli.errors import DataError
from tli.io import atomic_write_text

Run = dict[str, dict[str, float]]
"""``{query id: {doc id: score}}``; a higher score ranks higher."""
Qrels = dict[str, dict[str, int]]
"""``{query id: {doc id: relevance}}``."""


class TrecFormatError(DataError):
    """A TREC run or qrels file that cannot be used (the message names the file and line)."""


def _lines(path: Path) -> Iterable[tuple[int, list[str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrecFormatError(f"{path}: cannot read ({exc})") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield number, line.split()


def read_qrels(
    path: str | os.PathLike,
    *,
    query_ids: Collection[str] | None = None,
    doc_ids: Collection[str] | None = None,
    require_relevant: bool = False,
) -> Qrels:
    """Read a TREC qrels file (``query_id iteration doc_id relevance``; three columns without the iteration
    are accepted too).

    Args:
        path: The file.
        query_ids: Known query ids; a judgement of another query is an error. None: not checked.
        doc_ids: Known passage ids; a judgement of another passage is an error. None: not checked.
        require_relevant: Every judged query needs a relevant (> 0) passage, and so does the file.

    Raises:
        TrecFormatError: a line with the wrong number of fields, a relevance that is not a whole number, an
            unknown query or document, a document judged twice for one query, no judgement at all, or (with
            ``require_relevant``) a query whose judgements are all non-relevant.
    """
    path = Path(path)
    qrels: Qrels = {}
    first_line: dict[tuple[str, str], int] = {}
    for number, fields in _lines(path):
        if len(fields) not in (3, 4):
            raise TrecFormatError(
                f"{path}:{number}: expected 'query_id 0 doc_id relevance' (4 fields), found {len(fields)}"
            )
        query, doc, rel_text = fields[0], fields[-2], fields[-1]
        try:
            relevance = int(rel_text)
        except ValueError:
            raise TrecFormatError(f"{path}:{number}: relevance {rel_text!r} is not a whole number") from None
        _check_known(path, number, query, doc, query_ids, doc_ids, " (topics)")
        if (query, doc) in first_line:
            raise TrecFormatError(
                f"{path}:{number}: query {query!r} judges document {doc!r} again "
                f"(first at line {first_line[query, doc]}); keep one judgement"
            )
        first_line[query, doc] = number
        qrels.setdefault(query, {})[doc] = relevance
    if not qrels:
        raise TrecFormatError(f"{path}: no judgements (empty qrels file)")
    if require_relevant:
        for query, docs in qrels.items():
            if not any(rel > 0 for rel in docs.values()):
                line = min(first_line[query, doc] for doc in docs)
                raise TrecFormatError(
                    f"{path}:{line}: query {query!r} has no relevant passage (every judgement is <= 0); "
                    "judge one relevant or remove the query"
                )
    return qrels


def _check_known(
    path: Path,
    number: int,
    query: str,
    doc: str,
    query_ids: Collection[str] | None,
    doc_ids: Collection[str] | None,
    query_set: str = "",
) -> None:
    """A line naming a query or document the data does not have is an error (file and line named)."""
    if query_ids is not None and query not in query_ids:
        raise TrecFormatError(f"{path}:{number}: query {query!r} is not in the query set{query_set}")
    if doc_ids is not None and doc not in doc_ids:
        raise TrecFormatError(f"{path}:{number}: document {doc!r} is not in the corpus")


def read_run(
    path: str | os.PathLike,
    *,
    query_ids: Collection[str] | None = None,
    doc_ids: Collection[str] | None = None,
    allow_empty: bool = False,
) -> Run:
    """Read a TREC run file (``query_id Q0 doc_id rank score tag``).

    Args:
        allow_empty: accept a file with no line (a system that retrieved nothing for any query, e.g. BM25 when
            no query word occurs in a corpus of another language); every metric of such a run is 0.

    Raises:
        TrecFormatError: a line with the wrong number of fields, a score that is not a finite number, an
            unknown query or document, a document listed twice for one query, two documents of one query
            with the same score (the ranking would depend on the tool that reads it), or an empty file.
    """
    path = Path(path)
    run: Run = {}
    where: dict[tuple[str, str], int] = {}
    by_score: dict[tuple[str, float], tuple[int, str]] = {}
    for number, fields in _lines(path):
        if len(fields) != 6:
            raise TrecFormatError(
                f"{path}:{number}: expected 'query_id Q0 doc_id rank score tag' (6 fields), "
                f"found {len(fields)}"
            )
        query, _, doc, _, score_text, _ = fields
        try:
            score = float(score_text)
        except ValueError:
            raise TrecFormatError(f"{path}:{number}: score {score_text!r} is not a number") from None
        if not math.isfinite(score):
            raise TrecFormatError(f"{path}:{number}: score {score_text!r} is not finite")
        _check_known(path, number, query, doc, query_ids, doc_ids)
        if (query, doc) in where:
            raise TrecFormatError(
                f"{path}:{number}: query {query!r} lists document {doc!r} twice (first at line "
                f"{where[query, doc]}); a run ranks each document once"
            )
        if (query, score) in by_score:
            line, other = by_score[query, score]
            raise TrecFormatError(
                f"{path}:{number}: query {query!r} gives {doc!r} the same score {score_text} as {other!r} "
                f"(line {line}); tools break ties differently, so break them in the file (e.g. by rank)"
            )
        where[query, doc] = number
        by_score[query, score] = (number, doc)
        run.setdefault(query, {})[doc] = score
    if not run and not allow_empty:
        raise TrecFormatError(f"{path}: no results (empty run file)")
    return run


def untie(scores: np.ndarray) -> np.ndarray:
    """Strictly decreasing float64 scores from scores already in rank order, changing ties only.

    ``s'_0 = s_0``, ``s'_j = min(s_j, nextafter(s'_{j-1}, -inf))``: a score equal to (or, through rounding,
    above) its predecessor is lowered by the smallest representable step, so every tool reads the same
    order and untied scores keep their exact values.

    Args:
        scores: ``(k,)`` or ``(n, k)`` scores, each row in rank order (non-increasing); ``-inf`` marks an
            empty slot and is left alone.
    """
    out = np.array(scores, dtype=np.float64, copy=True)
    view = out.reshape(-1, out.shape[-1]) if out.ndim else out.reshape(1, 1)
    for j in range(1, view.shape[1]):  # k columns of vector operations, not n·k Python steps
        previous = np.nextafter(view[:, j - 1], -np.inf)
        column = view[:, j]
        finite = np.isfinite(column)
        view[:, j] = np.where(finite, np.minimum(column, previous), column)
    return out


def ranked(results: Mapping[str, float]) -> list[tuple[str, float]]:
    """``(doc id, score)`` in rank order: score descending, then doc id ascending (for reading only; tli's
    own runs have no ties)."""
    return sorted(results.items(), key=lambda item: (-item[1], item[0]))


def write_run(path: str | os.PathLike, run: Mapping[str, Mapping[str, float]], tag: str) -> Path:
    """Write ``run`` as a TREC run file (queries in the order given, documents by descending score).

    Scores are written with 17 significant digits, so the file reproduces tli's ranking exactly.

    Raises:
        ValueError: ``run`` has tied scores within a query (build runs with :func:`untie`).
    """
    tag = "_".join(str(tag).split()) or "tli"
    lines = []
    for query, results in run.items():
        ordered = ranked(results)
        for rank, (doc, score) in enumerate(ordered, start=1):
            if rank > 1 and score == ordered[rank - 2][1]:
                raise ValueError(f"run for query {query!r} has tied scores; untie it before writing")
            lines.append(f"{query} Q0 {doc} {rank} {score:.17g} {tag}\n")
    return atomic_write_text(path, "".join(lines))


def write_qrels(path: str | os.PathLike, qrels: Mapping[str, Mapping[str, int]]) -> Path:
    """Write ``qrels`` as a TREC qrels file (``query_id 0 doc_id relevance``)."""
    lines = [f"{query} 0 {doc} {int(rel)}\n" for query, docs in qrels.items() for doc, rel in docs.items()]
    return atomic_write_text(path, "".join(lines))


def run_from_ranking(
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    indices: np.ndarray,
    scores: np.ndarray,
) -> Run:
    """A tie-free run from top-k positions and scores in rank order.

    Args:
        query_ids: Id of each row.
        doc_ids: Id of each document position.
        indices: ``(n_queries, k)`` document positions, each row in rank order; ``-1`` marks an empty slot.
        scores: ``(n_queries, k)`` their scores (``-inf`` in empty slots).
    """
    untied = untie(scores)
    run: Run = {}
    for row, query in enumerate(query_ids):
        run[query] = {
            doc_ids[int(j)]: float(s) for j, s in zip(indices[row], untied[row], strict=True) if j >= 0
        }
    return run
