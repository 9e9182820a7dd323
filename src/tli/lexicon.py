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
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from tli.errors import ConfigError, LexiconError
from tli.io import atomic_write_text, sha256_file, sha256_text
from tli.limits import MAX_TABLE_BYTES, MAX_WORD_CHARS, json_too_deep, nesting_message, too_big, too_long
from tli.words import words

GROUPS = ("trained", "control")
DEFAULT_CONTROL_FRACTION = 63 / 686
SPLIT_RULES = ("source", "target", "word")
ON_LEAK = ("drop", "keep", "error")
SUFFIXES = {".json": "json", ".csv": "csv", ".tsv": "tsv", ".txt": "tsv"}
_SOURCE_KEYS = ("source", "swahili")
_TARGET_KEYS = ("target", "english")
_LANG_NAMES = {"swahili": "sw", "english": "en"}
_RESERVED = ("source_lang", "target_lang", "pairs")
_KEYS_HELP = 'accepted keys: "source"/"target" or "swahili"/"english", optional "group"'
_N_EXAMPLES = 3


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


@dataclass
class Lexicon:
    """An ordered list of pairs with its language codes.

    Attributes:
        pairs: The pairs, in file order.
        source_lang: Language code of the sources.
        target_lang: Language code of the targets.
        path: The file it was read from (used in messages), if any.
        meta: Other top-level fields of a JSON lexicon (name, license, notes); kept on rewrite.
    """

    pairs: list[Pair]
    source_lang: str = "sw"
    target_lang: str = "en"
    path: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.pairs = list(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.pairs)

    @property
    def sources(self) -> list[str]:
        """Source side of every pair, in order (repeats for words with several senses)."""
        return [pair.source for pair in self.pairs]

    @property
    def targets(self) -> list[str]:
        """Target side of every pair, in order."""
        return [pair.target for pair in self.pairs]

    def _label(self) -> str:
        return self.path or "lexicon"

    def fingerprint(self) -> str:
        """SHA-256 of a canonical JSON dump of the languages and the ordered pairs."""
        pairs = [[p.source, p.target, p.group] for p in self.pairs]
        canonical = {
            "source_lang": self.source_lang,
            "target_lang": self.target_lang,
            "pairs": pairs,
        }
        return sha256_text(json.dumps(canonical, ensure_ascii=False, separators=(",", ":")))

    def _like(self, pairs: list[Pair]) -> Lexicon:
        return Lexicon(pairs, self.source_lang, self.target_lang, self.path, dict(self.meta))

    def subset(self, group: str) -> Lexicon:
        """The pairs of one group (``"trained"`` or ``"control"``), with the same languages.

        Raises:
            LexiconError: If no pair has that group.
        """
        pairs = [pair for pair in self.pairs if pair.group == group]
        if not pairs:
            raise LexiconError(
                f'{self._label()}: no pairs in group "{group}" — assign groups with '
                "with_split() or use trained_and_control()"
            )
        return self._like(pairs)

    def has_split(self) -> bool:
        """Whether every pair has a group in ``{"trained", "control"}``."""
        return bool(self.pairs) and all(pair.group in GROUPS for pair in self.pairs)

    def _control_budget(self, control_fraction: float) -> int:
        """Most control pairs allowed: ``round(control_fraction · n_pairs)``, within ``[1, n_pairs − 1]``."""
        if not 0 < control_fraction < 1:
            raise ConfigError(f"control_fraction={control_fraction!r} — use a value in (0, 1)")
        n_sources = len(set(self.sources))
        if n_sources < 2:
            raise LexiconError(
                f"{self._label()}: cannot split {n_sources} source word(s) into trained and "
                "control — add at least 2 distinct source words"
            )
        return min(max(1, round(control_fraction * len(self.pairs))), len(self.pairs) - 1)

    def _leak_free_control(self, control_fraction: float, seed: int) -> tuple[set[int], list[list[int]], int]:
        """(control pair indices, components under all rules, control budget) of the seeded split."""
        budget = self._control_budget(control_fraction)
        components = _components(self.pairs, SPLIT_RULES)
        if len(components) == 1:
            raise _one_component_error(self._label(), len(self.pairs))
        return _control_indices(self.pairs, components, budget, seed), components, budget

    def _grouped(self, control: set[int]) -> Lexicon:
        groups = {True: "control", False: "trained"}
        return self._like([replace(p, group=groups[i in control]) for i, p in enumerate(self.pairs)])

    def split_with_report(
        self, control_fraction: float = DEFAULT_CONTROL_FRACTION, seed: int = 0
    ) -> tuple[Lexicon, SplitReport]:
        """The leak-free seeded split (as :meth:`with_split`) and a report of what each link rule did.

        ``moved_by_rule`` reruns the same seeded procedure with the rules enabled one after the other
        (``source``; ``source+target``; ``source+target+word``) and counts the pairs whose side
        changed when each rule was added: ``{"target": k1, "word": k2}``.

        Returns:
            ``(lexicon, report)``: this lexicon in file order with groups set, and the :class:`SplitReport`.

        Raises:
            ConfigError: If ``control_fraction`` is not strictly between 0 and 1.
            LexiconError: If there are fewer than 2 distinct source words, or all pairs are linked.
        """
        control, components, budget = self._leak_free_control(control_fraction, seed)
        controls = [
            _control_indices(self.pairs, _components(self.pairs, SPLIT_RULES[:n_rules]), budget, seed)
            for n_rules in range(1, len(SPLIT_RULES))
        ] + [control]
        moved = {rule: len(controls[i] ^ controls[i + 1]) for i, rule in enumerate(SPLIT_RULES[1:])}
        control_sources = {self.pairs[i].source for i in control}
        report = SplitReport(
            control_fraction=control_fraction,
            seed=seed,
            n_pairs=len(self.pairs),
            control_budget=budget,
            n_trained=len(self.pairs) - len(control),
            n_control=len(control),
            n_trained_sources=len(set(self.sources) - control_sources),
            n_control_sources=len(control_sources),
            n_components=len(components),
            largest_component=max(len(component) for component in components),
            moved_by_rule=moved,
        )
        return self._grouped(control), report

    def split(
        self, control_fraction: float = DEFAULT_CONTROL_FRACTION, seed: int = 0
    ) -> tuple[Lexicon, Lexicon]:
        """Seeded leak-free split into trained and control lexicons.

        Pairs are nodes of a graph, linked when they share the source string, the target string, or
        any word token on the same side (:func:`word_tokens`; phrases included). Each connected
        component goes to one side whole, so no control pair shares a source, a target or a word with
        a trained pair. The components, sorted by their smallest (source, target), are shuffled with
        ``random.Random(seed)`` and added to control while the control pair count stays
        ``<= round(control_fraction * n_pairs)`` (at least 1, leaving at least 1 trained); one that does
        not fit is skipped, so a giant component built by common words stays in training and the
        count falls short of the target by less than the largest component. If no component fits,
        the first smallest one in the shuffled order is held out. The result depends on the set of
        pairs, not on their order.

        Args:
            control_fraction: Share of pairs held out as controls.
            seed: Random seed.

        Returns:
            ``(trained, control)``, pairs in file order, groups set to "trained"/"control".

        Raises:
            ConfigError: If ``control_fraction`` is not strictly between 0 and 1.
            LexiconError: If there are fewer than 2 distinct source words, or one component holds
                every pair.
        """
        split = self.with_split(control_fraction, seed)
        return split.subset("trained"), split.subset("control")

    def with_split(self, control_fraction: float = DEFAULT_CONTROL_FRACTION, seed: int = 0) -> Lexicon:
        """This lexicon, in the same order, with groups assigned as by :meth:`split`."""
        return self._grouped(self._leak_free_control(control_fraction, seed)[0])

    def trained_and_control(
        self, control_fraction: float = DEFAULT_CONTROL_FRACTION, seed: int = 0
    ) -> tuple[Lexicon, Lexicon]:
        """The stored split when :meth:`has_split`, else :meth:`split` with these arguments.

        A stored split is used as the user made it, never changed; :func:`audit_split` says how leaky it is.
        """
        if self.has_split():
            return self.subset("trained"), self.subset("control")
        return self.split(control_fraction, seed)


# --------------------------------------------------------------------------- leak-free split


def _link_keys(pair: Pair, rules: Sequence[str]) -> Iterator[tuple[str, str]]:
    """What a pair can share with another under ``rules``; words are keyed by side."""
    if "source" in rules:
        yield "source", pair.source
    if "target" in rules:
        yield "target", pair.target
    if "word" in rules:
        yield from (("source word", token) for token in word_tokens(pair.source))
        yield from (("target word", token) for token in word_tokens(pair.target))


def _components(pairs: Sequence[Pair], rules: Sequence[str]) -> list[list[int]]:
    """Connected components (pair indices) of the graph linking pairs that share a key under ``rules``.

    Union-find with path halving and union by size: near-linear in the number of (pair, key) links.
    """
    parent, size = list(range(len(pairs))), [1] * len(pairs)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, pair in enumerate(pairs):
        for key in _link_keys(pair, rules):
            a, b = root(first.setdefault(key, i)), root(i)
            if a != b:
                a, b = (a, b) if size[a] >= size[b] else (b, a)
                parent[b], size[a] = a, size[a] + size[b]
    members: dict[int, list[int]] = {}
    for i in range(len(pairs)):
        members.setdefault(root(i), []).append(i)
    return list(members.values())


def _control_indices(pairs: Sequence[Pair], components: list[list[int]], budget: int, seed: int) -> set[int]:
    """Pair indices held out: seeded first-fit of whole components into ``budget`` control pairs."""

    def order(i: int) -> tuple[str, str]:
        return pairs[i].source, pairs[i].target

    # Sorted first so that the shuffle, hence the split, depends on the set of pairs, not on file order.
    ordered = sorted((sorted(c, key=order) for c in components), key=lambda c: order(c[0]))
    random.Random(seed).shuffle(ordered)
    control: list[int] = []
    for component in ordered:
        if len(control) + len(component) <= budget:
            control.extend(component)
    if not control:  # every component is larger than the budget: hold out the first smallest one
        control = min(ordered, key=len)
    return set(control)


def _one_component_error(label: str, n_pairs: int) -> LexiconError:
    return LexiconError(
        f"{label}: cannot split: all {n_pairs} pairs are linked into one group by shared sources, targets "
        "or words, so none can be held out unseen — add pairs that share no word with the others, or "
        "give a separate test lexicon (combine_train_test)"
    )


@dataclass(frozen=True)
class SplitReport:
    """What the leak-free split did.

    Attributes:
        control_fraction: Share of pairs asked for as controls.
        seed: Random seed of the split.
        n_pairs: Pairs in the lexicon.
        control_budget: Most control pairs allowed, ``round(control_fraction · n_pairs)`` within
            ``[1, n_pairs − 1]``; ``n_control`` falls short of it when components do not fit.
        n_trained: Pairs in the trained group.
        n_control: Pairs in the control group.
        n_trained_sources: Distinct source strings in the trained group.
        n_control_sources: Distinct source strings in the control group (none is also trained).
        n_components: Connected components of the pair graph under all rules.
        largest_component: Pairs in the largest component (common words build one that stays trained).
        moved_by_rule: Pairs whose side changed when each rule was added to the ones before it
            (``source`` first, then ``target``, then ``word``), e.g. ``{"target": 12, "word": 230}``.
    """

    control_fraction: float
    seed: int
    n_pairs: int
    control_budget: int
    n_trained: int
    n_control: int
    n_trained_sources: int
    n_control_sources: int
    n_components: int
    largest_component: int
    moved_by_rule: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


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


# --------------------------------------------------------------------------- readers

_Raw = tuple[int, str, str, "str | None"]  # line, source, target, group
_Row = tuple[int, list[str]]  # first line of the record, cells
_Fail = Callable[[int, str], LexiconError]  # (line, message) -> "<file> line <n>: <message>"


def _fail_for(label: str) -> _Fail:
    return lambda line, message: LexiconError(f"{label} line {line}: {message}")


_ENTRY_HELP = 'write it as {"source": ..., "target": ...}'
_HEADER_HELP = (
    "start with a header row such as source,target (or swahili,english; optional group), "
    "or give exactly two columns (source, target) without a header"
)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "true/false"}
_HEADER_NAMES = ("source", "target", "swahili", "english", "group")


def _q(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return "null" if value is None else _KINDS.get(type(value), "a number")


def _norm(text: str) -> str:
    return " ".join(text.split())


def _format_for(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise LexiconError(
            f'{path}: unsupported file type "{suffix or "(no suffix)"}" — use one of '
            ".json, .csv, .tsv or .txt (tab-separated)"
        )
    return SUFFIXES[suffix]


def _read_text(path: Path) -> str:
    if not path.exists():
        raise LexiconError(f"{path}: no such file — check the path")
    if path.is_dir():
        raise LexiconError(f"{path}: is a directory — give a .json, .csv or .tsv lexicon file")
    try:
        size = path.stat().st_size
        if problem := too_big(size, MAX_TABLE_BYTES):
            raise LexiconError(f"{path}: the file {problem} — is it a lexicon?")
        data = path.read_bytes()
    except OSError as exc:
        raise LexiconError(f"{path}: cannot read it ({exc.strerror}) — check permissions") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = exc.start
        line, column = data.count(b"\n", 0, at) + 1, at - data.rfind(b"\n", 0, at)
        message = f"not valid UTF-8 (byte 0x{data[at]:02x} at column {column})"
        raise _fail_for(str(path))(line, message + " — re-save the file as UTF-8") from exc
    return text[1:] if text.startswith("\ufeff") else text


def _skip_ws(text: str, i: int) -> int:
    return _WHITESPACE.match(text, i).end()


def _json_members(text: str, start: int) -> list[tuple[int, Any, Any]]:
    """(value offset, key or None, value) of each member of the valid JSON array/object at start."""
    decoder, members, is_object = json.JSONDecoder(), [], text[start] == "{"
    i = _skip_ws(text, start + 1)
    while text[i] not in "]}":
        key = None
        if is_object:
            key, end = decoder.raw_decode(text, i)
            i = _skip_ws(text, _skip_ws(text, end) + 1)  # past the colon
        value, end = decoder.raw_decode(text, i)
        members.append((i, key, value))
        i = _skip_ws(text, end)
        i = _skip_ws(text, i + 1) if text[i] == "," else i
    return members


def _read_json(text: str, fail: _Fail) -> tuple[list[_Raw], dict[str, Any]]:
    if (deep := json_too_deep(text)) is not None:
        raise fail(deep, f"{nesting_message()} — a lexicon is a list of pairs")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at column {exc.colno}"
        raise fail(exc.lineno, f"malformed JSON ({where}) — fix the syntax there") from exc
    newlines = [i for i, char in enumerate(text) if char == "\n"]

    def line_of(offset: int) -> int:
        return bisect.bisect_left(newlines, offset) + 1

    start, header = _skip_ws(text, 0), {}
    if isinstance(document, dict):
        offsets = {key: offset for offset, key, _ in _json_members(text, start)}
        if "pairs" not in document:
            raise fail(line_of(start), 'the top-level object has no "pairs" — add "pairs": [...]')
        for key in ("source_lang", "target_lang"):
            value = document.get(key, "sw")
            if not isinstance(value, str) or not value.strip():
                code = 'give a language code such as "sw" or "en"'
                raise fail(line_of(offsets[key]), f'"{key}" is {_kind(value)} — {code}')
        header, start, document = document, offsets["pairs"], document["pairs"]
        if not isinstance(document, list):
            raise fail(line_of(start), f'"pairs" is {_kind(document)}, not a list of pairs')
    elif not isinstance(document, list):
        raise fail(
            line_of(start),
            f"the top level is {_kind(document)} — use a list of pairs or an object with "
            '"source_lang", "target_lang" and "pairs"',
        )
    raws = []
    for offset, _, item in _json_members(text, start):
        line = line_of(offset)
        if not isinstance(item, dict):
            raise fail(line, f"entry is {_kind(item)}, not an object — {_ENTRY_HELP}")
        values = []
        for name, keys in (("source", _SOURCE_KEYS), ("target", _TARGET_KEYS)):
            key = next((k for k in keys if k in item), None)
            if key is None:
                raise fail(line, f"entry has no {name} — {_KEYS_HELP}")
            if not isinstance(item[key], str):
                shown = f"{_kind(item[key])} ({_q(item[key])})"
                raise fail(line, f'"{key}" is {shown}, not a string — put it in quotes')
            values.append(item[key])
        group = item.get("group")
        if group is not None and not isinstance(group, str):
            raise fail(line, f'"group" is {_kind(group)} — use "trained" or "control"')
        raws.append((line, values[0], values[1], group))
    return raws, header


def _column(cells: list[str], generic: str, name: str) -> tuple[int, str | None]:
    """Index and language code of the first header cell naming this column, or (-1, None)."""
    for index, cell in enumerate(cells):
        code = cell[len(generic) + 1 :].strip() if cell.startswith(generic + ":") else ""
        if cell == generic or code:
            return index, code or None
        if cell == name:
            return index, _LANG_NAMES[cell]
    return -1, None


def _width(cells: list[str]) -> int:
    """Number of cells up to the last non-blank one."""
    return max((i + 1 for i, cell in enumerate(cells) if cell.strip()), default=0)


def _delimited_rows(text: str, delimiter: str, fail: _Fail) -> Iterator[_Row]:
    """Records of CSV/TSV text with their first line number; comment lines between records skipped."""
    at_record_start = [True]

    def lines() -> Iterator[str]:
        # A "#" line is a comment only where a record starts, never inside a quoted multi-line value;
        # it is blanked rather than removed so that the reader's line numbers stay right.
        for line in io.StringIO(text, newline=""):
            comment = at_record_start[0] and line.lstrip().startswith("#")
            at_record_start[0] = False
            yield "\n" if comment else line

    reader, previous = csv.reader(lines(), delimiter=delimiter), 0
    try:
        for row in reader:
            yield previous + 1, row
            previous, at_record_start[0] = reader.line_num, True
    except csv.Error as exc:
        raise fail(reader.line_num, f"unreadable row ({exc}) — fix the quoting") from exc


def _spaced_rows(text: str) -> Iterator[_Row]:
    """Lines of a tab-less TXT/TSV file split at runs of whitespace (MUSE ``source target`` lines)."""
    for number, line in enumerate(io.StringIO(text, newline=""), 1):
        if not line.lstrip().startswith("#"):
            yield number, line.split()


def _header(
    line: int, row: list[str], fail: _Fail, separator: str, spaced: bool
) -> tuple[tuple[int, int, int], dict[str, Any] | None]:
    """(source, target, group) column indices and languages of a header row; ``None`` languages = data.

    A first row is a header when its cells name a source and a target column; a row that names only
    one, or a delimited row of more than two cells without any known name, is a broken header.
    """
    cells = [cell.strip().lower() for cell in row]
    source, source_lang = _column(cells, "source", "swahili")
    target, target_lang = _column(cells, "target", "english")
    if source >= 0 and target >= 0:
        group = cells.index("group") if "group" in cells else -1
        return (source, target, group), {"source_lang": source_lang, "target_lang": target_lang}
    named = any(cell in _HEADER_NAMES or cell.startswith(("source:", "target:")) for cell in cells)
    if named or (not spaced and _width(row) > 2):
        shown = _q(separator.join(row))
        raise fail(line, f"header {shown} lacks source and target — {_HEADER_HELP}")
    return (0, 1, -1), None


def _extra_message(row: list[str], width: int, headed: bool, delimiter: str | None) -> str:
    if delimiter is None:
        return (
            f"{len(row)} space-separated words {_q(' '.join(row))} — in a file without tabs each line "
            "is a source and a target split at the first space, so a multiword entry cannot be told "
            "apart; separate source and target with a tab"
        )
    column = next(i for i in range(width, len(row)) if row[i].strip())
    where = f"beyond the {width} columns of the header" if headed else "of a file without header"
    quote = ", quote values that contain commas" if delimiter == "," else ""
    name = "name the column in the header" if headed else "add a header row naming every column"
    return f"extra value {_q(row[column])} in column {column + 1} {where} — delete it{quote}, or {name}"


def _read_table(text: str, fail: _Fail, kind: str) -> tuple[list[_Raw], dict[str, Any]]:
    """Rows of a CSV or TSV/TXT lexicon, with or without a header row.

    Without a header the columns are source then target (the MUSE format). A TSV/TXT file without any
    tab is read as space-separated: each line is split at runs of whitespace.
    """
    spaced = kind == "tsv" and "\t" not in text
    delimiter = None if spaced else ("," if kind == "csv" else "\t")
    rows = _spaced_rows(text) if delimiter is None else _delimited_rows(text, delimiter, fail)
    raws: list[_Raw] = []
    header: dict[str, Any] | None = None
    columns, width = None, 2
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if columns is None:
            columns, header = _header(line, row, fail, delimiter or " ", spaced)
            if header is not None:
                width = _width(row)
                continue
        if _width(row) > width:
            raise fail(line, _extra_message(row, width, header is not None, delimiter))
        source, target, group = (row[i] if 0 <= i < len(row) else "" for i in columns)
        raws.append((line, source, target, group if columns[2] >= 0 else None))
    return raws, {key: value for key, value in (header or {}).items() if value}


def _build(label: str, fail: _Fail, raws: list[_Raw]) -> list[Pair]:
    pairs: list[Pair] = []
    seen: dict[tuple[str, str], int] = {}
    group_lines: dict[str, dict[str, int]] = {}
    with_group = without_group = 0
    for line, raw_source, raw_target, raw_group in raws:
        source, target = _norm(raw_source), _norm(raw_target)
        for side, value in (("source", source), ("target", target)):
            if problem := too_long(value, MAX_WORD_CHARS):
                raise fail(
                    line, f"the {side} {_q(value)} {problem} — a lexicon entry is a word or a short phrase"
                )
        if not (source and target):
            empty = " and ".join(n for n, v in (("source", source), ("target", target)) if not v)
            side = "target" if target else "source"
            known = f" for {side} {_q(target or source)}" if source or target else ""
            raise fail(line, f"empty {empty}{known} — fill it in or delete the line")
        group = _norm(raw_group).lower() if raw_group is not None else ""
        if group and group not in GROUPS:
            use = 'use "trained" or "control", or leave it empty'
            raise fail(line, f"unknown group {_q(raw_group)} for {_q(source)} — {use}")
        if (source, target) in seen:
            first = f"first on line {seen[source, target]}"
            raise fail(line, f"duplicate pair {_q(source)} → {_q(target)} ({first}) — delete one")
        seen[source, target] = line
        if group:
            with_group = with_group or line
            lines = group_lines.setdefault(source, {})
            lines.setdefault(group, line)
            if len(lines) > 1:
                other = "trained" if group == "control" else "control"
                where = f'"{group}" here but "{other}" on line {lines[other]}'
                fix = "keep all senses of a source word in one group"
                raise fail(line, f"source {_q(source)} is {where} — {fix}")
        else:
            without_group = without_group or line
        pairs.append(Pair(source, target, group or None))
    if with_group and without_group:
        fix = 'give every pair a group ("trained"/"control") or none'
        raise fail(without_group, f"pair has no group but line {with_group} has one — {fix}")
    if not pairs:
        raise LexiconError(f"no pairs in {label} — add at least one source/target pair")
    return pairs


def read_lexicon(
    path: str | os.PathLike, source_lang: str | None = None, target_lang: str | None = None
) -> Lexicon:
    """Read and validate a lexicon file.

    Formats, by suffix:

    - ``.json``: a list of ``{"source", "target", "group"?}`` objects (or ``"swahili"``/``"english"``
      keys), or an object with ``"source_lang"``, ``"target_lang"``, ``"pairs"`` and other metadata.
    - ``.csv``, ``.tsv``, ``.txt`` (tab-separated): an optional header row naming the columns
      (``source``/``target``, ``swahili``/``english``, ``source:<lang>``/``target:<lang>``, optional
      ``group``; other named columns are ignored) — a first row is a header only when it names them,
      else it is data and the file has two columns, source then target (MUSE dictionaries). A
      ``.tsv``/``.txt`` file with no tab at all is split at the first run of spaces, so its entries
      must be single words. Lines starting with ``#`` (after optional blanks) are comments.

    Args:
        path: A ``.json``, ``.csv``, ``.tsv`` or ``.txt`` file.
        source_lang: Source language code; overrides what the file says (default "sw").
        target_lang: Target language code; overrides what the file says (default "en").

    Returns:
        The lexicon, pairs in file order, whitespace inside values collapsed to single spaces.

    Raises:
        LexiconError: For any problem, with a one-line message naming the file and line.
    """
    path = Path(path)
    label, kind = str(path), _format_for(path)
    text, fail = _read_text(path), _fail_for(label)
    if kind == "json":
        raws, header = _read_json(text, fail)
    else:
        raws, header = _read_table(text, fail, kind)
    pairs = _build(label, fail, raws)
    meta = {key: value for key, value in header.items() if key not in _RESERVED}
    source_lang = source_lang or header.get("source_lang", "sw").strip()
    target_lang = target_lang or header.get("target_lang", "en").strip()
    return Lexicon(pairs, source_lang, target_lang, label, meta)


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


def default_lexicon_path() -> Path:
    """Path of the shipped Swahili–English lexicon (``tli/data/lexicon_sw_en.json``)."""
    return Path(str(resources.files("tli") / "data" / "lexicon_sw_en.json"))


def default_lexicon() -> Lexicon:
    """The shipped Swahili–English lexicon, with its stored trained/control split."""
    return read_lexicon(default_lexicon_path())


# --------------------------------------------------------------------------- lexicons of a study


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
