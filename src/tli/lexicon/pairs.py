"""One lexicon entry (:class:`Pair`), the groups it may belong to, and the word tokens by which pairs are
compared (:func:`word_tokens`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tli.words import words

GROUPS = ("trained", "control")


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


def word_tokens(text: str) -> list[str]:
    """The word tokens of a source or target string, as the split and the audit compare them.

    A token is a maximal run of letters, combining marks and digits in any script (:func:`tli.words.words`:
    Hindi or Bengali words keep their vowel signs), lower-cased, with apostrophes kept *inside* a word so
    that Swahili ``ng'ombe`` is one word; the typographic apostrophe ``’`` counts as ``'``, and apostrophes
    at the edges of a word are dropped. Everything else (spaces, hyphens, punctuation)
    separates words (``_`` joins them, as in ``\\w``): ``"Mother-in-law's"`` → ``["mother", "in", "law's"]``.
    """
    return words(text, normalization=None, underscore=True, split_unspaced_scripts=False)


def _q(value: Any) -> str:
    """``value`` as JSON, cut to 60 characters: a word quoted in a one-line message."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
