"""An evaluation over seeds: the mean and sd of every figure, the claims across seeds, the BLI envelopes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tli.claims import across_seeds
from tli.evaluate.results import EvaluationResult, SeedsSummary


def aggregate(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Figures over seeds: per (group, layer) entry the mean and sd of every number (a CI bound's mean is the
    mean of the per-seed bounds, not a CI), and the claims across seeds (:func:`tli.claims.across_seeds`:
    random-effects estimate, across-seed CI and p, judged together with the run's correction).

    Reads the per-seed ``results.json`` form (:meth:`EvaluationResult.to_dict`), so ``tli verify`` re-derives
    a summary from the files with the function that made it.
    """
    first = per_seed[0]
    evaluation = []
    for i, entry in enumerate(first["evaluation"]):
        versions = [seed["evaluation"][i] for seed in per_seed]
        row = dict(entry)
        for key, value in entry.items():
            if isinstance(value, float):
                values = np.array([v[key] for v in versions], dtype=float)
                finite = values[np.isfinite(values)]
                row[key] = float(finite.mean()) if finite.size else float("nan")
                row[f"{key}_sd"] = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
        evaluation.append(row)
    statistics = first.get("statistics", {})
    claims = across_seeds(
        [seed["claims"] for seed in per_seed],
        correction=statistics.get("correction", "holm"),
        alpha=statistics.get("alpha", 0.05),
    )
    return {
        "evaluation": evaluation,
        "claims": claims,
        "bli": aggregate_bli([seed.get("bli") or [] for seed in per_seed]),
    }


SHARED_BY_SEEDS = ("target_layer", "final_layer", "layer_roles", "statistics", "pooling", "model", "lexicon")
"""What every seed of one evaluation shares (same base model, lexicon and recipe): taken from the first."""


def seed_summary(per_seed: Sequence[EvaluationResult]) -> SeedsSummary:
    """The evaluation over seeds (``tli evaluate`` with several adapters, ``tli run --seeds``): the figures
    and claims over seeds (:func:`aggregate`), each seed's own, what the seeds share, the groups left out
    and every seed's warnings (once each)."""
    first = per_seed[0]
    over_seeds = aggregate([r.to_dict() for r in per_seed])
    return SeedsSummary(
        seeds=[r.seed for r in per_seed],
        evaluation=over_seeds["evaluation"],
        claims=over_seeds["claims"],
        bli=over_seeds["bli"],
        per_seed=[
            {"seed": r.seed, "evaluation": r.evaluation, "claims": r.claims, "adapter": r.adapter}
            for r in per_seed
        ],
        **{key: getattr(first, key) for key in SHARED_BY_SEEDS},
        skipped_groups=first.skipped_groups,
        warnings=list(dict.fromkeys(w for r in per_seed for w in r.warnings)),
    )


def aggregate_bli(per_seed: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """BLI figures over seeds, per layer and system: each figure's mean over seeds and its sd (``<key>_sd``,
    ``ddof=1``); each interval ``[min of the seeds' lows, max of their highs]`` (the envelope of the per-seed
    95 % intervals), so no seed's interval is narrower than the one reported. One seed: its rows unchanged.

    The base model and the Procrustes map do not depend on the training seed (sd 0); the adapted model does.
    """
    if len(per_seed) <= 1 or not all(per_seed):
        return [dict(row) for row in per_seed[0]] if per_seed else []
    rows = []
    for versions in zip(*per_seed, strict=True):
        row = {k: v for k, v in versions[0].items() if k != "systems"} | {"n_seeds": len(versions)}
        row["systems"] = {}
        for system, first in versions[0]["systems"].items():
            reports = [v["systems"][system] for v in versions]
            combined: dict[str, Any] = {}
            for key, value in first.items():
                if not _is_number(value) or key.endswith("_chance") or key in _BLI_FIXED:
                    combined[key] = value  # the same in every seed: sizes, chance levels, the method
                    continue
                values = np.array([r[key] for r in reports], dtype=float)
                if key.endswith("_ci_low"):
                    combined[key] = float(values.min())
                elif key.endswith("_ci_high"):
                    combined[key] = float(values.max())
                else:
                    combined[key], combined[f"{key}_sd"] = float(values.mean()), float(values.std(ddof=1))
            row["systems"][system] = combined
        rows.append(row)
    return rows


_BLI_FIXED = ("n_queries", "n_candidates", "confidence", "csls_k")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
