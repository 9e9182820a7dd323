"""``report.md`` of ``tli compare``: score tables per model, comparisons, research claims, cost, a plot."""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from tli.compare.power import format_power
from tli.compare.questions import PRIMARY_METRIC
from tli.compare.schema import FusionSpec, system_names
from tli.io import atomic_write_bytes
from tli.retrieval.ranking_metrics import METRICS
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


def _row_name(cell: dict[str, Any]) -> str:
    """A cell's row in the score tables: its retrieval system, else its strategy."""
    return cell.get("system") or cell["strategy"]


def score_tables(
    cells: list[dict[str, Any]], strategies: list[str], models: list[str], systems: list[str] | None = None
) -> list[str]:
    """Per (task, language, metric): strategies (or retrieval systems) as rows, one column per model (mean
    ± sd over seeds). A cell without a model (BM25) fills every model's column."""
    grouped: dict[tuple, list[dict]] = defaultdict(list)
    columns = _columns(cells, models)
    for c in cells:
        if c["status"] != "done" or (systems is not None and c.get("system")):
            continue  # retrieval cells have their own tables (retrieval_tables)
        for metric, value in c["metrics"].items():
            for model in [c["model"]] if c.get("model") is not None else columns:
                grouped[(c["task"], c["language"], metric, _row_name(c), model)].append(value)
    lines = []
    keys = sorted({(t, lang, m) for t, lang, m, _, _ in grouped})
    for task, language, metric in keys:
        rows = [
            r
            for r in dict.fromkeys(list(systems or []) + strategies)
            if any((task, language, metric, r, m) in grouped for m in columns)
        ]
        rows += sorted(
            {r for t, lang, m, r, _ in grouped if (t, lang, m) == (task, language, metric)} - set(rows)
        )
        label = "system" if any(r.startswith(("dense:", "bm25", "fusion:")) for r in rows) else "strategy"
        lines += [f"**{task} ({language}) — {metric}** ({score_interval(task, metric)})", ""]
        lines += [f"| {label} | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        for row in rows:
            values = [_score(grouped.get((task, language, metric, row, model), [])) for model in columns]
            lines.append(f"| {row} | " + " | ".join(values) + " |")
        signatures = sorted(
            {v.get("signature") for (t, lang, m, _, _), vs in grouped.items() for v in vs if (t, lang, m) ==
             (task, language, metric) and v.get("signature")}
        )  # fmt: skip
        if signatures:
            lines += ["", f"sacrebleu signature: `{'`, `'.join(signatures)}`"]
        lines.append("")
    return lines


def score_interval(task: str, metric: str) -> str:
    """What a score table's interval is: one seed's 95 % CI over examples (its method), or ± sd over seeds."""
    method = (
        "exact Clopper–Pearson"
        if (task, metric) == ("xnli", "accuracy")
        else "percentile bootstrap over examples"
    )
    return f"one seed: score [95 % CI, {method}]; several seeds: mean ± sd over seeds"


def comparisons_table(rows: list[dict[str, Any]]) -> str:
    """Every comparison over seeds: its family, test, difference with the interval its ``interval`` names, p and
    adjusted p (within the family) and verdict."""
    lines = [
        "| family | model | task | metric | strategy − compared with | difference [95 % CI: paired bootstrap over "
        "examples (one seed) or across-seed random effects (several)] | test | p | p adjusted | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sd = f" ± {r['difference_sd']:.4f}" if r.get("n_seeds", 1) > 1 else ""
        kind = r.get("kind", "difference")
        pair = f"{r['strategy']} − {r['reference']}"
        if kind == "non-inferiority":
            pair += f" (non-inferiority, margin {r['margin']:g})"
        elif kind == "interaction":
            pair += f" ({r['model']} vs {r['other_model']})"
        verdict = f"**{r['verdict']}**" + (f" ({r['note']})" if r.get("note") else "")
        lines.append(
            f"| {r.get('family', '—')} | {r['model']} | {r['task']} ({r['language']}) | {r['metric']} | {pair} "
            f"| {r['difference']:+.4f}{sd} [{r['ci95_low']:+.4f}, {r['ci95_high']:+.4f}] | {_short_test(r)} "
            f"| {format_p(r['p_value'])} | {format_p(r['p_adjusted'])} | {verdict} |"
        )
    return "\n".join(lines)


def _short_test(row: dict[str, Any]) -> str:
    test = str(row.get("test", ""))
    return test.split(" over ", 1)[0] + " + per-seed tests" if row.get("n_seeds", 1) > 1 else test


def answers_table(answers: list[dict[str, Any]]) -> str:
    """One row per research question: its overall answer and the claim counts behind it."""
    lines = [
        "| research question | answer | claims: supported / contradicted / inconclusive | note |",
        "|---|---|---|---|",
    ]
    for a in answers:
        counts = f"{a['supported']} / {a['contradicted']} / {a['inconclusive']}" if a["claims"] else "—"
        note = a.get("reason") or "; ".join(filter(None, [a.get("note"), a.get("across_models")]))
        lines.append(f"| {a['question']} | **{a['answer']}** | {counts} | {note} |")
    return "\n".join(lines)


def claims_table(claims: list[dict[str, Any]]) -> str:
    lines = [
        "| research question | claim | difference [95 % CI] | p adjusted (family) | verdict | n | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in claims:
        if c["verdict"] == "not measured":
            lines.append(
                f"| {c['question']} | not measured: {c['reason']} | — | — | **not measured** | 0 | — |"
            )
            continue
        lines.append(
            f"| {c['question']} | {c['claim']} | {c['difference']:+.4f} [{c['ci95_low']:+.4f}, {c['ci95_high']:+.4f}] "
            f"| {format_p(c['p_adjusted'])} | **{c['verdict']}** | {c['n']} | {c.get('n_seeds', 1)} |"
        )
    return "\n".join(lines)


def families_table(families: list[dict[str, Any]]) -> str:
    """Each family: size, correction, tests, and the smallest adjusted p its tests could reach here."""
    lines = [
        "| family | hypotheses | correction | tests | smallest adjusted p reachable | can reach alpha |",
        "|---|---|---|---|---|---|",
    ]
    for f in families:
        floor = f["smallest_adjusted_p"]
        lines.append(
            f"| {f['name']} | {f['hypotheses']} | {f['correction']} | {'; '.join(f['tests'])} "
            f"| {'0 (no floor)' if floor == 0 else format_p(floor)} | {'yes' if f['can_reach_alpha'] else '**no**'} |"
        )
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
        system = c.get("system") or ""
        if system.startswith("fusion:"):
            continue  # a fusion costs its dense part plus a sort
        name = c["strategy"] if c["strategy"] is not None else system
        key = (c["model"], name, c["seed"])
        if c["status"] != "done" or key in seen:
            continue
        seen.add(key)
        cost = c["cost"]
        peak = cost.get("peak_memory_mb")
        model = c["model"] if c["model"] is not None else "—"
        seed = c["seed"] if c["seed"] is not None else "—"
        lines.append(
            f"| {model} | {name} | {seed} | {cost['trainable_parameters']:,} "
            f"| {cost['train_seconds']:.1f} | {peak:.0f} | {cost['tokens_seen']:,} | {cost['steps']} |"
            if peak is not None
            else f"| {model} | {name} | {seed} | — | — | — | — | — |"
        )
    return "\n".join(lines)


def plot_score_vs_cost(
    cells: list[dict[str, Any]], path: Path, *, x: str = "trainable_parameters"
) -> Path | None:
    """Each strategy's primary score (with its 95 % CI) against its cost, one panel per (task, language)."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(c["task"], c["language"]) for c in cells if c["status"] == "done"})
    if not panels:
        return None
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False, layout="constrained"
    )
    strategies = sorted({_row_name(c) for c in cells})
    colours = {s: f"C{i % 10}" for i, s in enumerate(strategies)}
    for ax, (task, language) in zip(axes[0], panels, strict=True):
        metric = PRIMARY_METRIC.get(task) or _first_metric(cells, task)
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
                color=colours[_row_name(c)],
                capsize=3,
                label=_row_name(c),
            )
            ax.annotate(
                _row_name(c), (cost, value["score"]), textcoords="offset points", xytext=(5, 4), fontsize=8
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
        f"{budget['lr']}, {budget['warmup_steps']} warm-up steps, on "
        f"{experiment['train'] or 'no task (zero-shot only)'}",
        "- comparisons, per seed, paired on the examples: exact McNemar for 0/1 scores (XNLI accuracy), exact "
        "sign-flip enumeration for ≤ 20 non-zero differences, paired t-test for ≥ 30 (bounded scores, CLT), "
        f"approximate randomisation for corpus metrics (BLEU, chrF, macro-F1; ≥ {experiment['n_resamples']} and "
        "≥ 20·m/alpha resamples); 95 % paired-bootstrap CI of the difference"
        + (
            "; seeds combined by a random-effects meta-analysis (DerSimonian–Laird between-seed variance, "
            f"modified Hartung–Knapp t interval on {len(experiment['seeds']) - 1} df), so CIs and p include "
            "training variance"
            if len(experiment["seeds"]) > 1
            else ""
        ),
        f"- families: each research question (its primary metric × pairs × task-languages × models), and one "
        f"exploratory family for everything else; p adjusted by {experiment['correction']} within each family; "
        f"verdicts at alpha {experiment['alpha']} (*supported* = the first strategy scores higher, *contradicted* "
        '= lower, *inconclusive* otherwise; non-inferiority ("preserves"): *supported* = not worse than the '
        f"zero-shot base by more than {experiment.get('noninferiority_margin', 0.01):g}, *contradicted* = worse "
        "by more)",
        f"- cells: {sum(c['status'] == 'done' for c in cells)} done, {len(failed)} failed",
        "",
        "## Research questions",
        "",
        answers_table(results.get("answers", [])),
        "",
        "Each question's answer is *supported* when every claim of its family is supported, *contradicted* when "
        "every one is contradicted, *partly supported* / *partly contradicted* when some are and none goes the "
        "other way, *mixed* when both occur, *inconclusive* when none is decided.",
        "",
        claims_table(results["claims"]),
        "",
        *families_section(results),
        "## Scores",
        "",
        *score_tables(cells, experiment["strategies"], experiment["models"], _systems(results)),
        *retrieval_tables(cells, experiment["models"], _systems(results)),
        *xnli_split_note(experiment),
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
        *retrieval_section(results),
    ]
    if failed:
        lines += ["## Failed cells", ""] + [
            f"- {c['model']} / {c['strategy']} / {c['task']} ({c['language']}) / seed {c['seed']}: {c['error']}"
            for c in failed
        ]
    return "\n".join(lines)


def xnli_split_note(experiment: dict[str, Any]) -> list[str]:
    """Which XNLI split was scored, and why it matters for published lm-evaluation-harness figures."""
    xnli = (experiment.get("tasks") or {}).get("xnli")
    if not xnli:
        return []
    split = xnli.get("split", "test")
    return [
        f"XNLI was scored on the **{split}** split. lm-evaluation-harness's `xnli_<lang>` tasks score the "
        "validation split"
        + (
            ", so these figures are not comparable with the harness's published numbers (set `split: validation` "
            "for that)."
            if split != "validation"
            else ", as here: these figures are comparable with the harness's."
        ),
        "",
    ]


def families_section(results: dict[str, Any]) -> list[str]:
    """The families and what this run's tests could detect (floors, MDEs)."""
    lines = ["## Families and power", "", families_table(results.get("families", [])), ""]
    alpha = results["experiment"]["alpha"]
    blocked = [f["name"] for f in results.get("families", []) if not f["can_reach_alpha"]]
    if blocked:
        lines += [
            f"No verdict was reachable in {', '.join(blocked)}: the smallest adjusted p its tests can give on these "
            f"examples is at or above alpha {alpha}, whatever the data.",
            "",
        ]
    if results.get("power"):
        lines += [format_power(results["power"]), ""]
    return lines


def _systems(results: dict[str, Any]) -> list[str]:
    """Retrieval systems in report order (BM25, dense strategies, conditions, fusions), then any other."""
    present = {c["system"] for c in results["cells"] if c.get("system")}
    if not present:
        return []
    record = results["experiment"].get("retrieval") or {}
    dense = record.get("dense_retriever") or {}
    ordered = system_names(
        tuple(record.get("systems", ())),
        tuple(dense.get("conditions", ())),
        FusionSpec(**(record.get("fusion") or {})),
        results["experiment"]["strategies"],
    )
    return [s for s in ordered if s in present] + sorted(present - set(ordered))


def _columns(cells: list[dict[str, Any]], models: list[str]) -> list[str]:
    """The experiment's models, then any other model a cell names (a dense-retriever encoder directory)."""
    columns = list(models)
    for c in cells:
        if c["status"] == "done" and c.get("model") is not None and c["model"] not in columns:
            columns.append(c["model"])
    return columns


def _first_metric(cells: list[dict[str, Any]], task: str) -> str | None:
    """The primary metric of a task without a fixed one (a harness task): ``acc`` when its cells have it,
    else their first metric."""
    metrics = next((list(c["metrics"]) for c in cells if c["task"] == task and c["metrics"]), [])
    return ("acc" if "acc" in metrics else metrics[0]) if metrics else None


def retrieval_tables(cells: list[dict[str, Any]], models: list[str], systems: list[str]) -> list[str]:
    """Per (task, language) and model: systems as rows, every retrieval metric as a column (mean over seeds;
    ± sd over seeds when several), the primary metric with its 95 % CI. BM25 (no model) is in every table."""
    done = [c for c in cells if c["status"] == "done" and c.get("system")]
    lines: list[str] = []
    for task, language in sorted({(c["task"], c["language"]) for c in done}):
        primary = PRIMARY_METRIC.get(task, METRICS[0])
        for model in _columns(done, models):
            group = [
                c
                for c in done
                if (c["task"], c["language"]) == (task, language) and c["model"] in (model, None)
            ]
            if all(c["model"] is None for c in group):
                continue
            passages = max(int((c.get("details") or {}).get("data", {}).get("passages", 0)) for c in group)
            flagged = uninformative_cutoffs(METRICS, passages)
            lines += [
                f"**{task} ({language}), {model}** — {primary} [95 % percentile-bootstrap CI over queries; ± sd over "
                "seeds when several], then every metric (mean over seeds)",
                "",
            ]
            lines += [
                f"| system | {primary} | "
                + " | ".join(m + ("†" if m in flagged else "") for m in METRICS)
                + " |",
                "|---|---|" + "---|" * len(METRICS),
            ]
            for system in [s for s in systems if any(c["system"] == s for c in group)]:
                values = [c["metrics"] for c in group if c["system"] == system]
                head = _score([v[primary] for v in values])
                rest = []
                for metric in METRICS:
                    scores = np.array([v[metric]["score"] for v in values])
                    spread = f" ± {scores.std(ddof=1):.3f}" if len(scores) > 1 else ""
                    rest.append(f"{scores.mean():.3f}{spread}")
                lines.append(f"| {system} | {head} | " + " | ".join(rest) + " |")
            if flagged:
                lines += [
                    "",
                    f"† cut-off ≥ the corpus size ({passages} passages): uninformative — recall at that cut-off is 1 "
                    "for every system that ranks the whole corpus, and MRR / nDCG there are their values without a "
                    "cut-off.",
                ]
            lines.append("")
    return lines


def uninformative_cutoffs(metrics, passages: int) -> list[str]:
    """The ``name@k`` metrics whose cut-off ``k`` is at least the corpus size (nothing is cut off)."""
    flagged = []
    for metric in metrics:
        _, _, cutoff = metric.partition("@")
        if passages and cutoff.isdigit() and int(cutoff) >= passages:
            flagged.append(metric)
    return flagged


def layer_curves(cells: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, dict[int, float]]]:
    """``{(task, language): {"<system> (<model>, seed k)": {layer: MRR@10}}}`` from the dense cells."""
    curves: dict[tuple[str, str], dict[str, dict[int, float]]] = defaultdict(dict)
    for c in cells:
        curve = (c.get("details") or {}).get("layer_curve") if c["status"] == "done" else None
        if curve:
            label = f"{c['system']} ({Path(str(c['model'])).name}, seed {c['seed']})"
            curves[(c["task"], c["language"])][label] = {int(k): v for k, v in curve.items()}
    return curves


def plot_layer_curves(cells: list[dict[str, Any]], path: Path) -> Path | None:
    """MRR@10 per layer of every dense strategy cell, one panel per (task, language)."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = layer_curves(cells)
    if not curves:
        return None
    panels = sorted(curves)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.5 * len(panels), 4.0), squeeze=False, layout="constrained"
    )
    for ax, key in zip(axes[0], panels, strict=True):
        for label, curve in sorted(curves[key].items()):
            layers = sorted(curve)
            ax.plot(layers, [curve[k] for k in layers], marker="o", markersize=3, label=label)
        ax.set_xlabel("hidden-state index (0 = input embeddings)")
        ax.set_ylabel("MRR@10")
        ax.set_title(f"{key[0]} ({key[1]}): where retrieval lives")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def retrieval_section(results: dict[str, Any]) -> list[str]:
    """The report's retrieval section: files, per-layer curves, unscored passages, baselines, synthetic
    data."""
    cells = [c for c in results["cells"] if c.get("system") and c["status"] == "done"]
    if not cells:
        return []
    lines = [
        "## Retrieval",
        "",
        "Every retrieval cell wrote its TREC run (`run.trec`) and qrels (`qrels.trec`) beside `cell.json`: "
        "`trec_eval -m recip_rank -m recall.1,5,10,100 -m ndcg_cut.10 qrels.trec run.trec` (or ranx, "
        "ir_measures) recomputes its figures. Runs are tie-free (ties broken by passage order for dense "
        "systems and BM25, by passage id for fusion). Systems: `bm25` (bm25s, the passage language's "
        "tokenisation), `dense:<strategy>` (the strategy's LLM, pooled hidden states), `dense:<condition>` "
        "(a trained bi-encoder), `fusion:bm25+<system>` (reciprocal rank fusion, ranx).",
        "",
    ]
    summary = results.get("retrieval") or {}
    return (
        lines
        + _layer_curve_tables(cells)
        + _unscored_passages(cells)
        + _published_baselines(summary)
        + _synthetic_pairs(summary)
    )


def _layer_curve_tables(cells: list[dict[str, Any]]) -> list[str]:
    """MRR@10 per layer of each (task, language), the layer each cell ranks with marked."""
    lines: list[str] = []
    curves = layer_curves(cells)
    for (task, language), by_label in sorted(curves.items()):
        layers = sorted({k for curve in by_label.values() for k in curve})
        lines += [
            f"**{task} ({language}) — MRR@10 per layer** (the layer the cell ranks with is marked *)",
            "",
        ]
        lines += ["| system | " + " | ".join(map(str, layers)) + " |", "|---|" + "---|" * len(layers)]
        chosen = {
            f"{c['system']} ({Path(str(c['model'])).name}, seed {c['seed']})": c["details"].get("layer")
            for c in cells
            if c["task"] == task and c["language"] == language
        }
        for label, curve in sorted(by_label.items()):
            values = [
                f"{curve[k]:.3f}{'*' if k == chosen.get(label) else ''}" if k in curve else "—"
                for k in layers
            ]
            lines.append(f"| {label} | " + " | ".join(values) + " |")
        lines.append("")
    if curves:
        lines += ["![MRR@10 per layer](retrieval_layers.png)", ""]
    return lines


def _unscored_passages(cells: list[dict[str, Any]]) -> list[str]:
    """Per (task, language): the passages no system can score, and each system's own unscored ones."""
    unscored = sorted(
        {
            (
                c["task"],
                c["language"],
                c["details"].get("data", {}).get("unscorable_passages", 0),
                c["details"].get("data", {}).get("passages", 0),
            )
            for c in cells
        }
    )
    lines = [
        "| task | queries × passages | passages no system can score (empty text) | system-specific |",
        "|---|---|---|---|",
    ]
    for task, language, empty, total in unscored:
        group = [c for c in cells if (c["task"], c["language"]) == (task, language)]
        queries = group[0]["n"]
        extra = sorted(
            {
                f"{c['system']}: {c['details'].get('passages_unscored', 0)} unscored"
                + (
                    f", {c['details']['passages_without_terms']} without index terms, "
                    f"{c['details']['queries_without_matching_terms']} queries without matching terms"
                    if c["system"] == "bm25"
                    else ""
                )
                for c in group
                if not c["system"].startswith("fusion:")
            }
        )
        lines.append(f"| {task} ({language}) | {queries} × {total} | {empty} | {'; '.join(extra)} |")
    lines.append("")
    return lines


def _published_baselines(summary: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for language, figures in (summary.get("published_mrr100") or {}).items():
        lines += [
            f"Published Mr. TyDi ({language}) test MRR@100 (full test set, Zhang et al. 2021): BM25 "
            f"{figures['bm25']:.3f}, zero-shot mDPR {figures['mdpr-zero-shot']:.3f} — comparable only on the "
            "real test set, not on a sample.",
            "",
        ]
    return lines


def _synthetic_pairs(summary: dict[str, Any]) -> list[str]:
    synthetic = summary.get("synthetic")
    if not synthetic:
        return []
    lines = [
        f"Synthetic training pairs: {synthetic['kept']} kept in `{synthetic['file']}` (with provenance; "
        "rejected candidates and reasons beside it).",
        "",
        "| method | generated | kept | rejected (reason: count) |",
        "|---|---|---|---|",
    ]
    for method, counts in (synthetic.get("counts") or {}).items():
        reasons = ", ".join(f"{k}: {v}" for k, v in counts.items() if k not in ("generated", "kept")) or "—"
        lines.append(f"| {method} | {counts.get('generated', 0)} | {counts.get('kept', 0)} | {reasons} |")
    lines.append("")
    return lines


def _finite(x: float) -> bool:
    return x is not None and math.isfinite(x)
