"""The lexicons of a study: the shipped default, a path or object resolved to a :class:`~tli.lexicon.Lexicon`,
its provenance for ``results.json``, and the trained/control split a study uses (:func:`split_for_study`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from tli.io import sha256_file
from tli.lexicon.audit import audit_split, combine_train_test
from tli.lexicon.lexicon import Lexicon
from tli.lexicon.readers import read_lexicon
from tli.lexicon.split import DEFAULT_CONTROL_FRACTION


def default_lexicon_path() -> Path:
    """Path of the shipped Swahili–English lexicon (``tli/data/lexicon_sw_en.json``)."""
    return Path(str(resources.files("tli") / "data" / "lexicon_sw_en.json"))


def default_lexicon() -> Lexicon:
    """The shipped Swahili–English lexicon, with its stored trained/control split."""
    return read_lexicon(default_lexicon_path())


def resolve_lexicon(lexicon: str | os.PathLike | Lexicon | None) -> Lexicon:
    """A :class:`Lexicon` from a path, an object, or None (the shipped lexicon)."""
    if lexicon is None:
        return default_lexicon()
    if isinstance(lexicon, Lexicon):
        return lexicon
    return read_lexicon(lexicon)


def lexicon_record(lexicon: Lexicon) -> dict[str, Any]:
    """Lexicon provenance for ``results.json``: path, file SHA-256, content fingerprint, sizes, languages."""
    path = lexicon.path
    return {
        "path": str(path) if path else None,
        "file_sha256": sha256_file(path) if path and Path(path).is_file() else None,
        "sha256": lexicon.fingerprint(),
        "n_pairs": len(lexicon),
        "n_sources": len(set(lexicon.sources)),
        "n_targets": len(set(lexicon.targets)),
        "source_lang": lexicon.source_lang,
        "target_lang": lexicon.target_lang,
    }


@dataclass
class StudySplit:
    """A lexicon with its trained/control groups, and how they were made and checked.

    Attributes:
        lexicon: Every pair, ``group`` set to ``"trained"`` or ``"control"``.
        origin: ``"stored"`` (the file's own groups), ``"seeded"`` (tli's leak-free split) or
            ``"test-lexicon"`` (a separate test dictionary is the control group).
        report: The :class:`SplitReport` of a seeded split, as a dict.
        audit: :func:`audit_split` of the groups (leaks by rule; a seeded split has none).
    """

    lexicon: Lexicon
    origin: str
    report: dict[str, Any] | None
    audit: dict[str, Any]

    @property
    def trained(self) -> Lexicon:
        return self.lexicon.subset("trained")

    @property
    def control(self) -> Lexicon:
        return self.lexicon.subset("control")

    def record(self) -> dict[str, Any]:
        """What ``results.json`` says about the split."""
        return {"origin": self.origin, "report": self.report, "audit": self.audit}


def split_for_study(
    lexicon: str | os.PathLike | Lexicon | None,
    test_lexicon: str | os.PathLike | Lexicon | None = None,
    *,
    control_fraction: float = DEFAULT_CONTROL_FRACTION,
    split_seed: int = 0,
) -> StudySplit:
    """The trained and control pairs of a study, held out on every side.

    - With ``test_lexicon`` (MUSE-style separate dictionaries): the whole ``lexicon`` is trained, the test
      pairs are the control group, and test pairs that share a source, target or word with a training pair
      are dropped (counted in the audit).
    - A lexicon that stores a split keeps it (a user's split is not changed) and is audited: leaks are
      reported, not hidden.
    - Otherwise tli's seeded leak-free split (:meth:`Lexicon.split_with_report`).
    """
    lex = resolve_lexicon(lexicon)
    if test_lexicon is not None:
        test = resolve_lexicon(test_lexicon)
        combined, audit = combine_train_test(lex, test, on_leak="drop")
        combined.path = lex.path
        return StudySplit(combined, "test-lexicon", None, audit.to_dict())
    if lex.has_split():
        return StudySplit(
            lex, "stored", None, audit_split(lex.subset("trained"), lex.subset("control")).to_dict()
        )
    grouped, report = lex.split_with_report(control_fraction, split_seed)
    audit = audit_split(grouped.subset("trained"), grouped.subset("control"))
    return StudySplit(grouped, "seeded", report.to_dict(), audit.to_dict())
