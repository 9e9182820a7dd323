"""Named training objectives (a loss and its regularisers) that ``tli ablate`` compares.

Each is a set of training options; nothing else differs between them."""

from __future__ import annotations

from typing import Any

from tli.errors import ConfigError

VARIANTS: dict[str, dict[str, Any]] = {
    "triplet": {"loss": "triplet"},
    "infonce": {"loss": "infonce"},
    "infonce-lexicon": {"loss": "infonce-lexicon"},
    "infonce-lexicon+uniformity": {"loss": "infonce-lexicon", "regularizers": ["uniformity"]},
    "infonce-lexicon+preservation": {"loss": "infonce-lexicon", "regularizers": ["preservation"]},
    "centred-infonce-lexicon": {"loss": "infonce-lexicon", "regularizers": ["centred"]},
    "centred-infonce-lexicon+uniformity+preservation": {
        "loss": "infonce-lexicon",
        "regularizers": ["centred", "uniformity", "preservation"],
    },
}
"""Variant name → the :class:`~tli.config.TrainConfig` options it sets (``triplet`` = the published objective)."""

DESCRIPTIONS = {
    "triplet": "published: triplet loss, hardest in-batch negative, margin 0.4",
    "infonce": "symmetric InfoNCE over the batch (τ 0.05)",
    "infonce-lexicon": "InfoNCE against every trained target (per-epoch bank, polysemy-masked; τ 0.05)",
    "infonce-lexicon+uniformity": "… + Wang & Isola uniformity of the batch's embeddings (weight 1, t 2)",
    "infonce-lexicon+preservation": "… + out-of-lexicon words keep their base embeddings (1 − cos, weight 1)",
    "centred-infonce-lexicon": "lexicon InfoNCE on language-centred embeddings (a shared shift earns nothing)",
    "centred-infonce-lexicon+uniformity+preservation": "centred lexicon InfoNCE + uniformity + preservation",
}

ABLATION_DEFAULTS: dict[str, Any] = {
    "target_layer": 2,
    "epochs": 1,
    "seeds": [0, 1, 2],
    "downstream_seeds": 1,
}
"""The shared budget: the published target layer, 1 epoch (published: 5; the triplet loss already settles at its
margin within it) and downstream scoring of the first seed's adapters only, so the default model's ablation
(7 variants × 3 seeds) fits 30 minutes on an idle 2-core CPU."""

REFERENCE = "triplet"
"""The published objective every variant is compared with."""


def check_variants(names: list[str]) -> list[str]:
    """The names, each known (``tli: error`` names the valid ones otherwise); the reference always runs."""
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ConfigError(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    return list(dict.fromkeys([REFERENCE, *names]))
