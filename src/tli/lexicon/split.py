"""The leak-free trained/control split: pairs are linked when they share a source, a target or a word
(:data:`SPLIT_RULES`), connected components of linked pairs go to one side whole, and a seeded first-fit
fills the control budget; :class:`SplitReport` says what it did. :meth:`tli.lexicon.Lexicon.split` runs it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tli.errors import LexiconError
from tli.lexicon.pairs import Pair, word_tokens

DEFAULT_CONTROL_FRACTION = 63 / 686
SPLIT_RULES = ("source", "target", "word")


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
