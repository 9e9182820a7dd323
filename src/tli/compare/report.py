"""``report.md`` of ``tli compare``: score tables per model, comparisons, research claims, cost, a plot."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from tli.compare.questions import PRIMARY_METRIC
from tli.io import atomic_write_bytes
from tli.stats import format_p


def _score(values: list[dict[str, float]]) -> str:
    """``0.312 [0.280, 0.344]`` for one seed, ``0.312 ± 0.011`` over several."""
    if not values:
        return "—"
    if len(values) == 1:
        v = values[0]
        return f"{v['score']:.3f} [{v['ci95_low']:.3f}, {v['ci95_high']:.3f}]"
    scores = np.array([v["score"] for v in values])
    return f"{scores.mean():.3f} ± {scores.std(ddof=1):.3f}"


def score_tables(cells: list[dict[str, Any]], strategies: list[str], models: list[str]) -> list[str]:
    """Per (task, language, metric): strategies as rows, one column per model (mean ± sd over seeds)."""
    grouped: dict[tuple, list[dict]] = defaultdict(list)
    for c in cells:
        if c["status"] != "done":
            continue
        for metric, value in c["metrics"].items():
            grouped[(c["task"], c["language"], metric, c["strategy"], c["model"])].append(value)
    lines = []
    keys = sorted({(t, lang, m) for t, lang, m, _, _ in grouped})
    for task, language, metric in keys:
        lines += [f"**{task} ({language}) — {metric}** (95 % CI; mean ± sd over seeds when several)", ""]
        lines += ["| strategy | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        for strategy in strategies:
            values = [_score(grouped.get((task, language, metric, strategy, model), [])) for model in models]
            lines.append(f"| {strategy} | " + " | ".join(values) + " |")
        lines.append("")
    return lines


def comparisons_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | task | metric | strategy − compared with | difference (95 % CI) | p | p adjusted | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sd = f" ± {r['difference_sd']:.4f}" if r.get("n_seeds", 1) > 1 else ""
        lines.append(
            f"| {r['model']} | {r['task']} ({r['language']}) | {r['metric']} | {r['strategy']} − {r['reference']} "
            f"| {r['difference']:+.4f}{sd} [{r['ci95_low']:+.4f}, {r['ci95_high']:+.4f}] | {format_p(r['p_value'])} "
            f"| {format_p(r['p_adjusted'])} | **{r['verdict']}** |"
        )
    return "\n".join(lines)


def claims_table(claims: list[dict[str, Any]]) -> str:
    lines = ["| research question | claim | verdict | n |", "|---|---|---|---|"]
    for c in claims:
        claim = c["claim"] if c["verdict"] != "not measured" else f"not measured: {c['reason']}"
        lines.append(f"| {c['question']} | {claim} | **{c['verdict']}** | {c['n']} |")
    return "\n".join(lines)


def cost_table(cells: list[dict[str, Any]]) -> str:
    seen, lines = (
        set(),
        [
            "| model | strategy | seed | trainable parameters | train s | peak memory MB | tokens seen | steps |",
            "|---|---|---|---|---|---|---|---|",
        ],
    )
    for c in cells:
        key = (c["model"], c["strategy"], c["seed"])
        if c["status"] != "done" or key in seen:
            continue
        seen.add(key)
        cost = c["cost"]
        peak = cost.get("peak_memory_mb")
        lines.append(
            f"| {c['model']} | {c['strategy']} | {c['seed']} | {cost['trainable_parameters']:,} "
            f"| {cost['train_seconds']:.1f} | {peak:.0f} | {cost['tokens_seen']:,} | {cost['steps']} |"
            if peak is not None
            else f"| {c['model']} | {c['strategy']} | {c['seed']} | — | — | — | — | — |"
        )
    return "\n".join(lines)


def plot_score_vs_cost(
    cells: list[dict[str, Any]], path: Path, *, x: str = "trainable_parameters"
) -> Path | None:
    """Each strategy's primary score (with its 95 % CI) against its cost, one panel per (task, language)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(c["task"], c["language"]) for c in cells if c["status"] == "done"})
    if not panels:
        return None
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False, layout="constrained"
    )
    strategies = sorted({c["strategy"] for c in cells})
    colours = {s: f"C{i}" for i, s in enumerate(strategies)}
    for ax, (task, language) in zip(axes[0], panels, strict=True):
        metric = PRIMARY_METRIC.get(task)
        for c in cells:
            if (
                c["status"] != "done"
                or (c["task"], c["language"]) != (task, language)
                or metric not in c["metrics"]
            ):
                continue
            value = c["metrics"][metric]
            cost = max(float(c["cost"].get(x) or 0), 1.0)
            ax.errorbar(
                cost,
                value["score"],
                yerr=[[value["score"] - value["ci95_low"]], [value["ci95_high"] - value["score"]]],
                fmt="o",
                color=colours[c["strategy"]],
                capsize=3,
                label=c["strategy"],
            )
            ax.annotate(
                c["strategy"], (cost, value["score"]), textcoords="offset points", xytext=(5, 4), fontsize=8
            )
        ax.set_xscale("log")
        ax.set_xlabel(
            {
                "trainable_parameters": "trainable parameters (log; none = 1)",
                "train_seconds": "train seconds",
            }[x]
        )
        ax.set_ylabel(f"{metric} (95 % CI)")
        ax.set_title(f"{task} ({language})")
        ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def compare_report(results: dict[str, Any]) -> str:
    """The whole ``report.md``."""
    experiment = results["experiment"]
    cells = results["cells"]
    failed = [c for c in cells if c["status"] == "failed"]
    budget = experiment["budget"]
    lines = [
        f"# tli compare — {experiment['name']}",
        "",
        experiment.get("description") or "",
        "",
        f"- models: {', '.join(experiment['models'])}; strategies: {', '.join(experiment['strategies'])}; seeds: "
        f"{', '.join(map(str, experiment['seeds']))}",
        f"- every fine-tuned strategy: {budget['steps']} steps of batch {budget['batch_size']}, AdamW lr "
        f"{budget['lr']}, {budget['warmup_steps']} warm-up steps, on {experiment['train'] or 'no task (zero-shot only)'}",
        f"- comparisons: paired approximate randomisation over the examples ({experiment['n_resamples']} "
        f"resamples), 95 % paired-bootstrap CI of the difference; p adjusted by {experiment['correction']} over the "
        f"run's comparisons; verdicts at alpha {experiment['alpha']} (*supported* = the first strategy scores "
        "higher, *contradicted* = lower, *inconclusive* otherwise; with several seeds, only a verdict every seed "
        "reaches)",
        f"- cells: {sum(c['status'] == 'done' for c in cells)} done, {len(failed)} failed",
        "",
        "## Research questions",
        "",
        claims_table(results["claims"]),
        "",
        "## Scores",
        "",
        *score_tables(cells, experiment["strategies"], experiment["models"]),
        "## Comparisons",
        "",
        comparisons_table(results["comparisons"]),
        "",
        "## Cost",
        "",
        cost_table(cells),
        "",
        "![score versus trainable parameters](score_vs_cost.png)",
        "",
    ]
    if failed:
        lines += ["## Failed cells", ""] + [
            f"- {c['model']} / {c['strategy']} / {c['task']} ({c['language']}) / seed {c['seed']}: {c['error']}"
            for c in failed
        ]
    return "\n".join(lines)


def _finite(x: float) -> bool:
    return x is not None and math.isfinite(x)
