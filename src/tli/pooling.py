"""The pooling recipe: how a word (or a passage) becomes one vector — defined and validated once.

A recipe is the pooling statistic, whether each language's mean is subtracted, an optional prompt template
with a ``{word}`` slot, and the start token. :class:`PoolingRecipe` is the one type: the command options
(:class:`tli.config.EmbedOptions`) build it, :class:`tli.embed.EmbedConfig` extends it with a batch size,
and every validator calls :func:`recipe_problems`, so a recipe is accepted or refused with the same words
everywhere. This module imports nothing heavy.

Poolings (``pooling=``):

- ``mean-no-special`` (:data:`DEFAULT_POOLING`): mean over tokens that are neither special (BOS, EOS, …) nor
  at position 0 — the published evaluation's recipe;
- ``mean``: mean over every attention-masked token, the start token too — the published pilot scan's;
- ``last``: the hidden state of the last token (natural with a template that ends where the answer starts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

POOLINGS = ("mean", "mean-no-special", "last")
DEFAULT_POOLING = "mean-no-special"
"""The one pooling recipe every command uses by default (scan, train, run, evaluate's adapters, export, the TLI
strategy and dense retrieval of ``tli compare``): special tokens and position 0 left out, as the published
evaluation pooled. ``mean`` (the published pilot scan) pools the start token in, whose massive activations
make any two words look alike (matched and mismatched cosine both 0.9999 on SmolLM2)."""
ADD_BOS = ("auto", "always", "never")
"""Whether a start token precedes each word: ``auto`` (when the tokenizer adds none itself), ``always``,
``never``."""
EXCLUDED_TOKENS = {
    "mean": "nothing (first/special tokens pooled in, as published)",
    "mean-no-special": "special tokens and position 0",
    "last": "all but the last token",
}
"""What each pooling leaves out, as recorded in ``results.json``."""


def flag_label(name: str) -> str:
    """How a recipe field is named to a command-line user: ``add_bos`` → ``--add-bos``."""
    return "--" + name.replace("_", "-")


def recipe_problems(
    pooling: Any, add_bos: Any, template: Any, *, label: Callable[[str], str] = flag_label
) -> list[str]:
    """Every reason the recipe ``(pooling, add_bos, template)`` is invalid; empty when it is valid.

    ``label`` names a field in the messages: ``--pooling`` for commands (the default),
    e.g. ``tasks.retrieval.pooling`` for an experiment file.
    """
    problems = []
    for name, value, choices in (("pooling", pooling, POOLINGS), ("add_bos", add_bos, ADD_BOS)):
        if value not in choices:
            problems.append(f"{label(name)} {value!r} is not one of {', '.join(choices)}")
    if template is not None and (not isinstance(template, str) or "{word}" not in template):
        problems.append(
            f"{label('template')} {template!r} has no {{word}} slot: write e.g. 'The word \"{{word}}\"'"
        )
    return problems


@dataclass(frozen=True)
class PoolingRecipe:
    """How a string becomes a vector (recorded in every result file)."""

    pooling: str = DEFAULT_POOLING
    """``mean-no-special`` (default: the published evaluation's recipe) | ``mean`` (the published pilot scan's)
    | ``last``."""
    center: bool = False
    """Subtract each language's mean embedding (per layer) before L2-normalising; removes the shared
    direction that makes raw cosines of decoder states ≈ 1."""
    template: str | None = None
    """Prompt with a ``{word}`` slot, e.g. ``'This word: "{word}" means in one word: "'``;
    None embeds the bare word."""
    add_bos: str = "auto"
    """``auto`` | ``always`` | ``never``: whether to start each sequence with the document separator
    (``auto``: when the tokenizer adds no start token itself; ``always``: the same, but an error when there is
    none)."""
    bos_token: str | None = None
    """The start token to prepend instead of the document separator (e.g. ``<|im_start|>``)."""

    def problems(self) -> list[str]:
        """Every reason this recipe is invalid (see :func:`recipe_problems`)."""
        return recipe_problems(self.pooling, self.add_bos, self.template)

    def recipe(self) -> PoolingRecipe:
        """The recipe alone (without what a subclass adds, e.g. a batch size)."""
        return PoolingRecipe(**{name: getattr(self, name) for name in RECIPE_FIELDS})

    def describe(self) -> dict[str, Any]:
        """The recipe as recorded in ``results.json``."""
        return {
            "pooling": self.pooling,
            "excluded_tokens": EXCLUDED_TOKENS[self.pooling],
            "center": self.center,
            "template": self.template,
            "add_bos": self.add_bos,
            "bos_token_requested": self.bos_token,
            "l2_normalised": True,
        }


RECIPE_FIELDS = tuple(f.name for f in dataclasses.fields(PoolingRecipe))
"""The fields that decide an embedding: a scan and the training it selects a layer for must agree on them."""

__all__ = [
    "ADD_BOS",
    "DEFAULT_POOLING",
    "EXCLUDED_TOKENS",
    "POOLINGS",
    "RECIPE_FIELDS",
    "PoolingRecipe",
    "flag_label",
    "recipe_problems",
]
