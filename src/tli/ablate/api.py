"""The ``tli ablate`` API: run the units, judge them, write ``results.json`` and ``report.md``."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import numpy as np

from tli.ablate.downstream import DOWNSTREAM
from tli.ablate.runner import finished_units, run_units
from tli.ablate.table import markdown_table, markdown_verdicts, summary_rows
from tli.ablate.verdicts import better_without_collapse, judge_family, questions
from tli.errors import ConfigError
from tli.io import atomic_write_json, atomic_write_text
from tli.objectives import ABLATION_DEFAULTS, DESCRIPTIONS, REFERENCE, VARIANTS

__all__ = ["VARIANTS", "ablate", "analyse"]


def analyse(
    units: dict[str, dict[int, dict]], base: dict[str, Any], *, alpha: float = 0.05
) -> dict[str, Any]:
    """Table rows, judged questions and the variants that clear the bar, from finished units."""
    base_downstream = base.get("downstream", {})
    reference = units.get(REFERENCE)
    found = []
    for variant, per_seed in units.items():
        found.extend(questions(variant, per_seed, reference, base_downstream))
    judge_family(found, alpha=alpha)
    base_scores = {
        task: float(np.mean([r[spec["metric"]] for r in base_downstream[task]]))
        for task, spec in DOWNSTREAM.items()
        if task in base_downstream
    }
    return {
        "table": summary_rows(units),
        "base_downstream": base_scores,
        "questions": found,
        "better_without_collapse": [v for v in units if better_without_collapse(found, v)],
    }


def report(results: dict[str, Any]) -> str:
    """``report.md``: what ran, the table, the verdicts, and what cleared the bar."""
    winners = results["better_without_collapse"]
    lines = [
        f"# tli ablate — {results['model']['name']} ({results['date']})",
        "",
        f"Target layer {results['target_layer']}, {results['epochs']} epochs, seeds {results['seeds']}, lexicon: "
        f"{results['lexicon']}; every variant the same data, steps and seeds.",
        "",
        "Variants: " + "; ".join(f"`{v}` — {DESCRIPTIONS[v]}" for v in results["variants"]),
        "",
        markdown_table(results["table"], results["base_downstream"]),
        "Δ: adapted − base, mean over pairs then seeds. BLI: unseen control words' translations among all lexicon "
        "targets; adapted model with CSLS (the base model's and the Procrustes baseline's in the first rows).",
        "",
        "## Verdicts",
        "",
        markdown_verdicts(results["questions"]),
        "",
        *(
            [f"Not finished with every seed (left out): {', '.join(results['not_finished'])}", ""]
            if results.get("not_finished")
            else []
        ),
        "Better than published TLI on unseen-word BLI without collapse or downstream harm: "
        + (", ".join(f"`{w}`" for w in winners) if winners else "**none**"),
        "",
    ]
    return "\n".join(lines)


def ablate(
    model: str | None = None,
    *,
    out: str | Path,
    lexicon: str | Path | None = None,
    variants: list[str] | None = None,
    seeds: list[int] | None = None,
    target_layer: int = ABLATION_DEFAULTS["target_layer"],
    epochs: int = ABLATION_DEFAULTS["epochs"],
    downstream: bool = True,
    downstream_seeds: int | None = ABLATION_DEFAULTS["downstream_seeds"],
    alpha: float = 0.05,
    threads: int | None = None,
    progress: bool | None = False,
    report_only: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the ablation and write ``OUT/results.json`` and ``OUT/report.md``; returns the results.

    ``report_only``: train nothing; judge the variants whose every seed is already finished in ``out``.
    """
    out = Path(out)
    seeds = list(seeds or ABLATION_DEFAULTS["seeds"])
    variants = list(variants or VARIANTS)
    if report_only:
        ran = finished_units(out, variants, seeds)
        if not ran["units"]:
            raise ConfigError(f"--report-only: no variant has all seeds {seeds} finished in {out}")
        first = next(iter(next(iter(ran["units"].values())).values()))
        ran |= {"model": {"name": str(model or "default (SmolLM2-135M-Instruct)")}, "timing": {}}
        epochs, target_layer = first["train_config"]["epochs"], first["target_layer"]  # as the units ran
    else:
        ran = run_units(
            model,
            out,
            variants,
            lexicon=lexicon,
            seeds=seeds,
            target_layer=target_layer,
            epochs=epochs,
            downstream=downstream,
            downstream_seeds=downstream_seeds,
            threads=threads,
            progress=progress,
        )
        ran["missing"] = []
    results = {
        "model": ran["model"],
        "date": datetime.date.today().isoformat(),
        "variants": list(ran["units"]),
        "not_finished": ran["missing"],
        "variant_options": {v: VARIANTS[v] for v in ran["units"]},
        "seeds": seeds,
        "lexicon": str(lexicon) if lexicon else "shipped (stored split)",
        "target_layer": target_layer,
        "epochs": epochs,
        "downstream_seeds": seeds[:downstream_seeds] if downstream_seeds else seeds,
        "alpha": alpha,
        "correction": "holm",
        **analyse(ran["units"], ran["base"], alpha=alpha),
        "timing": ran["timing"],
    }
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "report.md", report(results))
    return results
