"""What an :class:`~tli.losses.objective.Objective` needs beyond the batch, built during training.

- the **bank**: every trained target word embedded at the target layer at the start of each epoch (no gradient),
  with its polysemy mask per anchor — negatives over the whole lexicon at the cost of one no-grad pass an epoch;
- the **preservation words**: words of the tokenizer's vocabulary outside the lexicon (trained, validation *and*
  control words excluded, so no unseen control word is touched), their base-model embeddings computed once
  before the first step, and a seeded sample of them embedded by the adapted model at every step.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence

import torch

from tli.losses.masks import candidate_mask

PRESERVATION_VOCABULARY = 2000
"""Out-of-lexicon words kept in the preservation pool (the tokenizer's most frequent whole words)."""
BANK_CHUNK = 64
"""Words per no-grad forward when the bank is refreshed."""


class ObjectiveInputs:
    """Bank and preservation tensors for one training run.

    Args:
        objective: the objective (its ``uses_bank`` / ``uses_preservation`` say what to build).
        embed: ``(encoder, words) -> (len(words), H)`` pooled target-layer embeddings of ``words``.
        targets: the trained targets (the bank's words).
        known: every ``(source, target)`` translation of the training lexicon (the polysemy mask).
        vocabulary: candidate preservation words (e.g. :func:`tli.bli.tokenizer_vocabulary`).
        excluded: words that must not be preserved (the whole lexicon, control pairs included).
        seed: sampling seed of the per-step preservation words.
    """

    def __init__(
        self,
        objective,
        embed,
        targets: Sequence[str],
        known: Collection[tuple[str, str]],
        vocabulary: Sequence[str] = (),
        excluded: Collection[str] = (),
        seed: int = 0,
    ):
        self.objective, self.embed, self.known, self.seed = objective, embed, set(known), seed
        self.targets = list(dict.fromkeys(targets))
        self.bank: torch.Tensor | None = None
        skip = {w.casefold() for w in excluded}
        self.words = [w for w in vocabulary if w.casefold() not in skip][:PRESERVATION_VOCABULARY]
        self.base: torch.Tensor | None = None

    def start(self, encoder) -> None:
        """Before the first step (the adapter is still the identity): the base embeddings of the preserved words."""
        if self.objective.uses_preservation and self.words:
            self.base = self._no_grad(encoder, self.words)

    def start_epoch(self, encoder) -> None:
        """Refresh the bank of trained targets with the current adapter."""
        if self.objective.uses_bank:
            self.bank = self._no_grad(encoder, self.targets)

    def for_batch(self, encoder, sources: Sequence[str], step_key: int, batch_size: int) -> dict:
        """The keyword inputs of the objective for one batch (``step_key`` seeds the preservation sample)."""
        extra: dict = {}
        if self.bank is not None:
            extra["bank"] = self.bank
            extra["bank_valid"] = candidate_mask(sources, self.targets, self.known).to(self.bank.device)
        if self.base is not None:
            rows = random.Random(self.seed * 1_000_003 + step_key).sample(
                range(len(self.words)), min(batch_size, len(self.words))
            )
            extra["preserved"] = self.embed(encoder, [self.words[r] for r in rows])
            extra["preserved_base"] = self.base[rows]
        return extra

    def _no_grad(self, encoder, words: Sequence[str]) -> torch.Tensor:
        was_training = encoder.training
        encoder.eval()
        with torch.no_grad():
            parts = [self.embed(encoder, words[i : i + BANK_CHUNK]) for i in range(0, len(words), BANK_CHUNK)]
        encoder.train(was_training)
        return torch.cat(parts).detach()
