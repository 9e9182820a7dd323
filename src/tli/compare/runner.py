"""Running the cells of an experiment: train each (model, strategy, seed) once, score it on every task.

Layout under ``OUT/runs/<model>/<strategy>/seed-<k>/``::

    train.json                  cost of preparing and fine-tuning (written when training is complete)
    adapter/                    what the fine-tuning changed (LoRA family; full weights only when asked)
    <task>-<language>/cell.json  one cell's scores and cost (written last: a cell with it is complete)
    <task>-<language>/predictions.jsonl  the per-example rows {"id", "prediction", "reference", scores...}
    <task>-<language>/run.trec, qrels.trec  retrieval cells: the TREC run and qrels behind every figure

Retrieval tasks add cells that are not a strategy's LLM (BM25, fusion, trained dense retrievers): see
:mod:`tli.compare.retrieval_runner`.

Rerunning an experiment skips complete cells and reloads a trained adapter instead of training again — when they
were made with the same settings: each cell records the parts of the experiment that made it (``settings`` and
their SHA-256 ``fingerprint``; :meth:`Experiment.cell_settings`), and a unit its training settings in
``train.json``. A cell or unit whose settings changed since is recomputed, and the run says which and what
changed (``budget.steps 2 → 3``); the others are reused. A failed unit is recorded (``status: failed`` with the
message) and the other units go on.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tli.compare.experiment import Experiment, StrategySpec
from tli.errors import TliError
from tli.io import atomic_write_json, atomic_write_text
from tli.resources import Measured
from tli.strategies import STRATEGIES, get_strategy
from tli.strategies.finetune import finetune
from tli.tasks import get_task, is_retrieval

log = logging.getLogger(__name__)


def slug(name: str) -> str:
    """A directory name for a model spec (``default``, a path's last part, a hub id with ``__``)."""
    text = Path(name).name if Path(name).exists() else name.replace("/", "__")
    return re.sub(r"[^\w.+-]", "_", text) or "model"


@dataclass
class Cell:
    """One (model, strategy, task, language, seed) result, as ``results.json`` lists it."""

    model: str | None
    """The model (null for BM25, which has none)."""
    strategy: str | None
    """The fine-tuning strategy (null for BM25 and trained dense retrievers)."""
    task: str
    language: str
    seed: int | None
    """The seed (null for systems without randomness: BM25, zero-shot dense retrievers)."""
    status: str = "pending"
    """``done`` or ``failed``."""
    n: int = 0
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    predictions: str | None = None
    """Path of the per-example rows (jsonl)."""
    error: str | None = None
    system: str | None = None
    """Retrieval cells: what ranked (``bm25``, ``dense:<strategy or condition>``, ``fusion:<a>+<b>``)."""
    run: str | None = None
    """Retrieval cells: path of the TREC run file."""
    qrels: str | None = None
    """Retrieval cells: path of the TREC qrels file the run was scored against."""
    details: dict[str, Any] = field(default_factory=dict)
    """Retrieval cells: how the run was made (recipe, layer, per-layer curve, passages not scored)."""
    fingerprint: str | None = None
    """SHA-256 of ``settings``: a rerun reuses the cell only when its settings are the same."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The parts of the experiment that made this cell (:meth:`Experiment.cell_settings`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fingerprint(settings: dict[str, Any]) -> str:
    """SHA-256 of the settings as canonical JSON (sorted keys)."""
    from tli.io import sha256_text

    return sha256_text(json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str))


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def describe_changes(old: dict[str, Any] | None, new: dict[str, Any], limit: int = 4) -> str:
    """``budget.steps 2 → 3, task_options.limit 9 → 12``: what differs between two settings."""
    if not old:
        return "made without recorded settings (an earlier tli)"
    before, after = _flat(old), _flat(new)
    keys = [k for k in dict.fromkeys([*before, *after]) if before.get(k, "—") != after.get(k, "—")]
    shown = [f"{k} {before.get(k, '—')!s:.40} → {after.get(k, '—')!s:.40}" for k in keys[:limit]]
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(shown) + more if shown else "settings differ"


class Recomputed:
    """The finished cells and trained units a rerun recomputes because their settings changed, said once each."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def note(self, what: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        line = f"{what}: {describe_changes(old, new)}"
        self.items.append(line)
        log.warning("warning: recomputing %s (made with other settings)", line)

    def reusable(self, where: Path, settings: dict[str, Any], what: str) -> Cell | None:
        """The complete cell at ``where`` if it was made with ``settings``; otherwise None (a stale one noted)."""
        cell = read_cell(where)
        if cell is None or cell.status != "done":
            return None
        if cell.fingerprint == fingerprint(settings):
            return cell
        self.note(what, cell.settings, settings)
        return None


def unit_dir(out: Path, model: str, strategy: str, seed: int) -> Path:
    return out / "runs" / slug(model) / strategy / f"seed-{seed}"


def cell_dir(unit: Path, task: str, language: str) -> Path:
    return unit / f"{task}-{language}"


def read_cell(path: Path) -> Cell | None:
    """A complete cell from disk, or None."""
    record = path / "cell.json"
    if not record.is_file():
        return None
    return Cell(**json.loads(record.read_text(encoding="utf-8")))


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The per-example rows of a cell."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


class Runner:
    """Runs an experiment's units and cells into ``out``, caching data and features per model."""

    def __init__(self, experiment: Experiment, out: Path, *, progress: bool | None = None, tracker=None):
        self.experiment, self.out, self.progress, self.tracker = experiment, out, progress, tracker
        self._examples: dict[tuple[str, str], list] = {}
        self._features: dict[str, list[dict]] = {}
        self.recomputed = Recomputed()

    # -- data ------------------------------------------------------------------------------------

    def examples(self, task: str, language: str) -> list:
        key = (task, language)
        if key not in self._examples:
            config = self.experiment.tasks[task]
            extra = {"config": config} if is_retrieval(task) else {}
            self._examples[key] = get_task(task).load(
                config.path, language, split=config.split, limit=config.limit, **extra
            )
        return self._examples[key]

    def features(self, model: str, tokenizer) -> list[dict]:
        """The fine-tuning features of the experiment's train data, tokenized for this model."""
        if model not in self._features:
            train = self.experiment.train
            task, config = get_task(train.task), self.experiment.train_config()
            split = train.split or getattr(config, "train_split", "train")
            examples = task.load(config.path, train.language, split=split, limit=train.limit)
            self._features[model] = task.training_features(examples, tokenizer, config)
        return self._features[model]

    # -- one unit: prepare, fine-tune, score every task ----------------------------------------------

    def run_unit(self, model: str, spec: StrategySpec, seed: int) -> list[Cell]:
        """Train (or reload) one strategy on one model and seed, then fill every missing cell."""
        unit = unit_dir(self.out, model, spec.name, seed)
        wanted = self.experiment.strategy_task_languages()
        self.check_unit(unit, model, spec.name, seed)
        done = {}
        for key in wanted:
            settings = self.experiment.cell_settings(model, spec.name, seed, *key)
            what = f"{slug(model)}/{spec.name}/seed-{seed} {key[0]}-{key[1]}"
            if cell := self.recomputed.reusable(cell_dir(unit, *key), settings, what):
                done[key] = cell
        if len(done) == len(wanted):
            return [done[key] for key in wanted]
        try:
            loaded, model_obj, cost = self.prepare(model, spec, seed, unit)
        except (TliError, RuntimeError, ValueError, OSError) as exc:
            return [done.get(key) or self.failed(model, spec.name, seed, *key, exc) for key in wanted]
        cells = []
        for key in wanted:
            cells.append(
                done.get(key) or self.score(loaded, model_obj, model, spec.name, seed, *key, cost, unit)
            )
        return cells

    def check_unit(self, unit: Path, model: str, strategy: str, seed: int) -> None:
        """A unit trained with other settings is trained again: its adapter and training files are removed
        (its cells, made with the old unit, are recomputed as their settings differ too)."""
        import shutil

        saved = unit / "train.json"
        if not saved.is_file():
            return
        record = json.loads(saved.read_text(encoding="utf-8"))
        settings = self.experiment.unit_settings(model, strategy, seed)
        if record.get("fingerprint") == fingerprint(settings):
            return
        self.recomputed.note(
            f"{slug(model)}/{strategy}/seed-{seed} (training)", record.get("settings"), settings
        )
        for stale in ("adapter", "tli-adapter-training"):
            shutil.rmtree(unit / stale, ignore_errors=True)
        saved.unlink()

    def prepare(self, model: str, spec: StrategySpec, seed: int, unit: Path):
        """The model of this unit: trained now, or reloaded from a complete earlier training."""
        from tli.models import load_model

        strategy = get_strategy(spec.name, spec.options)
        saved = unit / "train.json"
        with Measured() as measured:
            loaded = load_model(
                model,
                dtype=self.experiment.dtype,
                device=spec.device or self.experiment.device,
                quantization=strategy.quantization,
                purpose="train",
                device_map=self.experiment.device_map,
                max_memory=self.experiment.max_memory,
                offload_folder=self.experiment.offload_folder,
            )
            reload = saved.is_file() and (unit / "adapter").exists()
            if reload:
                model_obj = strategy.load(loaded, unit / "adapter")
                cost = json.loads(saved.read_text(encoding="utf-8"))["cost"]
            else:
                model_obj = strategy.prepare(loaded, seed=seed, workdir=unit, progress=self.progress)
                trainable = strategy.trained_parameters(model_obj)
                stats = {"steps": 0, "tokens_seen": 0, "losses": []}
                if strategy.trains_on_task:
                    stats = finetune(
                        model_obj,
                        self.features(model, loaded.tokenizer),
                        self.experiment.budget,
                        seed=seed,
                        pad_id=loaded.tokenizer.pad_token_id,
                        device=loaded.device,
                        progress=self.progress,
                        desc=f"{spec.name} (seed {seed})",
                    )
        if not reload:
            cost = {
                "trainable_parameters": int(trainable),
                "train_seconds": measured.seconds - loaded.load_seconds,
                "load_seconds": loaded.load_seconds,
                "peak_memory_mb": measured.peak_cuda_mb or measured.peak_rss_mb,
                "peak_memory_kind": "cuda"
                if measured.peak_cuda_mb
                else f"process RSS ({measured.rss_peak_scope})",
                "tokens_seen": stats["tokens_seen"] + strategy.extra_tokens(),
                "steps": stats["steps"],
                "loss_first": stats.get("loss_first"),
                "loss_last": stats.get("loss_last"),
                "strategy": strategy.notes,
            }
            self.save(strategy, model_obj, unit)
            unit.mkdir(parents=True, exist_ok=True)
            settings = self.experiment.unit_settings(model, spec.name, seed)
            atomic_write_json(
                saved,
                {
                    "model": model,
                    "strategy": spec.name,
                    "seed": seed,
                    "cost": cost,
                    "losses": stats["losses"],
                    "settings": settings,
                    "fingerprint": fingerprint(settings),
                },
            )
        model_obj.eval()
        return loaded, model_obj, cost

    def save(self, strategy, model_obj, unit: Path) -> None:
        """Keep what training changed, so a rerun reloads it (full weights only with save_full_weights)."""
        from tli.io import replace_dir_atomically

        if strategy.name == "full" and not self.experiment.save_full_weights:
            return
        unit.mkdir(parents=True, exist_ok=True)
        replace_dir_atomically(unit / "adapter", lambda tmp: strategy.save(model_obj, tmp))

    def score(
        self,
        loaded,
        model_obj,
        model: str,
        strategy: str,
        seed: int,
        task: str,
        language: str,
        cost: dict[str, Any],
        unit: Path,
    ) -> Cell:
        """Evaluate one cell and write it (predictions first, ``cell.json`` last)."""
        where = cell_dir(unit, task, language)
        try:
            examples = self.examples(task, language)
            with Measured() as measured:
                result = get_task(task).evaluate(
                    model_obj, loaded.tokenizer, examples, self.experiment.tasks[task], progress=self.progress
                )
        except (TliError, RuntimeError, ValueError, OSError) as exc:
            return self.failed(model, strategy, seed, task, language, exc)
        settings = self.experiment.cell_settings(model, strategy, seed, task, language)
        if is_retrieval(task):
            from tli.compare.retrieval_runner import write_retrieval_cell

            return write_retrieval_cell(
                where,
                result,
                model=model,
                strategy=strategy,
                seed=seed,
                system=f"dense:{strategy}",
                cost={**cost, "evaluate_seconds": measured.seconds},
                tracker=self.tracker,
                settings=settings,
            )
        where.mkdir(parents=True, exist_ok=True)
        predictions = where / "predictions.jsonl"
        atomic_write_text(
            predictions, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in result.predictions)
        )
        cell = Cell(
            model=model,
            strategy=strategy,
            task=task,
            language=language,
            seed=seed,
            status="done",
            n=result.n,
            metrics={name: score.to_dict() for name, score in result.metrics.items()},
            cost={**cost, "evaluate_seconds": measured.seconds},
            predictions=str(predictions),
            fingerprint=fingerprint(settings),
            settings=settings,
        )
        atomic_write_json(where / "cell.json", cell.to_dict())
        if self.tracker is not None:
            self.tracker.log_cell(cell)
        return cell

    def failed(
        self, model: str, strategy: str, seed: int, task: str, language: str, exc: BaseException
    ) -> Cell:
        log.debug("".join(traceback.format_exception(exc)))
        system = f"dense:{strategy}" if is_retrieval(task) else None
        return failed_cell(model, strategy, seed, task, language, system, exc)

    def run(self) -> list[Cell]:
        """Every unit of the experiment, in order; returns every cell (done or failed)."""
        cells: list[Cell] = []
        for model in self.experiment.models:
            for spec in self.experiment.strategies:
                for seed in self.experiment.seeds:
                    cells.extend(self.run_unit(model, spec, seed))
        if self.experiment.retrieval is not None:
            from tli.compare.retrieval_runner import RetrievalRunner

            cells.extend(RetrievalRunner(self).run(cells))
        if self.recomputed.items:
            log.warning(
                "warning: %d cell(s) or training unit(s) of %s were made with other settings and were recomputed",
                len(self.recomputed.items),
                self.out,
            )
        return cells


def failed_cell(
    model: str | None,
    strategy: str | None,
    seed: int | None,
    task: str,
    language: str,
    system: str | None,
    exc: BaseException,
) -> Cell:
    """A cell that could not be scored: ``status: failed`` with the error's first line (logged as a warning)."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    where = f"{model} / {system or strategy} / seed {seed} / {task} ({language})"
    log.warning("warning: %s failed: %s", where, message)
    return Cell(
        model=model,
        strategy=strategy,
        task=task,
        language=language,
        seed=seed,
        status="failed",
        error=message,
        system=system,
    )


def trains(strategy: str) -> bool:
    return STRATEGIES[strategy].trains_on_task
