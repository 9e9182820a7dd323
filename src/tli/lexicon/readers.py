"""Reading a lexicon file (:func:`read_lexicon`): JSON, CSV, or TSV/TXT with or without a header row (the
MUSE format), validated entry by entry; every problem is one :class:`~tli.errors.LexiconError` that names
the file and the line and says what to do."""

from __future__ import annotations

import bisect
import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tli.errors import LexiconError
from tli.lexicon.lexicon import Lexicon
from tli.lexicon.pairs import GROUPS, Pair, _q
from tli.limits import MAX_TABLE_BYTES, MAX_WORD_CHARS, json_too_deep, nesting_message, too_big, too_long

SUFFIXES = {".json": "json", ".csv": "csv", ".tsv": "tsv", ".txt": "tsv"}
_SOURCE_KEYS = ("source", "swahili")
_TARGET_KEYS = ("target", "english")
_LANG_NAMES = {"swahili": "sw", "english": "en"}
_RESERVED = ("source_lang", "target_lang", "pairs")
_KEYS_HELP = 'accepted keys: "source"/"target" or "swahili"/"english", optional "group"'

_Raw = tuple[int, str, str, "str | None"]  # line, source, target, group
_Row = tuple[int, list[str]]  # first line of the record, cells
_Fail = Callable[[int, str], LexiconError]  # (line, message) -> "<file> line <n>: <message>"


def _fail_for(label: str) -> _Fail:
    return lambda line, message: LexiconError(f"{label} line {line}: {message}")


_ENTRY_HELP = 'write it as {"source": ..., "target": ...}'
_HEADER_HELP = (
    "start with a header row such as source,target (or swahili,english; optional group), "
    "or give exactly two columns (source, target) without a header"
)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "true/false"}
_HEADER_NAMES = ("source", "target", "swahili", "english", "group")


def _kind(value: Any) -> str:
    return "null" if value is None else _KINDS.get(type(value), "a number")


def _norm(text: str) -> str:
    return " ".join(text.split())


def _format_for(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise LexiconError(
            f'{path}: unsupported file type "{suffix or "(no suffix)"}" — use one of '
            ".json, .csv, .tsv or .txt (tab-separated)"
        )
    return SUFFIXES[suffix]


def _read_text(path: Path) -> str:
    if not path.exists():
        raise LexiconError(f"{path}: no such file — check the path")
    if path.is_dir():
        raise LexiconError(f"{path}: is a directory — give a .json, .csv or .tsv lexicon file")
    try:
        size = path.stat().st_size
        if problem := too_big(size, MAX_TABLE_BYTES):
            raise LexiconError(f"{path}: the file {problem} — is it a lexicon?")
        data = path.read_bytes()
    except OSError as exc:
        raise LexiconError(f"{path}: cannot read it ({exc.strerror}) — check permissions") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = exc.start
        line, column = data.count(b"\n", 0, at) + 1, at - data.rfind(b"\n", 0, at)
        message = f"not valid UTF-8 (byte 0x{data[at]:02x} at column {column})"
        raise _fail_for(str(path))(line, message + " — re-save the file as UTF-8") from exc
    return text[1:] if text.startswith("\ufeff") else text


def _skip_ws(text: str, i: int) -> int:
    return _WHITESPACE.match(text, i).end()


def _json_members(text: str, start: int) -> list[tuple[int, Any, Any]]:
    """(value offset, key or None, value) of each member of the valid JSON array/object at start."""
    decoder, members, is_object = json.JSONDecoder(), [], text[start] == "{"
    i = _skip_ws(text, start + 1)
    while text[i] not in "]}":
        key = None
        if is_object:
            key, end = decoder.raw_decode(text, i)
            i = _skip_ws(text, _skip_ws(text, end) + 1)  # past the colon
        value, end = decoder.raw_decode(text, i)
        members.append((i, key, value))
        i = _skip_ws(text, end)
        i = _skip_ws(text, i + 1) if text[i] == "," else i
    return members


def _read_json(text: str, fail: _Fail) -> tuple[list[_Raw], dict[str, Any]]:
    if (deep := json_too_deep(text)) is not None:
        raise fail(deep, f"{nesting_message()} — a lexicon is a list of pairs")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at column {exc.colno}"
        raise fail(exc.lineno, f"malformed JSON ({where}) — fix the syntax there") from exc
    newlines = [i for i, char in enumerate(text) if char == "\n"]

    def line_of(offset: int) -> int:
        return bisect.bisect_left(newlines, offset) + 1

    start, header = _skip_ws(text, 0), {}
    if isinstance(document, dict):
        offsets = {key: offset for offset, key, _ in _json_members(text, start)}
        if "pairs" not in document:
            raise fail(line_of(start), 'the top-level object has no "pairs" — add "pairs": [...]')
        for key in ("source_lang", "target_lang"):
            value = document.get(key, "sw")
            if not isinstance(value, str) or not value.strip():
                code = 'give a language code such as "sw" or "en"'
                raise fail(line_of(offsets[key]), f'"{key}" is {_kind(value)} — {code}')
        header, start, document = document, offsets["pairs"], document["pairs"]
        if not isinstance(document, list):
            raise fail(line_of(start), f'"pairs" is {_kind(document)}, not a list of pairs')
    elif not isinstance(document, list):
        raise fail(
            line_of(start),
            f"the top level is {_kind(document)} — use a list of pairs or an object with "
            '"source_lang", "target_lang" and "pairs"',
        )
    raws = []
    for offset, _, item in _json_members(text, start):
        line = line_of(offset)
        if not isinstance(item, dict):
            raise fail(line, f"entry is {_kind(item)}, not an object — {_ENTRY_HELP}")
        values = []
        for name, keys in (("source", _SOURCE_KEYS), ("target", _TARGET_KEYS)):
            key = next((k for k in keys if k in item), None)
            if key is None:
                raise fail(line, f"entry has no {name} — {_KEYS_HELP}")
            if not isinstance(item[key], str):
                shown = f"{_kind(item[key])} ({_q(item[key])})"
                raise fail(line, f'"{key}" is {shown}, not a string — put it in quotes')
            values.append(item[key])
        group = item.get("group")
        if group is not None and not isinstance(group, str):
            raise fail(line, f'"group" is {_kind(group)} — use "trained" or "control"')
        raws.append((line, values[0], values[1], group))
    return raws, header


def _column(cells: list[str], generic: str, name: str) -> tuple[int, str | None]:
    """Index and language code of the first header cell naming this column, or (-1, None)."""
    for index, cell in enumerate(cells):
        code = cell[len(generic) + 1 :].strip() if cell.startswith(generic + ":") else ""
        if cell == generic or code:
            return index, code or None
        if cell == name:
            return index, _LANG_NAMES[cell]
    return -1, None


def _width(cells: list[str]) -> int:
    """Number of cells up to the last non-blank one."""
    return max((i + 1 for i, cell in enumerate(cells) if cell.strip()), default=0)


def _delimited_rows(text: str, delimiter: str, fail: _Fail) -> Iterator[_Row]:
    """Records of CSV/TSV text with their first line number; comment lines between records skipped."""
    at_record_start = [True]

    def lines() -> Iterator[str]:
        # A "#" line is a comment only where a record starts, never inside a quoted multi-line value;
        # it is blanked rather than removed so that the reader's line numbers stay right.
        for line in io.StringIO(text, newline=""):
            comment = at_record_start[0] and line.lstrip().startswith("#")
            at_record_start[0] = False
            yield "\n" if comment else line

    reader, previous = csv.reader(lines(), delimiter=delimiter), 0
    try:
        for row in reader:
            yield previous + 1, row
            previous, at_record_start[0] = reader.line_num, True
    except csv.Error as exc:
        raise fail(reader.line_num, f"unreadable row ({exc}) — fix the quoting") from exc


def _spaced_rows(text: str) -> Iterator[_Row]:
    """Lines of a tab-less TXT/TSV file split at runs of whitespace (MUSE ``source target`` lines)."""
    for number, line in enumerate(io.StringIO(text, newline=""), 1):
        if not line.lstrip().startswith("#"):
            yield number, line.split()


def _header(
    line: int, row: list[str], fail: _Fail, separator: str, spaced: bool
) -> tuple[tuple[int, int, int], dict[str, Any] | None]:
    """(source, target, group) column indices and languages of a header row; ``None`` languages = data.

    A first row is a header when its cells name a source and a target column; a row that names only
    one, or a delimited row of more than two cells without any known name, is a broken header.
    """
    cells = [cell.strip().lower() for cell in row]
    source, source_lang = _column(cells, "source", "swahili")
    target, target_lang = _column(cells, "target", "english")
    if source >= 0 and target >= 0:
        group = cells.index("group") if "group" in cells else -1
        return (source, target, group), {"source_lang": source_lang, "target_lang": target_lang}
    named = any(cell in _HEADER_NAMES or cell.startswith(("source:", "target:")) for cell in cells)
    if named or (not spaced and _width(row) > 2):
        shown = _q(separator.join(row))
        raise fail(line, f"header {shown} lacks source and target — {_HEADER_HELP}")
    return (0, 1, -1), None


def _extra_message(row: list[str], width: int, headed: bool, delimiter: str | None) -> str:
    if delimiter is None:
        return (
            f"{len(row)} space-separated words {_q(' '.join(row))} — in a file without tabs each line "
            "is a source and a target split at the first space, so a multiword entry cannot be told "
            "apart; separate source and target with a tab"
        )
    column = next(i for i in range(width, len(row)) if row[i].strip())
    where = f"beyond the {width} columns of the header" if headed else "of a file without header"
    quote = ", quote values that contain commas" if delimiter == "," else ""
    name = "name the column in the header" if headed else "add a header row naming every column"
    return f"extra value {_q(row[column])} in column {column + 1} {where} — delete it{quote}, or {name}"


def _read_table(text: str, fail: _Fail, kind: str) -> tuple[list[_Raw], dict[str, Any]]:
    """Rows of a CSV or TSV/TXT lexicon, with or without a header row.

    Without a header the columns are source then target (the MUSE format). A TSV/TXT file without any
    tab is read as space-separated: each line is split at runs of whitespace.
    """
    spaced = kind == "tsv" and "\t" not in text
    delimiter = None if spaced else ("," if kind == "csv" else "\t")
    rows = _spaced_rows(text) if delimiter is None else _delimited_rows(text, delimiter, fail)
    raws: list[_Raw] = []
    header: dict[str, Any] | None = None
    columns, width = None, 2
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if columns is None:
            columns, header = _header(line, row, fail, delimiter or " ", spaced)
            if header is not None:
                width = _width(row)
                continue
        if _width(row) > width:
            raise fail(line, _extra_message(row, width, header is not None, delimiter))
        source, target, group = (row[i] if 0 <= i < len(row) else "" for i in columns)
        raws.append((line, source, target, group if columns[2] >= 0 else None))
    return raws, {key: value for key, value in (header or {}).items() if value}


def _build(label: str, fail: _Fail, raws: list[_Raw]) -> list[Pair]:
    pairs: list[Pair] = []
    seen: dict[tuple[str, str], int] = {}
    group_lines: dict[str, dict[str, int]] = {}
    with_group = without_group = 0
    for line, raw_source, raw_target, raw_group in raws:
        source, target = _norm(raw_source), _norm(raw_target)
        for side, value in (("source", source), ("target", target)):
            if problem := too_long(value, MAX_WORD_CHARS):
                raise fail(
                    line, f"the {side} {_q(value)} {problem} — a lexicon entry is a word or a short phrase"
                )
        if not (source and target):
            empty = " and ".join(n for n, v in (("source", source), ("target", target)) if not v)
            side = "target" if target else "source"
            known = f" for {side} {_q(target or source)}" if source or target else ""
            raise fail(line, f"empty {empty}{known} — fill it in or delete the line")
        group = _norm(raw_group).lower() if raw_group is not None else ""
        if group and group not in GROUPS:
            use = 'use "trained" or "control", or leave it empty'
            raise fail(line, f"unknown group {_q(raw_group)} for {_q(source)} — {use}")
        if (source, target) in seen:
            first = f"first on line {seen[source, target]}"
            raise fail(line, f"duplicate pair {_q(source)} → {_q(target)} ({first}) — delete one")
        seen[source, target] = line
        if group:
            with_group = with_group or line
            lines = group_lines.setdefault(source, {})
            lines.setdefault(group, line)
            if len(lines) > 1:
                other = "trained" if group == "control" else "control"
                where = f'"{group}" here but "{other}" on line {lines[other]}'
                fix = "keep all senses of a source word in one group"
                raise fail(line, f"source {_q(source)} is {where} — {fix}")
        else:
            without_group = without_group or line
        pairs.append(Pair(source, target, group or None))
    if with_group and without_group:
        fix = 'give every pair a group ("trained"/"control") or none'
        raise fail(without_group, f"pair has no group but line {with_group} has one — {fix}")
    if not pairs:
        raise LexiconError(f"no pairs in {label} — add at least one source/target pair")
    return pairs


def read_lexicon(
    path: str | os.PathLike, source_lang: str | None = None, target_lang: str | None = None
) -> Lexicon:
    """Read and validate a lexicon file.

    Formats, by suffix:

    - ``.json``: a list of ``{"source", "target", "group"?}`` objects (or ``"swahili"``/``"english"``
      keys), or an object with ``"source_lang"``, ``"target_lang"``, ``"pairs"`` and other metadata.
    - ``.csv``, ``.tsv``, ``.txt`` (tab-separated): an optional header row naming the columns
      (``source``/``target``, ``swahili``/``english``, ``source:<lang>``/``target:<lang>``, optional
      ``group``; other named columns are ignored) — a first row is a header only when it names them,
      else it is data and the file has two columns, source then target (MUSE dictionaries). A
      ``.tsv``/``.txt`` file with no tab at all is split at the first run of spaces, so its entries
      must be single words. Lines starting with ``#`` (after optional blanks) are comments.

    Args:
        path: A ``.json``, ``.csv``, ``.tsv`` or ``.txt`` file.
        source_lang: Source language code; overrides what the file says (default "sw").
        target_lang: Target language code; overrides what the file says (default "en").

    Returns:
        The lexicon, pairs in file order, whitespace inside values collapsed to single spaces.

    Raises:
        LexiconError: For any problem, with a one-line message naming the file and line.
    """
    path = Path(path)
    label, kind = str(path), _format_for(path)
    text, fail = _read_text(path), _fail_for(label)
    if kind == "json":
        raws, header = _read_json(text, fail)
    else:
        raws, header = _read_table(text, fail, kind)
    pairs = _build(label, fail, raws)
    meta = {key: value for key, value in header.items() if key not in _RESERVED}
    source_lang = source_lang or header.get("source_lang", "sw").strip()
    target_lang = target_lang or header.get("target_lang", "en").strip()
    return Lexicon(pairs, source_lang, target_lang, label, meta)
