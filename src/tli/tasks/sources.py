"""Where task data comes from: shipped samples, local files in official formats, or the dataset hub.

A data ``path`` is resolved in this order:

1. ``None``: the samples shipped with tli (``tli/data/samples/<task>/``);
2. an existing local file or folder;
3. something that looks like a path (starts with ``.``, ``/`` or ``~``, has a file suffix, or has more
   than one ``/``) but does not exist: an error naming it;
4. anything else is a hub id (``csebuetnlp/xlsum``, ``facebook/xnli``), read with ``datasets.load_dataset``
   only when the machine is online. With ``HF_DATASETS_OFFLINE`` or ``HF_HUB_OFFLINE`` set the error says to
   download the data and pass a local path; no request is attempted.

Every reading error is one line naming the file, the line and the field.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tli.errors import ConfigError
from tli.limits import MAX_TEXT_CHARS, json_too_deep, nesting_message, too_long
from tli.tasks.base import TaskDataError

log = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "data" / "samples"
SPLITS = ("train", "validation", "test")
_SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
                  "dev": "validation", "test": "test"}  # fmt: skip
_OFFLINE_VALUES = {"1", "ON", "YES", "TRUE"}
_DATA_SUFFIXES = (".jsonl", ".json", ".tsv", ".csv", ".txt", ".gz", ".bz2", ".parquet")


@dataclass(frozen=True)
class Source:
    """A resolved data location: ``kind`` is ``file``, ``dir`` or ``hub``; ``location`` a Path or a hub id."""

    kind: str
    location: Any

    def __str__(self) -> str:
        return str(self.location)


def samples_dir(task: str) -> Path:
    """Folder of the samples shipped for ``task`` (``xlsum``, ``xnli``)."""
    return SAMPLES_DIR / task


def normalise_split(split: str) -> str:
    """``train`` | ``validation`` | ``test`` from the usual spellings (``val``, ``dev``, ``valid``).

    Raises:
        ConfigError: any other split name.
    """
    key = split.strip().lower() if isinstance(split, str) else split
    if key not in _SPLIT_ALIASES:
        raise ConfigError(f"split {split!r} is not one of train, validation (val, dev), test")
    return _SPLIT_ALIASES[key]


def resolve_source(path: Any, task: str) -> Source:
    """Classify a data path (see the module docstring).

    Raises:
        TaskDataError: a path-like string that does not exist.
    """
    if path is None:
        return Source("dir", samples_dir(task))
    text = str(path)
    local = Path(text).expanduser()
    if local.is_dir():
        return Source("dir", local)
    if local.is_file():
        return Source("file", local)
    looks_like_path = (
        text.startswith((".", "/", "~"))
        or text.lower().endswith(_DATA_SUFFIXES)
        or text.count("/") > 1
        or "\\" in text
        or not text.strip()
    )
    if looks_like_path:
        raise TaskDataError(f"{task} data {text!r}: no such file or folder")
    return Source("hub", text)


def hub_offline() -> bool:
    """Whether the user asked for offline mode (``HF_DATASETS_OFFLINE`` / ``HF_HUB_OFFLINE``), read now."""
    return any(
        os.environ.get(name, "").strip().upper() in _OFFLINE_VALUES
        for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    )


def load_hub_rows(hub_id: str, config_name: str, split: str, *, task: str, hint: str) -> list[dict[str, Any]]:
    """Rows of a hub dataset (``datasets.load_dataset(hub_id, config_name, split=split)``).

    Args:
        hub_id: Dataset id on the hub.
        config_name: Its configuration (language) name.
        split: Hub split name.
        task: Task name for messages.
        hint: What to download instead (e.g. ``"swahili_test.jsonl from the XL-Sum release"``).

    Raises:
        TaskDataError: offline mode is on, or the hub cannot be reached or has no such dataset.
    """
    if hub_offline():
        raise TaskDataError(
            f"{task} data {hub_id!r} is a hub id but the machine is offline "
            f"(HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set): download the data ({hint}) and pass its local path"
        )
    try:
        import datasets

        dataset = datasets.load_dataset(hub_id, config_name, split=split)
    except Exception as exc:  # network, missing config and script errors come in many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TaskDataError(
            f"cannot load {task} data {hub_id!r} (config {config_name}, split {split}) from the hub: "
            f"{first}; download it ({hint}) and pass a local path"
        ) from exc
    return [dict(row) for row in dataset]


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (a BOM dropped), gzip-compressed when its name ends in ``.gz``.

    Raises:
        TaskDataError: the file cannot be read or decoded.
    """

    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8-sig") as handle:
                return handle.read().splitlines()
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise TaskDataError(f"{path}: cannot read ({exc})") from exc


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSON Lines file (``.gz`` too; 1-based lines).

    Raises:
        TaskDataError: unreadable file, invalid JSON, a line that is not an object, or no rows at all.
    """
    rows = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        if json_too_deep(line) is not None:
            raise TaskDataError(f"{path}:{number}: {nesting_message()}")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskDataError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(row, dict):
            raise TaskDataError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        rows.append((number, row))
    if not rows:
        raise TaskDataError(f"{path}: empty file (no rows)")
    return rows


def text_field(
    row: dict[str, Any], name: str, where: str, needs: str, *, allow_empty: bool = False, cut: bool = False
) -> str:
    """``row[name]`` as a string.

    Args:
        row: One data row.
        name: Field name.
        where: ``"<file>:<line>"`` for messages.
        needs: The fields a row of this format needs, for the message.
        allow_empty: Accept an empty string.
        cut: Cut a value beyond :data:`tli.limits.MAX_TEXT_CHARS` characters with a warning (an article the
            task truncates anyway) instead of refusing it.

    Raises:
        TaskDataError: the field is missing, not a string, or empty when that is not allowed.
    """
    if name not in row or row[name] is None:
        raise TaskDataError(f"{where}: missing field {name!r} (rows need {needs})")
    value = row[name]
    if not isinstance(value, str):
        raise TaskDataError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise TaskDataError(f"{where}: field {name!r} is empty")
    if cut:
        return cut_text(value, where, name)
    check_text_length(value, where, name)
    return value


def check_text_length(value: str, where: str, name: str) -> None:
    """Refuse a text field beyond :data:`tli.limits.MAX_TEXT_CHARS` characters (``where`` is ``file:line``).

    Raises:
        TaskDataError: the field is longer.
    """
    if problem := too_long(value, MAX_TEXT_CHARS):
        raise TaskDataError(f"{where}: field {name!r} {problem}")


def cut_text(value: str, where: str, name: str) -> str:
    """A text field cut to :data:`tli.limits.MAX_TEXT_CHARS` characters, with a warning when it was longer
    (for fields a task truncates anyway, such as an article before its first ``max_input_tokens`` tokens)."""
    if too_long(value, MAX_TEXT_CHARS) is None:
        return value
    log.warning(
        "warning: %s: field %r is %s characters long; cut to its first %s (tli.limits.MAX_TEXT_CHARS)",
        where,
        name,
        f"{len(value):,}",
        f"{MAX_TEXT_CHARS:,}",
    )
    return value[:MAX_TEXT_CHARS]


def id_field(row: dict[str, Any], name: str, where: str, needs: str) -> str:
    """``row[name]`` (string or integer) as a non-empty string id."""
    value = row.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return text_field(row, name, where, needs)


def check_unique_ids(ids: list[str], where: list[str]) -> None:
    """Raise TaskDataError naming the first repeated id: rows are paired by id across models."""
    seen: dict[str, str] = {}
    for example_id, place in zip(ids, where, strict=True):
        if example_id in seen:
            raise TaskDataError(f"{place}: id {example_id!r} repeats {seen[example_id]} (ids must be unique)")
        seen[example_id] = place


def apply_limit(examples: list[Any], limit: int | None) -> list[Any]:
    """The first ``limit`` examples in file order (all when ``limit`` is None).

    Raises:
        ConfigError: ``limit`` is not None and not a whole number ``>= 1``.
    """
    if limit is None:
        return examples
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be a whole number >= 1 or null, got {limit!r}")
    return examples[:limit]
