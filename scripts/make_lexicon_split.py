"""Assign the default seeded leak-free trained/control split to the shipped lexicon and rewrite it.

The stored split is exactly ``Lexicon.split(control_fraction=63/686, seed=0)``: pairs linked by a
shared source, target or word (either language, phrases included) stay on one side, and about 63 in
686 pairs are held out as controls. The sentence of the file's ``notes`` that describes the split is
rewritten too. Running this again on an unchanged file rewrites it byte for byte, so the split is
reproducible. It prints the :class:`~tli.lexicon.SplitReport` and the audit of the result.

Usage::

    python scripts/make_lexicon_split.py [LEXICON.json]
"""

from __future__ import annotations

import json
import sys
from collections import Counter

from tli.lexicon import (
    DEFAULT_CONTROL_FRACTION,
    audit_split,
    default_lexicon_path,
    read_lexicon,
    write_lexicon,
)

SEED = 0
SPLIT_NOTE = (
    "group: the seeded leak-free split, Lexicon.split(control_fraction=63/686, seed=0), written by "
    "scripts/make_lexicon_split.py: pairs that share a source, a target or any word (either language, "
    "phrases included) are kept on one side, so no control pair shares a word with a trained pair; "
    "pairs tied together by common words stay in training."
)
_NOTE_START = " group: "


def with_split_note(notes: str) -> str:
    """``notes`` with its closing sentence about the split (from ``" group: "`` on) set to SPLIT_NOTE."""
    head = notes.split(_NOTE_START, 1)[0].rstrip() if _NOTE_START in notes else notes.rstrip()
    return f"{head} {SPLIT_NOTE}" if head else SPLIT_NOTE


def main(argv: list[str]) -> int:
    """Read the lexicon, assign the seed-0 split, rewrite it in place and print the counts."""
    path = argv[0] if argv else default_lexicon_path()
    lexicon = read_lexicon(path)
    lexicon, report = lexicon.split_with_report(control_fraction=DEFAULT_CONTROL_FRACTION, seed=SEED)
    lexicon.meta["notes"] = with_split_note(str(lexicon.meta.get("notes", "")))
    write_lexicon(lexicon, path)
    senses = Counter(lexicon.sources)
    audit = audit_split(lexicon.subset("trained"), lexicon.subset("control"))
    print(
        f"{path}: {report.n_pairs} pairs, {len(senses)} source words "
        f"({report.n_control_sources} control), pairs trained/control {report.n_trained}/{report.n_control}, "
        f"{sum(n > 1 for n in senses.values())} source words with several senses, "
        f"leak-free: {audit.leak_free}"
    )
    print(json.dumps(report.to_dict(), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
