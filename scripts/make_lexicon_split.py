"""Assign the default seeded trained/control split to the shipped lexicon and rewrite it.

The stored split is exactly ``Lexicon.split(control_fraction=63/686, seed=0)``: source words are
split (all senses of a word on the same side), about 63 in 686 held out as controls. Running this
again on an unchanged file rewrites it byte for byte, so the split is reproducible.

Usage::

    python scripts/make_lexicon_split.py [LEXICON.json]
"""

from __future__ import annotations

import sys
from collections import Counter

from tli.lexicon import DEFAULT_CONTROL_FRACTION, default_lexicon_path, read_lexicon, write_lexicon

SEED = 0


def main(argv: list[str]) -> int:
    """Read the lexicon, assign the seed-0 split, rewrite it in place and print the counts."""
    path = argv[0] if argv else default_lexicon_path()
    lexicon = read_lexicon(path).with_split(control_fraction=DEFAULT_CONTROL_FRACTION, seed=SEED)
    write_lexicon(lexicon, path)
    sources = {pair.source: pair.group for pair in lexicon}
    senses = Counter(lexicon.sources)
    groups = Counter(pair.group for pair in lexicon)
    print(
        f"{path}: {len(lexicon)} pairs, {len(sources)} source words "
        f"({sum(g == 'control' for g in sources.values())} control), "
        f"pairs trained/control {groups['trained']}/{groups['control']}, "
        f"{sum(n > 1 for n in senses.values())} source words with several senses"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
