"""Candidate vocabularies for BLI: a word-list file, the tokenizer's whole words, or a list of words.

A BLI query is ranked against every candidate word, not only the lexicon's targets; this module says which
words those are (:func:`resolve_vocabulary`) and records where they came from.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tli.errors import ConfigError, DataError
from tli.io import sha256_file
from tli.limits import MAX_TABLE_BYTES, MAX_WORD_CHARS, too_big, too_long

WORD_BOUNDARY_MARKERS = ("Ġ", "▁")
"""Word-start markers of byte-level BPE (GPT-2, Llama-3, Qwen2: ``Ġ`` = a space) and SentencePiece
(Llama-2, Gemma, Mistral: ``▁``)."""
TOKENIZER_VOCABULARY = "tokenizer"
"""``vocabulary=`` value meaning "the tokenizer's whole words" (a file of that name: ``./tokenizer``)."""
_MARKS = ("Mn", "Mc")  # combining marks, part of a written letter


class VocabularyError(DataError):
    """A candidate word list that cannot be read (message names the file and the line)."""


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
