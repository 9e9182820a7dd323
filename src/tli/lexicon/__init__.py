"""Bilingual lexicons: reading, validation, writing, fingerprints and leak-free trained/control splits.

A lexicon is an ordered list of :class:`Pair` (source word, target word, optional group). Files are
JSON (a list of pairs, or an object with language codes and ``"pairs"``), CSV, or TSV/TXT; tables
have a header row naming their columns, or none at all (two columns, source then target: the MUSE
dictionary format of bilingual lexicon induction, where a ``.txt``/``.tsv`` file without any tab is
split at the first run of spaces). Lines whose first non-blank character is ``#`` are comments. Every
problem in a file raises :class:`~tli.errors.LexiconError` with a one-line message that names the file
and the line and says what to do.

Held-out ("control") pairs must be unseen on both sides. Two pairs are *linked* when they share their
source string, their target string, or any word token (see :func:`word_tokens`) on the same side —
``asante sana`` is linked to ``sana``, ``lawyer`` (mwanasheria) to ``lawyer`` (wakili). The split
puts whole connected groups of linked pairs on one side, so no control pair shares a word with a
trained pair, in either language. :func:`audit_split` measures how far any given split (a stored
``group`` column, or separate train and test dictionaries, see :func:`combine_train_test`) is from
that.

The package, bottom up: :mod:`~tli.lexicon.pairs` (:class:`Pair`, :func:`word_tokens`),
:mod:`~tli.lexicon.split` (the leak-free split, :class:`SplitReport`), :mod:`~tli.lexicon.lexicon`
(:class:`Lexicon`), :mod:`~tli.lexicon.audit` (:func:`audit_split`, :func:`combine_train_test`),
:mod:`~tli.lexicon.readers` (:func:`read_lexicon`), :mod:`~tli.lexicon.writers` (:func:`write_lexicon`) and
:mod:`~tli.lexicon.study` (the shipped lexicon, provenance, :func:`split_for_study`).
"""

from __future__ import annotations

from tli.lexicon.audit import ON_LEAK, Leak, SplitAudit, audit_split, combine_train_test
from tli.lexicon.lexicon import Lexicon
from tli.lexicon.pairs import GROUPS, Pair, word_tokens
from tli.lexicon.readers import SUFFIXES, read_lexicon
from tli.lexicon.split import DEFAULT_CONTROL_FRACTION, SPLIT_RULES, SplitReport
from tli.lexicon.study import (
    StudySplit,
    default_lexicon,
    default_lexicon_path,
    lexicon_record,
    resolve_lexicon,
    split_for_study,
)
from tli.lexicon.writers import write_lexicon

__all__ = [
    "DEFAULT_CONTROL_FRACTION",
    "GROUPS",
    "ON_LEAK",
    "SPLIT_RULES",
    "SUFFIXES",
    "Leak",
    "Lexicon",
    "Pair",
    "SplitAudit",
    "SplitReport",
    "StudySplit",
    "audit_split",
    "combine_train_test",
    "default_lexicon",
    "default_lexicon_path",
    "lexicon_record",
    "read_lexicon",
    "resolve_lexicon",
    "split_for_study",
    "word_tokens",
    "write_lexicon",
]
