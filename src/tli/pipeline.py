"""``tli run``: scan → choose the target layer → train (one adapter per seed) → evaluate → report.

One model load serves every stage. Layout of the run directory (one seed: no ``seed-<k>`` level)::

    OUT/results.json, OUT/report.md       the whole story: claims with corrected verdicts, across seeds
    OUT/scan/                             tli scan output on the trained pairs (layer curves, selected layer)
    OUT/train/seed-<k>/                   adapter/ (PEFT), checkpoints/, metrics.jsonl, loss.png
    OUT/evaluate/seed-<k>/                pairs.csv, before/after plots, claims of that seed
    OUT/evaluate/results.json             mean ± sd over seeds, claims that hold across seeds

The base model's embeddings of the trained pairs are computed once, by the scan, and reused by every
evaluation; control pairs stay unseen until evaluation.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from tli.adapter import read_adapter_meta
from tli.config import EvaluateConfig, RunConfig
from tli.errors import ConfigError
from tli.evaluate import EvaluationResult, SeedsSummary, groups_for, run_evaluation, seed_summary
from tli.io import atomic_write_json, atomic_write_text
from tli.lexicon import Lexicon, StudySplit, lexicon_record, split_for_study
from tli.models import LoadedModel, load_model, set_compute_dtype
from tli.placement import check_trainable_placement, placement_of
from tli.progress import stage
from tli.report import run_report, write_evaluate_run, write_scan_run, write_seeds_summary, write_train_run
from tli.runs import mark_complete, prepare_run_dir, provenance
from tli.scan import ScanResult, run_scan
from tli.threads import configure_threads
from tli.tracking import make_tracker
from tli.train import TrainResult, clear_training, run_training


def training_compute_dtype(config: RunConfig, loaded) -> torch.dtype | None:
    """NF4 models compute in bf16 while training (the published QLoRA setting) and fp32 otherwise."""
    if loaded.quantization != "nf4" or config.dtype != "auto":
        return None
    return torch.bfloat16


def _stage_dirs(out: Path, seed: int, *, several: bool):
    """stage → ``OUT/<stage>/seed-<k>`` with several seeds, ``OUT/<stage>`` with one."""
    return (lambda stage: out / stage / f"seed-{seed}") if several else (lambda stage: out / stage)


def run(
    model: str | None = None,
    lexicon: str | Path | Lexicon | None = None,
    *,
    out: str | Path,
    progress: bool | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The whole TLI study on one model and lexicon: scan, then per seed train and evaluate, then the report.

    Args:
        model: model spec; None = embedded SmolLM2-135M-Instruct.
        lexicon: word pairs; None = the shipped Swahili–English lexicon (its stored split is used).
        out: run directory.
        **options: any :class:`~tli.config.RunConfig` field (``seeds``, ``select_by``, ``target_layer``,
            ``epochs``, ``loss``, ``n_boot``, ``correction``, …).

    Returns:
        The top-level ``results.json`` content.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "tli run is one process: launch `torchrun --nproc_per_node N -m tli train ...` for data-parallel "
            "training, then `tli evaluate --adapter OUT/adapter`"
        )
    lexicon_path = str(Path(lexicon).resolve()) if isinstance(lexicon, (str, Path)) else None
    config = RunConfig(model=model, lexicon=lexicon_path, out=str(out), **options)
    configure_threads(config.threads)
    out = _prepare_out(out, config)
    seeds = config.seeds or [config.seed]
    study = split_for_study(
        lexicon, config.test_lexicon, control_fraction=config.control_fraction, split_seed=config.split_seed
    )
    loaded = _load_for_training(model, config)
    timing = {"load_seconds": loaded.load_seconds}

    # 1. Scan the trained pairs only (control pairs stay unseen until evaluation): where does the model
    #    align the two languages, by a criterion that survives the anisotropy artifact?
    base_cache: dict = {}
    scan_config = config.scan_config()
    scan = run_scan(loaded, study.trained, scan_config, progress=progress, cache=base_cache)
    scan.split = study.record()
    write_scan_run(out / "scan", scan, scan_config)
    timing["scan_seconds"] = scan.timing["scan_seconds"]
    layer = config.target_layer if config.target_layer is not None else scan.selected_layer

    # 2-3. For each seed: train at that layer on the trained pairs, then evaluate base vs adapted.
    per_seed: list[EvaluationResult] = []
    trained_runs: list[TrainResult] = []
    timing.update(train_seconds=0.0, evaluate_seconds=0.0, report_seconds=0.0)
    for seed in seeds:
        where = _stage_dirs(out, seed, several=len(seeds) > 1)
        trained = _train_seed(loaded, study, config, layer, seed, where("train"), progress)
        trained_runs.append(trained)
        timing["train_seconds"] += trained.timing["train_seconds"]
        evaluated = _evaluate_seed(
            loaded, trained, config, layer, seed, where("evaluate"), base_cache, timing, progress
        )
        per_seed.append(evaluated)
        loaded.model = loaded.model.unload()  # the base model again, for the next seed

    # 4. The whole story, over seeds.
    with stage("report over seeds" if len(seeds) > 1 else "report", enabled=progress):
        evaluation_summary = seed_summary(per_seed)
        if len(seeds) > 1:
            write_seeds_summary(
                out / "evaluate", {**evaluation_summary.to_dict(), **provenance("evaluate", {}, None)}
            )
        results = run_results(
            config, study, loaded, scan, layer, seeds, trained_runs, per_seed, evaluation_summary
        )
        results["timing"] = timing
        results.update(provenance("run", asdict(config), seeds[0]))
        atomic_write_text(out / "report.md", run_report(results, scan))
        atomic_write_json(out / "results.json", results)
        mark_complete(out, "run")
    if config.track:
        track_run(config, out, results)
    return results


def _prepare_out(out: str | Path, config: RunConfig) -> Path:
    """The run directory, ready: an unfinished run there is continued (``--resume``), started again
    (``--overwrite``: its training cleared) or refused."""
    out = prepare_run_dir(out, overwrite=config.overwrite or config.resume)
    if not config.resume and any((out / "train").glob("**/checkpoints")):
        if not config.overwrite:
            raise ConfigError(
                f"--out {out} already holds an unfinished run: pass --resume to continue it, --overwrite to start "
                "it again, or choose another --out"
            )
        clear_training(out / "train")
    return out


def _load_for_training(model: str | None, config: RunConfig) -> LoadedModel:
    """The model, loaded once for every stage; a model spread over devices must keep every block resident."""
    loaded = load_model(
        model,
        dtype=config.dtype,
        device=config.device,
        quantization=config.quantization or "none",
        trust_remote_code=config.trust_remote_code,
        **placement_of(config),
    )
    if getattr(loaded.model, "hf_device_map", None):  # a spread model: training needs every block resident
        check_trainable_placement(loaded.model.hf_device_map)
    return loaded


def _train_seed(
    loaded: LoadedModel,
    study: StudySplit,
    config: RunConfig,
    layer: int,
    seed: int,
    where: Path,
    progress: bool | None,
) -> TrainResult:
    """Train one seed's adapter at ``layer`` on the trained pairs and write its training run to ``where``
    (``loaded.model`` then holds the adapter)."""
    train_config = config.train_config(layer, seed)
    where.mkdir(parents=True, exist_ok=True)
    if (dtype := training_compute_dtype(config, loaded)) is not None:
        set_compute_dtype(loaded.model, dtype)
    trained = run_training(
        loaded,
        study.trained,
        train_config,
        where,
        resume=config.resume,
        progress=progress,
        control=study.control,
        split_record=study.record(),
    )
    set_compute_dtype(loaded.model, loaded.dtype)
    write_train_run(
        where,
        {
            **asdict(trained),
            "model": loaded.describe(),
            "lexicon": lexicon_record(study.trained),
            "split": study.record(),
            **provenance("train", asdict(train_config), seed),
        },
        train_config,
    )
    return trained


def _evaluate_seed(
    loaded: LoadedModel,
    trained: TrainResult,
    config: RunConfig,
    layer: int,
    seed: int,
    where: Path,
    base_cache: dict,
    timing: dict[str, float],
    progress: bool | None,
) -> EvaluationResult:
    """Evaluate one seed's adapter (base vs adapted, trained vs control) and write its evaluation run to
    ``where``; the evaluation and report seconds are added to ``timing``."""
    train_config = config.train_config(layer, seed)
    meta = read_adapter_meta(trained.adapter)
    eval_config = EvaluateConfig(
        adapter=[trained.adapter],
        batch_size=config.embed_batch_size,
        n_boot=config.n_boot,
        alpha=config.alpha,
        correction=config.correction,
        equivalence_margin=config.equivalence_margin,
        seed=seed,
    )
    grouped, split = groups_for(trained.adapter, meta, None)
    start = time.perf_counter()
    results, embeddings = run_evaluation(
        loaded, grouped, meta, eval_config, base_cache=base_cache, progress=progress
    )
    timing["evaluate_seconds"] += time.perf_counter() - start
    results.record_run(
        provenance("evaluate", asdict(eval_config), seed),
        seed=seed,
        split=split,
        model=loaded.describe(),
        lexicon=lexicon_record(grouped),
        adapter={"path": trained.adapter, "trained_with": asdict(train_config)},
    )
    start = time.perf_counter()
    with stage(f"report and plots (seed {seed})", enabled=progress):
        write_evaluate_run(where, results.to_dict(), embeddings)
    timing["report_seconds"] += time.perf_counter() - start
    return results


def run_results(
    config: RunConfig,
    study: StudySplit,
    loaded: LoadedModel,
    scan: ScanResult,
    layer: int,
    seeds: list[int],
    trained_runs: list[TrainResult],
    per_seed: list[EvaluationResult],
    evaluation_summary: SeedsSummary,
) -> dict[str, Any]:
    """The top-level ``results.json`` of ``tli run`` (without ``timing`` and provenance, which the caller adds
    last): the scan's choice, every seed's training, the evaluation over seeds and every warning once."""
    first = per_seed[0]
    return {
        "selected_layer": scan.selected_layer,
        "criterion": scan.criterion,
        "target_layer": layer,
        "target_layer_given": config.target_layer is not None,
        "final_layer": first.final_layer,
        "layer_roles": first.layer_roles,
        "seeds": seeds,
        "scan": {
            "layers": scan.layers,
            "artifact_layers": scan.artifact_layers,
            "published_choice": scan.published_choice,
            "selectable_layers": scan.selectable_layers,
            "best_overall": scan.best_overall,
            "chance_p_at_1": scan.chance_p_at_1,
        },
        "train": [asdict(r) for r in trained_runs],
        "train_config": asdict(config.train_config(layer, seeds[0])),
        "evaluation": evaluation_summary.evaluation,
        "claims": evaluation_summary.claims,
        "bli": evaluation_summary.bli,
        "per_seed": evaluation_summary.per_seed,
        "statistics": first.statistics,
        "pooling": first.pooling,
        "model": loaded.describe(),
        "lexicon": lexicon_record(study.lexicon)
        | {"n_trained": len(study.trained), "n_control": len(study.control)},
        "split": study.record(),
        "skipped_groups": first.skipped_groups,
        "warnings": list(
            dict.fromkeys(
                scan.warnings
                + [w for r in trained_runs for w in r.warnings]
                + [w for r in per_seed for w in r.warnings]
            )
        ),
    }


def track_run(config: RunConfig, out: Path, results: dict[str, Any]) -> None:
    """Log the run to MLflow or TensorBoard: its config, each claim's effect and adjusted p, the files."""
    name = f"tli-run-{Path(out).name}"
    tracker = make_tracker(config.track, out, name, asdict(config), config.tracking_uri)
    metrics = {"target_layer": float(results["target_layer"])}
    for i, claim in enumerate(results["claims"]):
        key = (
            f"claim{i:02d}.{claim['kind']}.{claim['metric']}.{claim.get('group') or ''}.{claim['layer_role']}"
        )
        key = key.replace(" ", "_").replace("−", "minus").replace("=", "eq")
        metrics[f"{key}.effect"] = claim["effect"]
        if claim["p_adjusted"] is not None and math.isfinite(claim["p_adjusted"]):
            metrics[f"{key}.p_adjusted"] = claim["p_adjusted"]
        metrics[f"{key}.supported"] = float(claim["verdict"] == "supported")
    try:
        tracker.log_results(metrics, [out / "report.md", out / "results.json", out / "scan" / "layers.png"])
    finally:
        tracker.close()
