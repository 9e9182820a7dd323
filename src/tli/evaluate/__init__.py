"""Evaluation of a TLI adapter: base vs adapted, trained vs unseen control pairs, target vs final layer.

One model load serves both sides: the adapter stays unmerged (merging LoRA into 4-bit weights adds
rounding error) and the base model is the same network with the adapter disabled. Every string is embedded
at every layer before and after (in float32), so the layer curves come for free (:mod:`tli.evaluate.embeddings`).

Per group (``trained``, ``control``) and reported layer (the target layer and the final layer; once when
they coincide), per pair or per query (:mod:`tli.evaluate.measures`):

- ``similarity``: ``cos(s_k, t_k)`` — the published statistic;
- ``gap``: ``cos(s_k, t_k) − mean_{j ∉ gold(s_k)} cos(s_k, t_j)`` — similarity beyond what any word gets;
- ``centered gap``: the same after mean-centring each language at that layer (:func:`tli.metrics.centre`) —
  scale-free, so a training run that collapses every cosine towards 1 cannot fake or hide a change;
- ``reciprocal rank`` and ``P@1`` hit of each source word's best translation among all lexicon targets.

Claims (:mod:`tli.claims`), all corrected together (Holm by default):

- within each group: similarity, centred gap, MRR and P@1 rise (paired tests; pairs sharing a source word
  are one cluster: t-test on source-word means and a cluster bootstrap CI; a paired randomisation test for
  reciprocal ranks;
  exact McNemar for P@1);
- between groups: trained pairs gain more than control pairs (Welch), and control pairs gain as much as
  trained pairs within ``±equivalence_margin × |trained gain|`` (TOST) — for similarity and centred gap.

The modules: :mod:`~tli.evaluate.groups` (which pairs are trained / control), :mod:`~tli.evaluate.run` (one
adapter's figures, no files: :class:`EvaluationResult`), :mod:`~tli.evaluate.seeds` (over seeds:
:class:`SeedsSummary`), :mod:`~tli.evaluate.api` (:func:`evaluate`, which writes the run directory).
"""

from tli.config import EvaluateConfig
from tli.evaluate.api import evaluate, expand_adapters
from tli.evaluate.embeddings import Embeddings, Side, embed_both, embed_config_of, layer_curves
from tli.evaluate.groups import GROUPS, SMALL_GROUP, groups_for, small_group_warnings
from tli.evaluate.measures import (
    INTERVALS,
    TESTS,
    Measures,
    between_group_claims,
    layer_roles,
    measure,
    within_group,
)
from tli.evaluate.results import EvaluationResult, SeedsSummary
from tli.evaluate.run import bli_figures, run_evaluation
from tli.evaluate.seeds import SHARED_BY_SEEDS, aggregate, aggregate_bli, seed_summary

__all__ = [
    "GROUPS",
    "INTERVALS",
    "SHARED_BY_SEEDS",
    "SMALL_GROUP",
    "TESTS",
    "Embeddings",
    "EvaluateConfig",
    "EvaluationResult",
    "Measures",
    "SeedsSummary",
    "Side",
    "aggregate",
    "aggregate_bli",
    "between_group_claims",
    "bli_figures",
    "embed_both",
    "embed_config_of",
    "evaluate",
    "expand_adapters",
    "groups_for",
    "layer_curves",
    "layer_roles",
    "measure",
    "run_evaluation",
    "seed_summary",
    "small_group_warnings",
    "within_group",
]
