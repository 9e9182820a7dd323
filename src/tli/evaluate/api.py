"""``tli evaluate``'s Python API: evaluate adapter(s) against their base model and write the run directory."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tli.adapter import attach_to, load_adapted_for, read_adapter_meta
from tli.config import EvaluateConfig
from tli.embed import EmbeddingCache
from tli.errors import ConfigError
from tli.evaluate.groups import groups_for
from tli.evaluate.results import EvaluationResult
from tli.evaluate.run import run_evaluation
from tli.evaluate.seeds import seed_summary
from tli.lexicon import Lexicon, lexicon_record, resolve_lexicon
from tli.models import LoadedModel
from tli.progress import stage
from tli.report import write_evaluate_run, write_seeds_summary
from tli.runs import prepare_run_dir, provenance, require_complete
from tli.threads import configure_threads


def evaluate(
    adapter: str | Path | list[str | Path],
    *,
    model: str | LoadedModel | None = None,
    lexicon: str | Path | Lexicon | None = None,
    out: str | Path | None = None,
    progress: bool | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate TLI adapter(s) against their base model and write the run directory.

    Several adapters (one per training seed, or the directory of a ``tli train --seeds`` run) give per-seed
    evaluations in ``out/seed-<k>/`` and an aggregate in ``out``: mean ± sd of every figure and the claims
    that hold across seeds.

    Writes ``results.json`` (``evaluation`` entries per group and layer, ``claims`` with corrected verdicts),
    ``pairs.csv`` (per pair: source, target, group, layer, similarity and gaps before/after),
    ``report.md`` and plots.

    Args:
        adapter: ``RUN/adapter`` of ``tli train``, a list of them, or a multi-seed training directory.
        model: base model spec or a loaded model with this adapter attached; None = recorded base model.
        lexicon: word pairs; None = the split recorded with the adapter.
        out: run directory (nothing is written when None).
        progress: progress bars on a terminal, log lines every 30 s otherwise (None); False = silent.
        **options: other :class:`~tli.config.EvaluateConfig` fields.
    """
    adapters = expand_adapters(adapter)
    config = EvaluateConfig(
        adapter=[str(a) for a in adapters], model=None if isinstance(model, LoadedModel) else model, **options
    )
    configure_threads(config.threads)
    metas = [read_adapter_meta(a) for a in adapters]
    if out is not None:
        prepare_run_dir(out, overwrite=config.overwrite)
    given = (
        resolve_lexicon(lexicon if lexicon is not None else config.lexicon)
        if (lexicon or config.lexicon)
        else None
    )
    per_seed: list[EvaluationResult] = []
    loaded = model if isinstance(model, LoadedModel) else None
    caches: dict[str, EmbeddingCache] = {}  # base embeddings, shared by adapters of one base and recipe
    for path, meta in zip(adapters, metas, strict=True):
        if loaded is None or loaded.adapter != str(path):
            loaded = _adapted(path, meta, config, loaded)
        grouped, split = groups_for(path, meta, given)
        key = json.dumps([meta["base_model"]["fingerprint"], meta["embed"]], sort_keys=True)
        results, embeddings = run_evaluation(
            loaded, grouped, meta, config, base_cache=caches.setdefault(key, {}), progress=progress
        )
        seed = meta["config"].get("seed", 0)
        results.record_run(
            provenance("evaluate", asdict(config), config.seed),
            seed=seed,
            split=split,
            model=loaded.describe(),
            lexicon=lexicon_record(grouped),
            adapter={"path": str(path), "trained_with": meta["config"]},
        )
        if out is not None:
            where = Path(out) / f"seed-{seed}" if len(adapters) > 1 else Path(out)
            with stage(f"report and plots (seed {seed})", enabled=progress):
                write_evaluate_run(where, results.to_dict(), embeddings)
        per_seed.append(results)
    if len(per_seed) == 1:
        return per_seed[0].to_dict()
    summary = {**seed_summary(per_seed).to_dict(), **provenance("evaluate", asdict(config), config.seed)}
    if out is not None:
        write_seeds_summary(Path(out), summary)
    return summary


def _adapted(
    path: Path, meta: dict[str, Any], config: EvaluateConfig, previous: LoadedModel | None
) -> LoadedModel:
    """The base model with this adapter: reuse a loaded base (same fingerprint) when one is at hand."""
    if previous is not None and previous.fingerprint.get("sha256") == meta["base_model"]["fingerprint"].get(
        "sha256"
    ):
        previous.model = previous.model.unload() if hasattr(previous.model, "unload") else previous.model
        return attach_to(previous, path)
    return load_adapted_for(path, config, meta)


def expand_adapters(adapter: str | Path | list[str | Path]) -> list[Path]:
    """Adapter directories from a path, a list, or a ``tli train --seeds`` run (its ``seed-*/adapter``)."""
    items = adapter if isinstance(adapter, (list, tuple)) else [adapter]
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if (path / "adapter_config.json").is_file():
            found.append(path)
        elif (path / "adapter" / "adapter_config.json").is_file():
            found.append(path / "adapter")
        elif seeds := sorted(path.glob("seed-*/adapter"), key=lambda p: int(p.parent.name.split("-")[1])):
            found.extend(seeds)
        else:
            found.append(path)  # read_adapter_meta names what is missing
    if not found:
        raise ConfigError("--adapter: no adapter given")
    for adapter in found:
        run = adapter.parent
        if (run / "checkpoints").is_dir():  # the adapter of a tli train run: that run must have finished
            require_complete(run, "training run", f"finish it with `tli train --resume --out {run}`")
    return found
