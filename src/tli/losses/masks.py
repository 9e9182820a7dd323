"""Which targets may serve as negatives: never a translation of the anchor anywhere in the lexicon."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch


def valid_negative_mask(
    sources: Sequence[str],
    targets: Sequence[str],
    translations: Collection[tuple[str, str]] | None = None,
) -> torch.Tensor:
    """``(B, B)`` bool: ``True`` where target ``j`` may serve as a negative for anchor ``i``.

    Pair ``j`` is excluded for anchor ``i`` when ``j == i``, ``source_j == source_i`` (another sense of
    the same word), ``target_j == target_i`` (a synonym on the source side, e.g. two Swahili words
    for ``car``), or ``(source_i, target_j)`` is a translation anywhere in ``translations`` (the whole
    lexicon's senses: with ``bahari`` → sea in the batch, ``ocean`` is no negative for ``bahari`` even when
    the batch holds ``ocean`` only as the translation of another word).
    """
    src = list(sources)
    tgt = list(targets)
    known = set(translations or ())
    invalid = [
        [a == b or t_a == t_b or (a, t_b) in known for b, t_b in zip(src, tgt, strict=True)]
        for a, t_a in zip(src, tgt, strict=True)
    ]
    return ~torch.tensor(invalid)


def candidate_mask(
    sources: Sequence[str], candidates: Sequence[str], translations: Collection[tuple[str, str]]
) -> torch.Tensor:
    """``(B, N)`` bool: ``True`` where candidate target ``j`` may serve as a negative for anchor ``i``.

    A candidate is excluded when ``(source_i, candidate_j)`` is a known translation — the anchor's own target and
    every other sense (``bahari`` → sea *and* ocean), so no correct translation is ever pushed away.
    """
    known = set(translations)
    return ~torch.tensor([[(s, c) in known for c in candidates] for s in sources], dtype=torch.bool).reshape(
        len(sources), len(candidates)
    )
