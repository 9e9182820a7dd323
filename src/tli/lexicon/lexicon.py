"""A lexicon: an ordered list of :class:`~tli.lexicon.pairs.Pair` with its language codes, its fingerprint,
and its trained/control groups — stored in the file, or made by the leak-free split of
:mod:`tli.lexicon.split`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from tli.errors import ConfigError, LexiconError
from tli.io import sha256_text
from tli.lexicon.pairs import GROUPS, Pair
from tli.lexicon.split import (
    DEFAULT_CONTROL_FRACTION,
    SPLIT_RULES,
    SplitReport,
    _components,
    _control_indices,
    _one_component_error,
)


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
