"""Evaluation of a TLI adapter: base vs adapted, trained vs control pairs, target vs final layer.

One model load serves both sides: the adapter stays unmerged (merging LoRA into 4-bit weights adds
rounding error) and the base model is the same network with the adapter disabled. Every string is embedded
at every layer before and after, so the layer curves come for free.

For each group (``trained``, ``control``) and layer (``target``, ``final``) three paired comparisons are
made, each with t-test, Wilcoxon, bootstrap CI and Cohen's d (:func:`tli.stats.paired_stats`):

- ``similarity``: per pair, ``cos(s_k, t_k)`` — the published statistic;
- ``gap``: per pair, ``cos(s_k, t_k) − mean_{j ∉ gold(s_k)} cos(s_k, t_j)`` — similarity beyond what any
  word gets; a change that lifts every pair alike leaves it unchanged;
- ``reciprocal rank``: per source word, ``1 / rank`` of its best translation among all lexicon targets.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tli.embed import EmbedConfig
from tli.errors import ConfigError, ModelLoadError
from tli.lexicon import Lexicon
from tli.metrics import PairIndex, retrieval_ranks
from tli.models import LoadedModel, load_model
from tli.stats import paired_stats, verdict
from tli.train import ADAPTER_META

ALPHA = 0.05
GROUPS = ("trained", "control")


@dataclass
class EvaluateConfig:
    """Options of ``tli evaluate``; unset fields come from the adapter's ``tli_adapter.json``."""

    adapter: str
    """Adapter directory written by ``tli train`` (``RUN/adapter``)."""
    model: str | None = None
    """Base model; None = the one recorded with the adapter."""
    lexicon: str | None = None
    """Word pairs; None = the lexicon recorded with the adapter (or the shipped one)."""
    batch_size: int = 32
    n_boot: int = 10_000
    """Bootstrap resamples for the 95 % confidence intervals."""
    seed: int = 0
    dtype: str = "auto"
    device: str = "auto"
    quantization: str | None = None
    """None = the quantization used in training."""


def read_adapter_meta(adapter: str | Path) -> dict[str, Any]:
    """The ``tli_adapter.json`` written next to a tli adapter."""
    path = Path(adapter) / ADAPTER_META
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise ModelLoadError(
            f"--adapter {adapter}: no adapter_config.json (expected RUN/adapter of tli train)"
        )
    if not path.is_file():
        raise ModelLoadError(
            f"--adapter {adapter}: no {ADAPTER_META}; it was not written by tli train, so the target layer "
            "and pooling are unknown"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def check_same_base(meta: dict[str, Any], loaded: LoadedModel, adapter: str) -> None:
    """An adapter only means something on the base model it was trained on."""
    trained_on = meta["base_model"]
    if trained_on.get("fingerprint", {}).get("sha256") != loaded.fingerprint.get("sha256"):
        raise ModelLoadError(
            f"adapter {adapter} was trained on base model {trained_on['name']!r} "
            f"(sha256 {trained_on.get('fingerprint', {}).get('sha256', '?')[:12]}), not on {loaded.name!r} "
            f"(sha256 {loaded.fingerprint.get('sha256', '?')[:12]}): pass --model {trained_on['name']}"
        )


def load_adapted(
    adapter: str | Path,
    meta: dict[str, Any],
    model: str | None = None,
    *,
    dtype: str = "auto",
    device: str = "auto",
    quantization: str | None = None,
) -> LoadedModel:
    """The adapter's base model (``model`` or the recorded one), checked by fingerprint, with the adapter
    attached unmerged; quantization defaults to the one used in training."""
    from tli.models import attach_adapter

    loaded = load_model(
        model if model is not None else meta["base_model"]["name"],
        dtype=dtype,
        device=device,
        quantization=quantization or meta["config"].get("quantization", "none"),
    )
    check_same_base(meta, loaded, str(adapter))
    loaded.model, loaded.adapter = attach_adapter(loaded.model, adapter), str(adapter)
    return loaded


@dataclass
class Side:
    """Embeddings of one model state: ``(layers, n_src, H)`` and ``(layers, n_tgt, H)``."""

    src: torch.Tensor
    tgt: torch.Tensor


def embed_both(loaded: LoadedModel, lexicon: Lexicon, config: EmbedConfig) -> tuple[Side, Side, PairIndex]:
    """Every-layer embeddings of the lexicon with the adapter disabled (base) and enabled (adapted)."""
    from tli.scan import embed_lexicon

    loaded.model.eval()
    with loaded.model.disable_adapter():
        src, tgt, index = embed_lexicon(lexicon, loaded, config)
    base = Side(src, tgt)
    src, tgt, _ = embed_lexicon(lexicon, loaded, config)
    return base, Side(src, tgt), index


def group_measures(side: Side, layer: int, index: PairIndex, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pair similarity and gap, and per-query reciprocal rank, for the pairs ``rows`` at ``layer``."""
    sim = side.src[layer] @ side.tgt[layer].T  # (n_src, n_tgt)
    gold = index.gold()
    src_rows = index.src[rows]
    pair_sim = sim[src_rows, index.tgt[rows]]
    wrong = ~gold[src_rows]  # (n_rows, n_tgt)
    mismatched_per_pair = (sim[src_rows] * wrong).sum(1) / wrong.sum(1).clamp_min(1)
    queries = torch.unique(src_rows)
    ranks = retrieval_ranks(sim[queries], gold[queries])
    q_wrong = ~gold[queries]
    return {
        "similarity": pair_sim.numpy(),
        "gap": (pair_sim - mismatched_per_pair).numpy(),
        "reciprocal_rank": (1.0 / ranks.float()).numpy(),
        "mismatched_mean": float(sim[queries][q_wrong].mean()),
        "p_at_1": float((ranks == 1).float().mean()),
    }


def compare(pre: dict, post: dict, group: str, layer: int, role: str, n_boot: int, seed: int):
    """The evaluation entry for one (group, layer) and its three claims."""
    sim = paired_stats(pre["similarity"], post["similarity"], n_boot=n_boot, rng=seed)
    gap = paired_stats(pre["gap"], post["gap"], n_boot=n_boot, rng=seed)
    rr = paired_stats(pre["reciprocal_rank"], post["reciprocal_rank"], n_boot=n_boot, rng=seed)
    entry = {
        "group": group,
        "layer": layer,
        "layer_role": role,
        **sim.to_dict(),
        "mismatched_pre": pre["mismatched_mean"],
        "mismatched_post": post["mismatched_mean"],
        "gap_pre": gap.mean_pre,
        "gap_post": gap.mean_post,
        "gap_change": gap.change,
        "gap_ci95_low": gap.ci95_low,
        "gap_ci95_high": gap.ci95_high,
        "p_gap": gap.p_ttest,
        "p_at_1_pre": pre["p_at_1"],
        "p_at_1_post": post["p_at_1"],
        "mrr_pre": rr.mean_pre,
        "mrr_post": rr.mean_post,
        "mrr_ci95_low": rr.ci95_low,
        "mrr_ci95_high": rr.ci95_high,
        "p_mrr": rr.p_ttest,
        "n_queries": rr.n,
    }
    where = f"{group} pairs at the {role} layer ({layer})"
    claims = [
        _claim(f"TLI raises similarity of {where}", "similarity", sim, group, layer, role),
        _claim(f"TLI raises the matched − mismatched gap of {where}", "gap", gap, group, layer, role),
        _claim(f"TLI improves translation retrieval (MRR) of {where}", "mrr", rr, group, layer, role),
    ]
    return entry, claims


def _claim(text: str, metric: str, stats, group: str, layer: int, role: str) -> dict[str, Any]:
    return {
        "claim": text,
        "metric": metric,
        "group": group,
        "layer": layer,
        "layer_role": role,
        "effect": stats.change,
        "ci95_low": stats.ci95_low,
        "ci95_high": stats.ci95_high,
        "p": stats.p_ttest,
        "cohens_d": stats.cohens_d,
        "n": stats.n,
        "verdict": verdict(stats.ci95_low, stats.ci95_high, stats.p_ttest, alpha=ALPHA),
    }


def layer_curves(side: Side, index: PairIndex) -> list[dict]:
    """Scan figures at every layer for one model state (see :func:`tli.scan.per_layer_metrics`)."""
    from tli.scan import per_layer_metrics

    return per_layer_metrics(side.src, side.tgt, index)


def run_evaluation(
    loaded: LoadedModel, lexicon: Lexicon, meta: dict[str, Any], config: EvaluateConfig
) -> dict[str, Any]:
    """Every figure of the evaluation (no file output)."""
    train_config = meta["config"]
    target_layer = int(meta["target_layer"])
    final_layer = loaded.num_layers
    if target_layer > final_layer:
        raise ConfigError(f"adapter target layer {target_layer} is beyond this model ({final_layer} blocks)")
    embed = meta["embed"]
    embed_config = EmbedConfig(
        pooling=embed["pooling"],
        center=embed.get("center", False),
        template=embed.get("template"),
        add_bos=embed.get("add_bos", "auto"),
        batch_size=config.batch_size,
    )
    if not lexicon.has_split():  # the same seeded split training used
        lexicon = lexicon.with_split(train_config["control_fraction"], train_config["split_seed"])
    start = time.perf_counter()
    base, adapted, index = embed_both(loaded, lexicon, embed_config)
    groups = np.array([p.group for p in lexicon])

    evaluation, claims, per_pair = [], [], []
    skipped = []
    for group in GROUPS:
        rows = np.flatnonzero(groups == group)
        if len(rows) < 2:  # a paired test needs at least two pairs
            skipped.append({"group": group, "n": int(len(rows))})
            continue
        for role, layer in (("target", target_layer), ("final", final_layer)):
            pre = group_measures(base, layer, index, rows)
            post = group_measures(adapted, layer, index, rows)
            entry, entry_claims = compare(pre, post, group, layer, role, config.n_boot, config.seed)
            evaluation.append(entry)
            claims.extend(entry_claims)
            for k, row in enumerate(rows):
                pair = lexicon.pairs[row]
                per_pair.append(
                    {
                        "source": pair.source,
                        "target": pair.target,
                        "group": group,
                        "layer": layer,
                        "layer_role": role,
                        "sim_pre": float(pre["similarity"][k]),
                        "sim_post": float(post["similarity"][k]),
                        "gap_pre": float(pre["gap"][k]),
                        "gap_post": float(post["gap"][k]),
                    }
                )
    return {
        "target_layer": target_layer,
        "final_layer": final_layer,
        "evaluation": evaluation,
        "claims": claims,
        "per_pair": per_pair,
        "skipped_groups": skipped,
        "layers_pre": layer_curves(base, index),
        "layers_post": layer_curves(adapted, index),
        "pooling": embed_config.describe(),
        "timing": {"load_seconds": loaded.load_seconds, "evaluate_seconds": time.perf_counter() - start},
        "_embeddings": {"base": base, "adapted": adapted, "index": index, "lexicon": lexicon},
    }


def evaluate(
    adapter: str | Path,
    *,
    model: str | LoadedModel | None = None,
    lexicon: str | Path | Lexicon | None = None,
    out: str | Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate a TLI adapter against its base model and write the run directory.

    Writes ``results.json`` (``evaluation`` entries per group and layer, ``claims`` with verdicts),
    ``pairs.csv`` (per pair: source, target, group, layer, sim_pre, sim_post, gap_pre, gap_post),
    ``report.md`` and plots.

    Args:
        adapter: ``RUN/adapter`` of ``tli train``.
        model: base model spec or a loaded model with this adapter attached; None = recorded base model.
        lexicon: word pairs; None = the training lexicon recorded with the adapter.
        out: run directory (nothing is written when None).
        **options: other :class:`EvaluateConfig` fields.
    """
    from tli.report import write_evaluate_run
    from tli.runs import check_writable, provenance
    from tli.scan import lexicon_record, resolve_lexicon

    config = EvaluateConfig(
        adapter=str(adapter), model=None if isinstance(model, LoadedModel) else model, **options
    )
    meta = read_adapter_meta(adapter)
    if out is not None:
        check_writable(out)
    train_config = meta["config"]
    lexicon_source = lexicon if lexicon is not None else train_config.get("lexicon")
    lex = resolve_lexicon(lexicon_source)
    if isinstance(model, LoadedModel):
        loaded = model
    else:
        loaded = load_adapted(
            adapter, meta, model, dtype=config.dtype, device=config.device, quantization=config.quantization
        )
    results = run_evaluation(loaded, lex, meta, config)
    results["model"] = loaded.describe()
    results["lexicon"] = lexicon_record(lex)
    results["adapter"] = {"path": str(adapter), "trained_with": train_config}
    results.update(provenance("evaluate", asdict(config), config.seed))
    if out is not None:
        write_evaluate_run(Path(out), results)
    return results
