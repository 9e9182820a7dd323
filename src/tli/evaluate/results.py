"""The typed results of an evaluation: one adapter's (:class:`EvaluationResult`) and over seeds
(:class:`SeedsSummary`).

The computation returns these; whoever writes ``results.json`` or returns the public API's dict calls
``to_dict()``, which gives the keys in the order the files always had. The rows inside (evaluation entries,
claims, BLI figures, per-pair figures) stay JSON-ready dicts: they are written as they are and read back by
``tli verify`` and the reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

JsonRows = list[dict[str, Any]]


@dataclass
class EvaluationResult:
    """Every figure and judged claim of one adapter's evaluation, then the record of the run that made it."""

    target_layer: int
    final_layer: int
    layer_roles: list[str]
    """``["target", "final"]``, or ``["target = final"]`` when the adapter sits on the last layer."""
    evaluation: JsonRows
    """One entry per (group, layer): before/after figures, changes, intervals and p-values."""
    between_groups: JsonRows
    """Trained − control figures per metric and layer."""
    claims: JsonRows
    """Every claim, judged together (:meth:`tli.claims.Claim.to_dict`)."""
    bli: JsonRows
    """Retrieval of the unseen control words per layer: base, adapted and the Procrustes baseline."""
    statistics: dict[str, Any]
    """Correction, alpha, number of claims, equivalence margin and bootstrap resamples."""
    per_pair: JsonRows
    """Per pair and layer: similarity and gaps before and after (``pairs.csv``)."""
    skipped_groups: JsonRows
    """Groups with fewer than 2 pairs: ``{"group", "n"}``."""
    skipped_pairs: Any
    """Pairs the tokenizer cannot embed, left out (:func:`tli.embed.drop_unembeddable_pairs`)."""
    layers_pre: JsonRows
    """Scan figures at every layer, base model."""
    layers_post: JsonRows
    """Scan figures at every layer, adapted model."""
    warnings: list[str]
    pooling: dict[str, Any]
    precision: str
    timing: dict[str, float]
    provenance: dict[str, Any] = field(default_factory=dict)
    """Command, argv, config, seed, versions, machine (:func:`tli.runs.provenance`); empty until recorded."""
    seed: int | None = None
    """The training seed of the adapter; replaces provenance's seed in :meth:`to_dict`."""
    split: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    lexicon: dict[str, Any] | None = None
    adapter: dict[str, Any] | None = None
    """``{"path", "trained_with"}``: the adapter and its training config."""

    _RUN_FIELDS: ClassVar[tuple[str, ...]] = ("seed", "split", "model", "lexicon", "adapter")

    def record_run(
        self,
        provenance: dict[str, Any],
        *,
        seed: int,
        split: dict[str, Any],
        model: dict[str, Any],
        lexicon: dict[str, Any],
        adapter: dict[str, Any],
    ) -> None:
        """Attach what run made this result: provenance, the adapter's seed and split, model and lexicon."""
        self.provenance = provenance
        self.seed, self.split, self.model, self.lexicon, self.adapter = seed, split, model, lexicon, adapter

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` form: the figures, then the provenance, then the run's own record.

        The provenance's ``seed`` key keeps its place and takes the adapter's seed, as the files always had it.
        """
        computed = [f.name for f in fields(self) if f.name != "provenance" and f.name not in self._RUN_FIELDS]
        record = {name: getattr(self, name) for name in computed}
        record.update(self.provenance)
        for name in self._RUN_FIELDS:
            if getattr(self, name) is not None:
                record[name] = getattr(self, name)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> EvaluationResult:
        """The inverse of :meth:`to_dict` (a per-seed ``results.json`` read back)."""
        names = {f.name for f in fields(cls)} - {"provenance"}
        known = {key: value for key, value in record.items() if key in names}
        provenance = {key: value for key, value in record.items() if key not in names or key == "seed"}
        if "command" not in provenance:  # never recorded: the seed is the run's own, not provenance's
            provenance = {}
        return cls(**known, provenance=provenance)


@dataclass
class SeedsSummary:
    """An evaluation over seeds (``tli evaluate`` with several adapters, ``tli run --seeds``)."""

    seeds: list[int]
    evaluation: JsonRows
    """Per (group, layer): the mean over seeds of every figure and its sd (``<key>_sd``)."""
    claims: JsonRows
    """The claims across seeds (:func:`tli.claims.across_seeds`), judged together."""
    bli: JsonRows
    """BLI figures over seeds (:func:`tli.evaluate.aggregate_bli`)."""
    per_seed: JsonRows
    """Each seed's own ``seed``, ``evaluation``, ``claims`` and ``adapter``."""
    target_layer: int
    final_layer: int
    layer_roles: list[str]
    statistics: dict[str, Any]
    pooling: dict[str, Any]
    model: dict[str, Any] | None
    lexicon: dict[str, Any] | None
    skipped_groups: JsonRows
    warnings: list[str]
    """Every seed's warnings, once each."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, keys in field order (the order ``evaluate/results.json`` always had)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> SeedsSummary:
        """The inverse of :meth:`to_dict`; keys that are not fields (a written file's provenance) are ignored."""
        return cls(**{f.name: record[f.name] for f in fields(cls)})
