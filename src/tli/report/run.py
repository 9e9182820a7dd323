"""The top-level ``report.md`` of ``tli run``: scan findings, training summary, the evaluation's claims and
the index of every plot."""

from __future__ import annotations

from typing import Any

from tli.report.evaluation import EVALUATE_PLOTS, evaluation_report
from tli.report.formatting import plot_index
from tli.report.scan import scan_findings
from tli.report.seeds import seeds_table


def run_report(results: dict[str, Any], scan) -> str:
    """Top-level ``report.md``: scan findings, training summary, then the evaluation's claims."""
    seeds = results["seeds"]
    several = len(seeds) > 1
    train_dir = f"train/seed-{seeds[0]}" if several else "train"
    body = evaluation_report(
        {**results, "warnings": []},  # listed once, under Training
        heading="## 3. Evaluation",
        link_prefix=f"evaluate/seed-{seeds[0]}/" if several else "evaluate/",
    ).replace("\n## ", "\n### ")
    given = results.get("target_layer_given")
    layer_line = (
        f"- target layer {results['target_layer']} (given by --target-layer; the scan's `{results['criterion']}` "
        f"criterion would pick {results['selected_layer']})"
        if given
        else f"- target layer {results['target_layer']} (selected by `{results['criterion']}`)"
    )
    train_lines = []
    for run in results["train"]:
        losses = ", ".join(f"{loss:.4f}" for loss in run["epoch_losses"])
        validation = ""
        if run.get("validation"):
            validation = "; validation MRR per epoch: " + ", ".join(
                f"{v['mrr']:.3f}" for v in run["validation"]
            )
        train_lines.append(
            f"- seed {run['seed']}: {run['timing']['steps']} steps in {run['timing']['train_seconds']:.0f} s on "
            f"{run['n_train_pairs']} pairs ({run['n_validation_pairs']} held out for validation); mean loss per "
            f"epoch: {losses}{validation}"
        )
    warnings = [f"- Warning: {w}." for w in dict.fromkeys(results.get("warnings", []))]
    split = results.get("split") or {}
    audit = split.get("audit") or {}
    lines = [
        "# tli run",
        "",
        f"Model `{results['model']['name']}`, lexicon `{results['lexicon']['path']}` "
        f"({results['lexicon']['n_trained']} trained / {results['lexicon']['n_control']} control pairs, "
        f"{split.get('origin', 'stored')} split; control pairs sharing a source, target or word with a trained "
        f"pair: {audit.get('n_leaking', 0)}). Seeds: {', '.join(map(str, seeds))}.",
        "",
        "## 1. Scan (trained pairs only)",
        "",
        *[f"- {finding}" for finding in scan_findings(scan)],
        "",
        "![layer curves](scan/layers.png)",
        "",
        "## 2. Training",
        "",
        layer_line,
        *train_lines,
        *warnings,
        "",
        f"![loss]({train_dir}/loss.png)",
        "",
        body,
    ]
    if several:
        lines += ["", "### Per seed", "", seeds_table(results["per_seed"]), ""]

    def stage_dir(stage: str, seed: int) -> str:
        return f"{stage}/seed-{seed}" if several else stage

    plots = [
        ("", "scan/layers.png", "scan: layer curves of the trained pairs (cosines, gaps, retrieval)"),
        ("train", "loss.png", "training loss with validation points"),
        *[("evaluate", name, what) for name, what in EVALUATE_PLOTS],
    ]
    lines += ["", "## 4. Plots", "", plot_index(seeds, stage_dir, plots), ""]
    return "\n".join(lines)
