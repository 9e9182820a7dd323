"""The typed results of the statistics of ``tli compare``: the rows of ``comparisons_per_seed`` and
``comparisons`` in ``results.json`` (:meth:`SeedComparison.to_dict`, :meth:`Comparison.to_dict`).

A leaf: built by :mod:`tli.compare.comparisons`, read by :mod:`tli.compare.questions`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

ONE_SEED_INTERVAL = "95 % paired-bootstrap CI over examples (one seed)"


@dataclass(kw_only=True)
class SeedComparison:
    """One hypothesis tested on one seed and judged within its family (``comparisons_per_seed``)."""

    model: str
    task: str
    language: str
    metric: str
    strategy: str
    """The strategy, or the retrieval system, compared (A)."""
    reference: str
    """What it is compared with (B)."""
    seed: int
    kind: str
    """``difference``, ``non-inferiority`` or ``interaction`` (:class:`~tli.compare.hypotheses.Hypothesis`)."""
    family: str
    test: str
    difference: float
    """A − B."""
    ci95_low: float
    ci95_high: float
    interval: str
    p_value: float
    p_floor: float
    """The smallest p the test can give on these examples."""
    n_resamples: int
    se: float | None
    n: int
    score: float
    reference_score: float
    margin: float | None = None
    """Non-inferiority: the margin."""
    other_model: str | None = None
    """Interactions: the model the difference is compared with."""
    system: bool = False
    """A comparison of retrieval systems (then ``p_randomisation`` and ``seed_independent`` are set)."""
    p_randomisation: float | None = None
    seed_independent: bool = False
    """Neither system has a seed (BM25, zero-shot retrievers): the same result in every seed."""
    p_adjusted: float | None = None
    verdict: str = ""
    claim: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The row of ``results.json``: optional keys only where they apply."""
        row = {
            name: getattr(self, name)
            for name in (
                *("model", "task", "language", "metric", "strategy", "reference", "seed", "kind", "family"),
                *("test", "difference", "ci95_low", "ci95_high", "interval", "p_value", "p_floor"),
                *("n_resamples", "se", "n", "score", "reference_score"),
            )
        }
        if self.margin is not None:
            row["margin"] = self.margin
        if self.other_model:
            row["other_model"] = self.other_model
        if self.system:
            row |= {
                "system": True,
                "p_randomisation": self.p_randomisation,
                "seed_independent": self.seed_independent,
            }
        return row | {"p_adjusted": self.p_adjusted, "verdict": self.verdict, "claim": self.claim}


@dataclass(kw_only=True)
class Comparison:
    """One hypothesis over seeds: the per-seed results combined and judged within its family
    (``comparisons``: the verdicts)."""

    model: str
    task: str
    language: str
    metric: str
    strategy: str
    reference: str
    kind: str
    other_model: str | None = None
    family: str
    n_seeds: int
    seeds: list[int]
    n: int
    score: float
    """A's score, the mean over seeds."""
    reference_score: float
    p_floor: float
    """The smallest p the test can give (0 with several seeds: the across-seed t test has none)."""
    p_floor_per_seed: float
    n_resamples: int
    margin: float | None = None
    system: bool = False
    difference: float = math.nan
    difference_sd: float = 0.0
    """Standard deviation of the difference over seeds."""
    ci95_low: float = math.nan
    ci95_high: float = math.nan
    interval: str = ONE_SEED_INTERVAL
    p_value: float = math.nan
    p_adjusted: float = math.nan
    verdict: str = ""
    verdicts: list[str] = field(default_factory=list)
    """The per-seed verdicts."""
    test: str = ""
    se: float | None = None
    tau2: float | None = None
    """Between-seed variance of the random-effects model."""
    note: str = ""
    claim: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The row of ``results.json``: optional keys only where they apply."""
        row: dict[str, Any] = {
            name: getattr(self, name)
            for name in ("model", "task", "language", "metric", "strategy", "reference")
        }
        row["kind"] = self.kind
        if self.other_model is not None:
            row["other_model"] = self.other_model
        row |= {
            name: getattr(self, name)
            for name in (
                *(
                    "family",
                    "n_seeds",
                    "seeds",
                    "n",
                    "score",
                    "reference_score",
                    "p_floor",
                    "p_floor_per_seed",
                ),
                "n_resamples",
            )
        }
        if self.margin is not None:
            row["margin"] = self.margin
        if self.system:
            row["system"] = True
        return row | {
            name: getattr(self, name)
            for name in (
                *(
                    "difference",
                    "difference_sd",
                    "ci95_low",
                    "ci95_high",
                    "interval",
                    "p_value",
                    "p_adjusted",
                ),
                *("verdict", "verdicts", "test", "se", "tau2", "note", "claim"),
            )
        }
