"""``tli ablate``: train every objective variant with identical data, split, steps and seeds on one loaded model,
evaluate each (lexical controls, BLI of unseen words, downstream), and judge the questions (:mod:`.verdicts`).

Layout (resumable: a finished unit is never redone)::

    OUT/base.json                   the base model's downstream rows
    OUT/<variant>/seed-<k>.json     one unit: its evaluation figures, control-query ranks, downstream rows
    OUT/<variant>/seed-<k>/         that unit's training run (adapter, checkpoints, metrics)
    OUT/results.json, OUT/report.md the table and the verdicts
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from tli.ablate.bli_rows import control_query_ranks
from tli.ablate.downstream import downstream_rows
from tli.adapter import read_adapter_meta
from tli.config import EvaluateConfig, TrainConfig
from tli.evaluate import groups_for, run_evaluation
from tli.io import atomic_write_json
from tli.lexicon import split_for_study
from tli.models import base_causal_lm, load_model
from tli.objectives import VARIANTS, check_variants
from tli.threads import configure_threads
from tli.train import run_training

log = logging.getLogger(__name__)


def run_units(
    model: str | None,
    out: Path,
    variants: list[str],
    *,
    lexicon: str | Path | None = None,
    seeds: list[int],
    target_layer: int,
    epochs: int,
    downstream: bool = True,
    downstream_seeds: int | None = None,
    threads: int | None = None,
    progress: bool | None = False,
) -> dict[str, Any]:
    """Train and evaluate every (variant, seed) unit not yet done; returns ``{"base": ..., "units": ...}``.

    ``downstream_seeds``: score downstream only the adapters of the first that many seeds (None: every seed).
    """
    configure_threads(threads)
    variants = check_variants(variants)
    out.mkdir(parents=True, exist_ok=True)
    study = split_for_study(lexicon, None)  # None: the shipped lexicon, its stored split
    loaded = load_model(model)
    timing = {"load_seconds": loaded.load_seconds}
    base = _base_rows(loaded, out, downstream, timing)
    base_cache: dict = {}
    units: dict[str, dict[int, dict[str, Any]]] = {}
    for variant in variants:
        for seed in seeds:
            unit_file = out / variant / f"seed-{seed}.json"
            if unit_file.is_file():  # finished by an earlier run: never redone
                units.setdefault(variant, {})[seed] = json.loads(unit_file.read_text())
                continue
            start = time.perf_counter()
            config = TrainConfig(
                model=model,
                target_layer=target_layer,
                epochs=epochs,
                seed=seed,
                threads=threads,
                **VARIANTS[variant],
            )
            where = out / variant / f"seed-{seed}"
            record = _train_and_evaluate(loaded, study, variant, config, where, base_cache, progress)
            if downstream and (downstream_seeds is None or seed in seeds[:downstream_seeds]):
                record["downstream"] = downstream_rows(loaded)
            loaded.model = loaded.model.unload()  # the base model again for the next unit
            record["unit_seconds"] = time.perf_counter() - start
            atomic_write_json(unit_file, record)
            log.info("ablate: %s seed %d done in %.0f s", variant, seed, record["unit_seconds"])
            units.setdefault(variant, {})[seed] = record
    return {"base": base, "units": units, "timing": timing, "model": loaded.describe()}


def _base_rows(loaded, out: Path, downstream: bool, timing: dict[str, float]) -> dict[str, Any]:
    """The base model's downstream rows: scored once into ``OUT/base.json`` (its time added to ``timing``), read
    back on a resumed run; ``{"downstream": {}}`` without downstream scoring."""
    base_file = out / "base.json"
    if downstream and not base_file.is_file():
        start = time.perf_counter()
        atomic_write_json(base_file, {"downstream": downstream_rows(loaded)})
        timing["base_downstream_seconds"] = time.perf_counter() - start
    return json.loads(base_file.read_text()) if base_file.is_file() else {"downstream": {}}


def _train_and_evaluate(
    loaded, study, variant: str, config, where: Path, base_cache: dict, progress: bool | None
) -> dict[str, Any]:
    """One unit's record: train ``variant`` as ``config`` says (its seed, its target layer) into ``where``
    (resuming its checkpoints), evaluate the adapter on the lexical controls and BLI, and rank each control query
    at the target and final layers.

    The adapter stays attached to ``loaded.model``: the caller scores downstream with it, then unloads it.
    """

    where.mkdir(parents=True, exist_ok=True)
    trained = run_training(
        loaded,
        study.trained,
        config,
        where,
        resume=(where / "checkpoints").is_dir(),
        progress=progress,
        control=study.control,
        split_record=study.record(),
    )
    meta = read_adapter_meta(trained.adapter)
    grouped, _ = groups_for(trained.adapter, meta, None)
    eval_config = EvaluateConfig(adapter=[trained.adapter], n_boot=2000, seed=config.seed)
    results, embeddings = run_evaluation(
        loaded, grouped, meta, eval_config, base_cache=base_cache, progress=progress
    )
    final_layer = int(base_causal_lm(loaded.model).config.num_hidden_layers)
    return {
        "variant": variant,
        "seed": config.seed,
        "options": VARIANTS[variant],
        "train_config": asdict(config),
        "epoch_losses": trained.epoch_losses,
        "train_seconds": trained.timing["train_seconds"],
        "per_pair": results.per_pair,
        "evaluation": results.evaluation,
        "bli": results.bli,
        "control_ranks": _control_ranks(embeddings, config.target_layer, final_layer),
        "target_layer": config.target_layer,
        "final_layer": final_layer,
        "warnings": trained.warnings,
    }


def _control_ranks(embeddings, target_layer: int, final_layer: int) -> dict[str, dict[str, Any]]:
    """Each control query's rank before and after, at the target and final layers (:func:`control_query_ranks`),
    with the query words spelled out."""
    groups = np.array([p.group for p in embeddings.lexicon])
    ranks = {
        role: control_query_ranks(embeddings.base, embeddings.adapted, embeddings.index, groups, layer)
        for role, layer in (("target", target_layer), ("final", final_layer))
    }
    sources = list(dict.fromkeys(embeddings.lexicon.sources))
    for role in ranks:
        ranks[role]["words"] = [sources[q] for q in ranks[role]["queries"]]
    return ranks


def finished_units(out: Path, variants: list[str], seeds: list[int]) -> dict[str, Any]:
    """The units already written in ``out``, without training anything: only variants with every seed finished
    (a variant with fewer seeds would not share the others' design); ``missing`` lists the rest."""
    units: dict[str, dict[int, dict[str, Any]]] = {}
    missing = []
    for variant in check_variants(variants):
        files = {seed: out / variant / f"seed-{seed}.json" for seed in seeds}
        if all(f.is_file() for f in files.values()):
            units[variant] = {seed: json.loads(f.read_text()) for seed, f in files.items()}
        else:
            missing.append(variant)
    base_file = out / "base.json"
    base = json.loads(base_file.read_text()) if base_file.is_file() else {"downstream": {}}
    return {"base": base, "units": units, "missing": missing}
