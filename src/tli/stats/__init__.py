"""Statistics for paired (before/after) similarity data, in the spirit of rliable.

Every function is pure: inputs are 1-D arrays of per-pair scores, ``pre[i]`` and ``post[i]``
measured on the same item ``i``. Randomness (bootstrap, permutation) always goes through an explicit
:class:`numpy.random.Generator` (or an ``int`` seed), so results are reproducible.
p-values are reported exactly as scipy computes them (no clipping); a p-value that underflows
to ``0.0`` is printed as ``"< 1e-300"`` by :func:`format_p`.

What the functions answer:

* :func:`paired_stats`: did one group change (post versus pre)? Pairs that share a word (``bahari`` →
  sea, ``bahari`` → ocean) are not independent, so an optional ``clusters`` array (e.g. the source
  words) makes the primary p-value a t-test on per-cluster mean changes and the CI a cluster bootstrap.
* :func:`mcnemar_exact`: the same question for a 0/1 outcome (P@1 hit before and after).
* :func:`between_groups`: did group A change more than group B (trained versus control pairs)?
* :func:`equivalence_tost`: did the two groups change *as much* as each other, within a margin?
  (Failing to find a difference is not evidence of equivalence; this test is.)
* :func:`noninferiority_paired`: is A *not worse* than B by more than a margin ("preserves")? A
  non-significant difference is not evidence of that; this one-sided test is.
* :func:`adjust_pvalues`: Holm or Benjamini–Hochberg over a family of claims.

The package: :mod:`~tli.stats.paired` (one group, before/after; non-inferiority), :mod:`~tli.stats.groups`
(two independent groups: difference, equivalence), :mod:`~tli.stats.bootstrap` (the one percentile bootstrap,
on :func:`scipy.stats.bootstrap`), :mod:`~tli.stats.multiplicity` (Holm / BH, verdicts),
:mod:`~tli.stats.tables` (p-values and tables as printed), :mod:`~tli.stats.readers` (per-pair CSV / JSON /
JSONL files) and :mod:`~tli.stats.samples` (validation of the arrays, cluster codes).
"""

from __future__ import annotations

from tli.stats.bootstrap import bootstrap_ci, bootstrap_ci_mean, bootstrap_distribution
from tli.stats.groups import Equivalence, GroupDifference, between_groups, equivalence_tost
from tli.stats.multiplicity import adjust_pvalues, verdict
from tli.stats.paired import (
    McNemarResult,
    NonInferiority,
    PairedStats,
    cohens_d_paired,
    mcnemar_exact,
    noninferiority_paired,
    paired_randomisation,
    paired_stats,
)
from tli.stats.readers import (
    DEFAULT_CLUSTER,
    DEFAULT_GROUP,
    PairedSamples,
    read_grouped,
    read_paired,
    read_paired_csv,
    stats_by_group,
    stats_from_csv,
)
from tli.stats.tables import format_p, format_stats_table

__all__ = [
    "DEFAULT_CLUSTER",
    "DEFAULT_GROUP",
    "Equivalence",
    "GroupDifference",
    "McNemarResult",
    "NonInferiority",
    "PairedSamples",
    "PairedStats",
    "adjust_pvalues",
    "between_groups",
    "bootstrap_ci",
    "bootstrap_ci_mean",
    "bootstrap_distribution",
    "cohens_d_paired",
    "equivalence_tost",
    "format_p",
    "format_stats_table",
    "mcnemar_exact",
    "noninferiority_paired",
    "paired_randomisation",
    "paired_stats",
    "read_grouped",
    "read_paired",
    "read_paired_csv",
    "stats_by_group",
    "stats_from_csv",
    "verdict",
]
