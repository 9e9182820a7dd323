"""Bilingual lexicons: reading, validation, writing, fingerprints and trained/control splits.

A lexicon is an ordered list of :class:`Pair` (source word, target word, optional group). Files are
JSON (a list of pairs, or an object with language codes and ``"pairs"``), CSV or TSV with a header
row. Every problem in a file raises :class:`~tli.errors.LexiconError` with a one-line message that
names the file and the line and says what to do.

The split into "trained" and "control" words is made by *source word*: all senses of a source word
land on the same side, so no control word leaks into training.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import os
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from tli.errors import ConfigError, LexiconError
from tli.io import atomic_write_text, sha256_text

GROUPS = ("trained", "control")
DEFAULT_CONTROL_FRACTION = 63 / 686
SUFFIXES = {".json": "json", ".csv": "csv", ".tsv": "tsv", ".txt": "tsv"}
_SOURCE_KEYS = ("source", "swahili")
_TARGET_KEYS = ("target", "english")
_LANG_NAMES = {"swahili": "sw", "english": "en"}
_RESERVED = ("source_lang", "target_lang", "pairs")
_KEYS_HELP = 'accepted keys: "source"/"target" or "swahili"/"english", optional "group"'


@dataclass(frozen=True)
class Pair:
    """One lexicon entry.

    Attributes:
        source: Source-language word or phrase, e.g. ``"mbwa"``.
        target: Target-language word or phrase, e.g. ``"dog"``.
        group: ``"trained"`` or ``"control"`` when the file carries a split, else ``None``.
    """

    source: str
    target: str
    group: str | None = None


@dataclass
class Lexicon:
    """An ordered list of pairs with its language codes.

    Attributes:
        pairs: The pairs, in file order.
        source_lang: Language code of the sources.
        target_lang: Language code of the targets.
        path: The file it was read from (used in messages), if any.
        meta: Other top-level fields of a JSON lexicon (name, license, notes); kept on rewrite.
    """

    pairs: list[Pair]
    source_lang: str = "sw"
    target_lang: str = "en"
    path: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.pairs = list(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.pairs)

    @property
    def sources(self) -> list[str]:
        """Source side of every pair, in order (repeats for words with several senses)."""
        return [pair.source for pair in self.pairs]

    @property
    def targets(self) -> list[str]:
        """Target side of every pair, in order."""
        return [pair.target for pair in self.pairs]

    def _label(self) -> str:
        return self.path or "lexicon"

    def fingerprint(self) -> str:
        """SHA-256 of a canonical JSON dump of the languages and the ordered pairs."""
        pairs = [[p.source, p.target, p.group] for p in self.pairs]
        canonical = {
            "source_lang": self.source_lang,
            "target_lang": self.target_lang,
            "pairs": pairs,
        }
        return sha256_text(json.dumps(canonical, ensure_ascii=False, separators=(",", ":")))

    def _like(self, pairs: list[Pair]) -> Lexicon:
        return Lexicon(pairs, self.source_lang, self.target_lang, self.path, dict(self.meta))

    def subset(self, group: str) -> Lexicon:
        """The pairs of one group (``"trained"`` or ``"control"``), with the same languages.

        Raises:
            LexiconError: If no pair has that group.
        """
        pairs = [pair for pair in self.pairs if pair.group == group]
        if not pairs:
            raise LexiconError(
                f'{self._label()}: no pairs in group "{group}" — assign groups with '
                "with_split() or use trained_and_control()"
            )
        return self._like(pairs)

    def has_split(self) -> bool:
        """Whether every pair has a group in ``{"trained", "control"}``."""
        return bool(self.pairs) and all(pair.group in GROUPS for pair in self.pairs)

    def _control_sources(self, control_fraction: float, seed: int) -> set[str]:
        if not 0 < control_fraction < 1:
            raise ConfigError(f"control_fraction={control_fraction!r} — use a value in (0, 1)")
        sources = sorted(set(self.sources))
        if len(sources) < 2:
            raise LexiconError(
                f"{self._label()}: cannot split {len(sources)} source word(s) into trained and "
                "control — add at least 2 distinct source words"
            )
        n_control = min(max(1, round(control_fraction * len(sources))), len(sources) - 1)
        return set(random.Random(seed).sample(sources, n_control))

    def split(
        self, control_fraction: float = DEFAULT_CONTROL_FRACTION, seed: int = 0
    ) -> tuple[Lexicon, Lexicon]:
        """Seeded split by source word into trained and control lexicons.

        All pairs sharing a source word go to the same side. The control side gets
        ``round(control_fraction * n_unique_sources)`` source words (at least 1, leaving at least 1
        for training), drawn with ``random.Random(seed)`` from the sorted unique sources, so the
        split depends on the set of words and not on their order in the file.

        Args:
            control_fraction: Share of unique source words held out as controls.
            seed: Random seed.

        Returns:
            ``(trained, control)``, pairs in file order, groups set to "trained"/"control".

        Raises:
            ConfigError: If ``control_fraction`` is not strictly between 0 and 1.
            LexiconError: If there are fewer than 2 distinct source words.
        """
        split = self.with_split(control_fraction, seed)
        return split.subset("trained"), split.subset("control")

    def with_split(self, control_fraction: float = DEFAULT_CONTROL_FRACTION, seed: int = 0) -> Lexicon:
        """This lexicon, in the same order, with groups assigned as by :meth:`split`."""
        control = self._control_sources(control_fraction, seed)
        groups = {True: "control", False: "trained"}
        return self._like([replace(p, group=groups[p.source in control]) for p in self.pairs])

    def trained_and_control(
        self, control_fraction: float = DEFAULT_CONTROL_FRACTION, seed: int = 0
    ) -> tuple[Lexicon, Lexicon]:
        """The stored split when :meth:`has_split`, else :meth:`split` with these arguments."""
        if self.has_split():
            return self.subset("trained"), self.subset("control")
        return self.split(control_fraction, seed)


_Raw = tuple[int, str, str, "str | None"]  # line, source, target, group
_Fail = Callable[[int, str], LexiconError]  # (line, message) -> "<file> line <n>: <message>"


def _fail_for(label: str) -> _Fail:
    return lambda line, message: LexiconError(f"{label} line {line}: {message}")


_ENTRY_HELP = 'write it as {"source": ..., "target": ...}'
_HEADER_HELP = "start with a header row such as source,target (or swahili,english; optional group)"
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "true/false"}


def _q(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


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


def _read_table(text: str, fail: _Fail, delimiter: str) -> tuple[list[_Raw], dict[str, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    raws, header, columns, previous = [], {}, (), 0
    try:
        for row in reader:
            line, previous = previous + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if not columns:
                cells = [cell.strip().lower() for cell in row]
                source, source_lang = _column(cells, "source", "swahili")
                target, target_lang = _column(cells, "target", "english")
                if source < 0 or target < 0:
                    shown = _q(delimiter.join(row))
                    raise fail(line, f"header {shown} lacks source and target — {_HEADER_HELP}")
                columns = (source, target, cells.index("group") if "group" in cells else -1)
                header = {"source_lang": source_lang, "target_lang": target_lang}
                continue
            source, target, group = (row[i] if 0 <= i < len(row) else "" for i in columns)
            raws.append((line, source, target, group if columns[2] >= 0 else None))
    except csv.Error as exc:
        raise fail(reader.line_num, f"unreadable row ({exc}) — fix the quoting") from exc
    return raws, {key: value for key, value in header.items() if value}


def _build(label: str, fail: _Fail, raws: list[_Raw]) -> list[Pair]:
    pairs: list[Pair] = []
    seen: dict[tuple[str, str], int] = {}
    group_lines: dict[str, dict[str, int]] = {}
    with_group = without_group = 0
    for line, raw_source, raw_target, raw_group in raws:
        source, target = _norm(raw_source), _norm(raw_target)
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

    Args:
        path: A ``.json``, ``.csv``, ``.tsv`` or ``.txt`` (tab-separated) file.
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
        raws, header = _read_table(text, fail, "," if kind == "csv" else "\t")
    pairs = _build(label, fail, raws)
    meta = {key: value for key, value in header.items() if key not in _RESERVED}
    source_lang = source_lang or header.get("source_lang", "sw").strip()
    target_lang = target_lang or header.get("target_lang", "en").strip()
    return Lexicon(pairs, source_lang, target_lang, label, meta)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def write_lexicon(lexicon: Lexicon, path: str | os.PathLike) -> Path:
    """Write ``lexicon`` atomically to ``path`` (format by suffix) and return the path.

    JSON gets the object format (languages, other metadata, one pair per line); CSV/TSV get a header
    ``source:<lang>,target:<lang>`` plus ``group`` when any pair has one.

    Raises:
        LexiconError: If the suffix is unsupported or the lexicon is empty.
    """
    path = Path(path)
    kind = _format_for(path)
    if not lexicon.pairs:
        raise LexiconError(f"{path}: refusing to write an empty lexicon — add pairs first")
    if kind == "json":
        head = {"source_lang": lexicon.source_lang, "target_lang": lexicon.target_lang}
        head.update({k: v for k, v in lexicon.meta.items() if k not in _RESERVED})
        lines = ["{"] + [f"  {json.dumps(k)}: {_dump(v)}," for k, v in head.items()]
        entries = [_dump({k: v for k, v in asdict(p).items() if v is not None}) for p in lexicon]
        lines += ['  "pairs": [', ",\n".join("    " + entry for entry in entries), "  ]", "}"]
        return atomic_write_text(path, "\n".join(lines) + "\n")
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="," if kind == "csv" else "\t", lineterminator="\n")
    grouped = any(pair.group is not None for pair in lexicon.pairs)
    header = [f"source:{lexicon.source_lang}", f"target:{lexicon.target_lang}"]
    writer.writerow(header + ["group"] if grouped else header)
    for pair in lexicon.pairs:
        row = [pair.source, pair.target]
        writer.writerow(row + [pair.group or ""] if grouped else row)
    return atomic_write_text(path, buffer.getvalue())


def default_lexicon_path() -> Path:
    """Path of the shipped Swahili–English lexicon (``tli/data/lexicon_sw_en.json``)."""
    return Path(str(resources.files("tli") / "data" / "lexicon_sw_en.json"))


def default_lexicon() -> Lexicon:
    """The shipped Swahili–English lexicon, with its stored trained/control split."""
    return read_lexicon(default_lexicon_path())
