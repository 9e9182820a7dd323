"""Limits on what a user's files may hold: the one place they are defined.

Every command that reads user text (lexicons, vocabularies, ``tli stats`` files, YAML configs and experiment
files, task datasets) refuses input beyond these limits with one line naming the file, the line and the limit,
instead of a ``RecursionError`` traceback or an allocation of terabytes. The limits are far above anything a
real file holds; each says why it is set where it is.

- :data:`MAX_NESTING`: nesting depth of a JSON document (or a JSON Lines row) and of a YAML file;
- :data:`MAX_YAML_NODES`: values of a YAML file once its aliases are expanded;
- :data:`MAX_CONFIG_BYTES`: size of a YAML config or experiment file;
- :data:`MAX_TABLE_BYTES`: size of a lexicon, vocabulary or per-pair file (each is read whole);
- :data:`MAX_WORD_CHARS`: one lexicon entry, vocabulary word, or group / cluster label of a per-pair file;
- :data:`MAX_TEXT_CHARS`: one text field of a task dataset (an XL-Sum article beyond it is cut to it, with a
  warning: the prompt keeps only its first ``max_input_tokens`` tokens anyway; any other field is refused);
- :data:`MAX_MESSAGE_CHARS`: an error line as the CLI prints it (a message quoting a huge value is cut).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tli.errors import ConfigError, yaml_problem

MAX_NESTING = 64
"""JSON / YAML nesting depth. tli's own files nest 6 levels at most (SQuAD JSON: data → paragraphs → qas →
answers); Python's JSON and YAML parsers recurse once per level and stop near 1,000 with a RecursionError."""

MAX_YAML_NODES = 100_000
"""Values (scalars, lists, mappings) of a YAML file after expanding its aliases: the largest shipped
experiment has a few hundred; a "billion laughs" file of nested aliases would expand to billions."""

MAX_CONFIG_BYTES = 1 << 20
"""1 MiB for a YAML config or experiment file (the shipped ones are under 5 KiB)."""

MAX_TABLE_BYTES = 1 << 30
"""1 GiB for a lexicon, vocabulary or per-pair file, each read into memory whole (a MUSE dictionary of 100,000
pairs is about 2 MB; a vocabulary of every word of a language well under 100 MB)."""

MAX_WORD_CHARS = 200
"""Characters of one lexicon entry or vocabulary word (a word or short phrase: the longest of the shipped
lexicon has 24), or of a group / cluster label of a per-pair file. The scan embeds words in batches padded
to the longest, and holds every layer's states for a batch, so one absurd entry would ask for memory in
proportion to batch × its tokens × hidden size × layers."""

MAX_TEXT_CHARS = 1_000_000
"""Characters of one text field of a task dataset (an article, summary, premise, question or passage): XL-Sum
articles run to tens of thousands of characters; a million is a book."""

MAX_MESSAGE_CHARS = 1_000
"""Characters of an error line printed by the CLI; longer messages are cut with "…"."""

_JSON_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_CHUNK = 1 << 22
_OPEN = (ord("["), ord("{"))
_CLOSE = (ord("]"), ord("}"))


def json_too_deep(text: str, limit: int = MAX_NESTING) -> int | None:
    """The line (1-based) where JSON ``text`` first nests deeper than ``limit``; None when it never does.

    Brackets inside strings do not count. Linear in the text: strings are blanked by a regular expression
    (they hold no raw line breaks in valid JSON, so line numbers are kept), then the depth is the running sum
    of ``[``/``{`` (+1) and ``]``/``}`` (−1) over the bytes, in chunks.
    """
    if sum(text.count(c) for c in "[{") <= limit:
        return None  # cannot nest deeper than the brackets it has
    data = np.frombuffer(_JSON_STRING.sub('""', text).encode("utf-8", "surrogatepass"), dtype=np.uint8)
    depth = 0
    for start in range(0, data.size, _CHUNK):
        chunk = data[start : start + _CHUNK]
        step = np.isin(chunk, _OPEN).astype(np.int64) - np.isin(chunk, _CLOSE)
        levels = depth + np.cumsum(step)
        over = np.flatnonzero(levels > limit)
        if over.size:
            return int(np.count_nonzero(data[: start + int(over[0])] == ord("\n"))) + 1
        depth = int(levels[-1]) if levels.size else depth
    return None


def nesting_message(limit: int = MAX_NESTING) -> str:
    """``nested deeper than 64 levels (tli.limits.MAX_NESTING)``: the message part every reader shares."""
    return f"nested deeper than {limit} levels (limit tli.limits.MAX_NESTING)"


def yaml_problem_line(text: str) -> tuple[int, str] | None:
    """``(line, what)`` where a YAML text exceeds :data:`MAX_NESTING` or :data:`MAX_YAML_NODES`, else None.

    Walks the parser's event stream (the parser is iterative, unlike the composer that would recurse once per
    level): the depth is the number of open lists and mappings; each scalar counts 1, each list or mapping 1
    plus its contents, and each alias the size of the value its anchor names. YAML syntax errors are left to
    the loader, which names their line.
    """
    anchors: dict[str, int] = {}
    stack: list[list[Any]] = [[None, 0]]  # [anchor, node count] of each open collection
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            line = event.start_mark.line + 1 if event.start_mark is not None else 1
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                stack.append([event.anchor, 1])
                if len(stack) - 1 > MAX_NESTING:
                    return line, nesting_message()
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                anchor, size = stack.pop()
                if anchor is not None:
                    anchors[anchor] = size
                stack[-1][1] += size
            elif isinstance(event, yaml.ScalarEvent):
                if event.anchor is not None:
                    anchors[event.anchor] = 1
                stack[-1][1] += 1
            elif isinstance(event, yaml.AliasEvent):
                stack[-1][1] += anchors.get(event.anchor, 1)
            else:
                continue
            if sum(frame[1] for frame in stack) > MAX_YAML_NODES:
                return line, (
                    f"more than {MAX_YAML_NODES:,} values once its aliases are expanded "
                    "(limit tli.limits.MAX_YAML_NODES)"
                )
    except yaml.YAMLError:
        return None
    return None


def too_long(value: str, limit: int) -> str | None:
    """``"is 10,000,000 characters long (limit 200, tli.limits.NAME)"`` when ``value`` exceeds ``limit``."""
    if len(value) <= limit:
        return None
    name = {MAX_WORD_CHARS: "MAX_WORD_CHARS", MAX_TEXT_CHARS: "MAX_TEXT_CHARS"}.get(limit, "")
    return f"is {len(value):,} characters long (limit {limit:,}{', tli.limits.' + name if name else ''})"


def too_big(size: int, limit: int) -> str | None:
    """``"is 2.0 GiB (limit 1.0 GiB, tli.limits.NAME)"`` when a file of ``size`` bytes exceeds ``limit``."""
    if size <= limit:
        return None
    name = {MAX_TABLE_BYTES: "MAX_TABLE_BYTES", MAX_CONFIG_BYTES: "MAX_CONFIG_BYTES"}.get(limit, "")
    return f"is {_bytes(size)} (limit {_bytes(limit)}{', tli.limits.' + name if name else ''})"


def _bytes(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def shorten(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``message`` cut to ``limit`` characters with "…" (an error that quotes a 10 MB value stays readable)."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


def read_yaml(path: Any, label: str) -> Any:
    """The YAML document of a user's config or experiment file, within :data:`MAX_CONFIG_BYTES`,
    :data:`MAX_NESTING` and :data:`MAX_YAML_NODES`.

    Args:
        path: the file.
        label: how messages name it (``"--config x.yaml"``, ``"x.yaml"``).

    Raises:
        ConfigError: unreadable, too big, too deep or too large once expanded, or not valid YAML (one line
            naming ``label`` and the line).
    """

    try:
        if problem := too_big(Path(path).stat().st_size, MAX_CONFIG_BYTES):
            raise ConfigError(f"{label}: the file {problem} — is it a config file?")
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read it ({exc})") from exc
    if (found := yaml_problem_line(text)) is not None:
        raise ConfigError(f"{label} line {found[0]}: {found[1]}")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}{yaml_problem(exc)}") from exc
