"""The per-seed API: :func:`train` locks the run directory, loads the model once (only the blocks up to the
target layer), trains each seed with :func:`tli.train.loop.run_training` and writes each seed's run directory
(and, with several seeds, a summary ``results.json``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from tli.adapter import ADAPTER_META
from tli.config import TrainConfig
from tli.distributed import distributed_context, launched
from tli.errors import ConfigError
from tli.io import atomic_write_json
from tli.lexicon import Lexicon, lexicon_record, split_for_study
from tli.models import load_model, resolve_device
from tli.report import write_train_run
from tli.runs import COMPLETE, check_writable, holding_run_dir, is_complete, mark_complete, provenance
from tli.threads import configure_threads
from tli.train.loop import run_training
from tli.train.result import TrainResult

log = logging.getLogger(__name__)


def process_device(device: str) -> str:
    """Under a multi-process launcher on CUDA, each process takes the GPU of its ``LOCAL_RANK``."""
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is not None and device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank}"
    return device


def is_main_process() -> bool:
    """Only the main process of a launcher writes results and prints summaries."""
    return int(os.environ.get("RANK", "0")) == 0


def seed_dir(out: Path, seed: int, n_seeds: int) -> Path:
    """``OUT`` for one seed, ``OUT/seed-<k>`` for several."""
    return out / f"seed-{seed}" if n_seeds > 1 else out


def train(
    model: str | None = None,
    lexicon: str | Path | Lexicon | None = None,
    *,
    out: str | Path,
    resume: bool = False,
    progress: bool | None = None,
    **options: Any,
) -> TrainResult | list[TrainResult]:
    """Train a TLI adapter (one per seed) and write the run directory.

    Writes ``out/adapter/`` (PEFT; load with ``peft.PeftModel.from_pretrained``), ``out/checkpoints/``
    (one per epoch), ``out/metrics.jsonl`` and ``out/results.json``; with several ``seeds``, one such
    directory per seed in ``out/seed-<k>/`` and a summary ``out/results.json``.

    Args:
        model: model spec (see :func:`tli.models.load_model`); only blocks up to the target layer load.
        lexicon: word pairs (path or :class:`Lexicon`); its ``trained`` group is used.
        out: run directory.
        resume: continue from the last complete epoch checkpoint (finished seeds are kept).
        **options: any :class:`~tli.config.TrainConfig` field.

    Returns:
        The :class:`TrainResult` (a list of them with several seeds).
    """
    lexicon_path = str(Path(lexicon).resolve()) if isinstance(lexicon, (str, Path)) else None
    config = TrainConfig(model=model, lexicon=lexicon_path, resume=resume, out=str(out), **options)
    configure_threads(config.threads)
    out = check_writable(Path(out))
    # A second tli run on this --out refuses (processes of one distributed launch: the main one locks).
    with holding_run_dir(out) if is_main_process() else contextlib.nullcontext(out):
        return _train_seeds(model, lexicon, config, out, progress)


def _train_seeds(
    model: str | None,
    lexicon: str | Path | Lexicon | None,
    config: TrainConfig,
    out: Path,
    progress: bool | None,
) -> TrainResult | list[TrainResult]:
    """:func:`train` once ``out`` is locked: the split, one model load, then each seed in turn."""

    resume = config.resume
    seeds = config.seed_list()
    if not resume and (
        (out / "checkpoints").exists()
        or any((seed_dir(out, s, len(seeds)) / "checkpoints").exists() for s in seeds)
    ):
        if not config.overwrite:
            state = "a finished training run" if is_complete(out) else "a training run"
            raise ConfigError(
                f"--out {out} already holds {state}: pass --resume to continue it, --overwrite to train again "
                "from scratch, or choose another --out"
            )
        clear_training(out)
    for note in config.scan_notes:  # the recipe or layer differs from the scan the run cites
        log.warning("warning: %s", note)
    if len(seeds) > 1:
        (out / COMPLETE).unlink(missing_ok=True)  # a multi-seed summary being redone is not complete
    study = split_for_study(
        lexicon, config.test_lexicon, control_fraction=config.control_fraction, split_seed=config.split_seed
    )
    device = process_device(config.device)
    if launched() and config.device_map is None:
        # Before loading: FSDP's RAM-efficient loading and ZeRO-3's partitioned init read Accelerate's state,
        # and FSDP / DeepSpeed on a CPU are refused before minutes of loading.
        distributed_context(resolve_device(device), grad_accum=config.grad_accum)
    loaded = load_model(
        model, **{**config.load_options(), "device": device}, up_to_layer=config.target_layer, purpose="train"
    )
    results = []
    for seed in seeds:
        seed_config = TrainConfig(**{**asdict(config), "seed": seed, "seeds": None})
        where = seed_dir(out, seed, len(seeds))
        if resume and is_complete(where) and (where / "adapter" / ADAPTER_META).is_file():
            results.append(_finished_result(where))
            continue
        where.mkdir(parents=True, exist_ok=True)
        result = run_training(
            loaded,
            study.trained,
            seed_config,
            where,
            resume=resume,
            progress=progress,
            control=study.control,
            split_record=study.record(),
        )
        result.warnings = [*config.scan_notes, *result.warnings]
        results.append(result)
        if is_main_process():
            record = {
                **asdict(result),
                "model": loaded.describe() | {"full_num_layers": loaded.extra.get("full_num_layers")},
                "lexicon": lexicon_record(study.lexicon)
                | {"n_trained": len(study.trained), "n_control": len(study.control)},
                "split": study.record(),
                **provenance("train", asdict(seed_config), seed),
            }
            write_train_run(where, record, seed_config)
        loaded.model = loaded.model.unload()  # the base again, for the next seed
    if len(seeds) > 1 and is_main_process():
        atomic_write_json(
            out / "results.json",
            {
                "seeds": seeds,
                "runs": [asdict(r) for r in results],
                "adapters": [r.adapter for r in results],
                **provenance("train", asdict(config), None),
            },
        )
        mark_complete(out, "training over seeds")
    return results if len(seeds) > 1 else results[0]


TRAINING_FILES = (
    "checkpoints",
    "adapter",
    "metrics.jsonl",
    "tensorboard",
    "loss.png",
    "results.json",
    COMPLETE,
)
"""What a ``tli train`` run directory holds (each seed's, too): removed by ``--overwrite``."""


def clear_training(out: Path) -> None:
    """Remove an earlier training run from ``out`` (``--overwrite``): its files and every ``seed-<k>/``."""
    for where in [out, *(p for p in out.glob("seed-*") if p.is_dir())]:
        for name in TRAINING_FILES:
            path = where / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        if where != out and not any(where.iterdir()):
            where.rmdir()


def _finished_result(where: Path) -> TrainResult:
    """A seed already trained by an earlier, interrupted multi-seed run (kept on --resume)."""
    record = json.loads((where / "results.json").read_text(encoding="utf-8"))
    names = {f for f in TrainResult.__dataclass_fields__}
    return TrainResult(**{k: v for k, v in record.items() if k in names})
