"""How leaky a trained/control split is: :func:`audit_split` finds the control pairs that share a source, a
target or a word with a trained pair (:class:`Leak`, counted in a :class:`SplitAudit`), and
:func:`combine_train_test` makes one lexicon of separate train and test dictionaries, dropping such pairs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from tli.errors import ConfigError, LexiconError
from tli.lexicon.lexicon import Lexicon
from tli.lexicon.pairs import Pair, _q
from tli.lexicon.split import SPLIT_RULES, _link_keys

ON_LEAK = ("drop", "keep", "error")
_N_EXAMPLES = 3


@dataclass(frozen=True)
class Leak:
    """One control pair that shares something with a trained pair.

    Attributes:
        rule: ``"source"``, ``"target"`` or ``"word"``.
        side: Where the shared string is: ``"source"`` or ``"target"``.
        control: The control (held-out) pair.
        trained: A trained pair it shares with (the first one in file order).
        shared: The shared string: the source, the target, or the word token.
    """

    rule: str
    side: str
    control: Pair
    trained: Pair
    shared: str

    def to_dict(self) -> dict[str, Any]:
        """``{"rule", "side", "control": [source, target], "trained": [source, target], "shared"}``."""
        return {
            "rule": self.rule,
            "side": self.side,
            "control": [self.control.source, self.control.target],
            "trained": [self.trained.source, self.trained.target],
            "shared": self.shared,
        }


@dataclass(frozen=True)
class SplitAudit:
    """How leaky a trained/control split is.

    Attributes:
        n_trained: Trained pairs audited.
        n_control: Control pairs audited.
        leaks: For each rule (``source``, ``target``, ``word``), the number of control pairs that share
            that with at least one trained pair; a pair counts once under every rule it breaks.
        n_leaking: Control pairs that break at least one rule.
        n_duplicates: Control pairs that are exact copies of a trained pair (a subset of the leaks).
        examples: Up to 3 :class:`Leak` per rule, first control pairs in order.
        n_dropped: Leaking control pairs removed (by ``combine_train_test(on_leak="drop")``), else 0.
    """

    n_trained: int
    n_control: int
    leaks: dict[str, int]
    n_leaking: int
    n_duplicates: int
    examples: dict[str, list[Leak]]
    n_dropped: int = 0

    @property
    def leak_free(self) -> bool:
        """Whether no control pair that remains shares a source, a target or a word with a trained pair."""
        return self.n_leaking == self.n_dropped

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field, ``leak_free`` included."""
        record = asdict(self)
        record["examples"] = {
            rule: [leak.to_dict() for leak in leaks] for rule, leaks in self.examples.items()
        }
        record["leak_free"] = self.leak_free
        return record


def _same_languages(trained: Lexicon, control: Lexicon) -> None:
    if (trained.source_lang, trained.target_lang) != (control.source_lang, control.target_lang):
        raise LexiconError(
            f"{control._label()}: languages {control.source_lang}→{control.target_lang} differ from "
            f"{trained._label()} ({trained.source_lang}→{trained.target_lang}) — give both lexicons the "
            "same source and target languages"
        )


def _leaks_of(pair: Pair, index: dict[tuple[str, str], Pair]) -> list[Leak]:
    """The first leak of ``pair`` under each rule, against ``index`` (link key → first trained pair)."""
    leaks = []
    for rule in SPLIT_RULES:
        for kind, shared in _link_keys(pair, (rule,)):
            if (kind, shared) in index:
                leaks.append(Leak(rule, kind.split()[0], pair, index[kind, shared], shared))
                break
    return leaks


def _leak_table(trained: Lexicon, control: Lexicon) -> list[list[Leak]]:
    """For each control pair in order, its leaks against the trained pairs (empty when unseen)."""
    index: dict[tuple[str, str], Pair] = {}
    for pair in trained:
        for key in _link_keys(pair, SPLIT_RULES):
            index.setdefault(key, pair)
    return [_leaks_of(pair, index) for pair in control]


def _audit(trained: Lexicon, control: Lexicon, table: list[list[Leak]], n_dropped: int = 0) -> SplitAudit:
    seen = {(p.source, p.target) for p in trained}
    leaks = {rule: 0 for rule in SPLIT_RULES}
    examples: dict[str, list[Leak]] = {rule: [] for rule in SPLIT_RULES}
    for found in table:
        for leak in found:
            leaks[leak.rule] += 1
            if len(examples[leak.rule]) < _N_EXAMPLES:
                examples[leak.rule].append(leak)
    return SplitAudit(
        n_trained=len(trained),
        n_control=len(control),
        leaks=leaks,
        n_leaking=sum(bool(found) for found in table),
        n_duplicates=sum((p.source, p.target) in seen for p in control),
        examples=examples,
        n_dropped=n_dropped,
    )


def audit_split(trained: Lexicon, control: Lexicon) -> SplitAudit:
    """Audit a split: which control pairs share a source, a target or a word with some trained pair.

    Use it on a stored split (``audit_split(*lexicon.trained_and_control())``) or on separate train
    and test dictionaries. Words are compared as :func:`word_tokens`, each language with itself.

    Raises:
        LexiconError: If the two lexicons have different languages.
    """
    _same_languages(trained, control)
    return _audit(trained, control, _leak_table(trained, control))


def _describe(leak: Leak, lexicon: Lexicon) -> str:
    lang = lexicon.source_lang if leak.side == "source" else lexicon.target_lang
    what = {"source": "the source", "target": "the target", "word": f"the {lang} word"}[leak.rule]
    return f"{what} {_q(leak.shared)}"


def combine_train_test(train: Lexicon, test: Lexicon, on_leak: str = "drop") -> tuple[Lexicon, SplitAudit]:
    """One lexicon from separate train and test dictionaries (as MUSE ships them), audited for leaks.

    Train pairs become ``trained`` and test pairs ``control`` (groups in the files are ignored). A test
    pair leaks when it shares its source, its target or any word token with a train pair (an exact
    duplicate pair is a leak too).

    Args:
        train: The training dictionary.
        test: The test dictionary.
        on_leak: ``"drop"`` removes leaking test pairs, ``"keep"`` keeps them (the audit still counts
            them; such a lexicon cannot be written to one file with a ``group`` column, as a source in
            both groups is refused on reading), ``"error"`` raises on the first one.

    Returns:
        ``(lexicon, audit)``: train pairs then kept test pairs, each in file order, and the audit of
        the test file against the train file (``audit.n_dropped`` says how many were dropped).

    Raises:
        ConfigError: If ``on_leak`` is not one of "drop", "keep", "error".
        LexiconError: If the languages differ, a lexicon is empty, a test pair leaks with
            ``on_leak="error"``, or every test pair leaks with ``on_leak="drop"``.
    """
    if on_leak not in ON_LEAK:
        raise ConfigError(f'on_leak={on_leak!r} — use "drop", "keep" or "error"')
    for lexicon, role in ((train, "train"), (test, "test")):
        if not lexicon.pairs:
            raise LexiconError(f"{lexicon._label()}: the {role} lexicon has no pairs — add pairs")
    _same_languages(train, test)
    table = _leak_table(train, test)
    first = next((found[0] for found in table if found), None)
    if on_leak == "error" and first is not None:
        raise LexiconError(
            f"{test._label()}: test pair {_q(first.control.source)} → {_q(first.control.target)} shares "
            f"{_describe(first, test)} with train pair {_q(first.trained.source)} → "
            f'{_q(first.trained.target)} of {train._label()} — remove it, or use on_leak="drop"'
        )
    drop = on_leak == "drop"
    kept = [pair for pair, found in zip(test.pairs, table, strict=True) if not (drop and found)]
    if not kept:
        raise LexiconError(
            f"{test._label()}: every test pair shares a source, target or word with {train._label()}, "
            "so none is left unseen — use a test lexicon of other words"
        )
    pairs = [replace(p, group="trained") for p in train] + [replace(p, group="control") for p in kept]
    meta = {"train": train._label(), "test": test._label()}
    combined = Lexicon(pairs, train.source_lang, train.target_lang, None, meta)
    return combined, _audit(train, test, table, len(test) - len(kept))
