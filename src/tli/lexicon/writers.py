"""Writing a lexicon file (:func:`write_lexicon`), atomically, in the format its suffix names; what it
writes reads back as the same lexicon."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tli.errors import LexiconError
from tli.io import atomic_write_text
from tli.lexicon.lexicon import Lexicon
from tli.lexicon.readers import _RESERVED, _format_for


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
    delimiter = "," if kind == "csv" else "\t"
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    # A row whose first value starts with "#" would read back as a comment line: quote it.
    quoted = csv.writer(buffer, delimiter=delimiter, lineterminator="\n", quoting=csv.QUOTE_ALL)
    grouped = any(pair.group is not None for pair in lexicon.pairs)
    header = [f"source:{lexicon.source_lang}", f"target:{lexicon.target_lang}"]
    writer.writerow(header + ["group"] if grouped else header)
    for pair in lexicon.pairs:
        row = [pair.source, pair.target] + ([pair.group or ""] if grouped else [])
        (quoted if pair.source.lstrip().startswith("#") else writer).writerow(row)
    return atomic_write_text(path, buffer.getvalue())
