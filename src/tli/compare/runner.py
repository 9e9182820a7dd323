"""Running an experiment: strategy cells, then retrieval cells, then the comparisons.

:func:`run_experiment` sequences a run: every (model, strategy, seed) unit is trained once and scored on every
task (:class:`Runner`), then the retrieval systems that are not a strategy's LLM — BM25, fusion, trained dense
retrievers — are run (:mod:`tli.compare.retrieval_runner`), then every comparison is derived from the cells'
prediction files (:func:`analyse`) and the report written.

Where cells live on disk and when a finished one is reused: :mod:`tli.compare.cell_store`. A failed unit is
recorded (``status: failed`` with the message) and the other units go on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import traceback
from pathlib import Path
from typing import Any

import yaml

from tli.compare.cell_store import (
    Recomputed,
    cell_dir,
    failed_cell,
    fingerprint,
    read_cell,
    slug,
    unit_dir,
    write_cell,
)
from tli.compare.comparisons import compare_cells, comparisons_across_seeds
from tli.compare.power import power_report
from tli.compare.questions import answer_questions, families, question_answers
from tli.compare.report import compare_report, plot_layer_curves, plot_score_vs_cost
from tli.compare.retrieval_runner import RetrievalRunner
from tli.compare.schema import Cell, Experiment, StrategySpec
from tli.compare.units import TrainingUnit, refuse_missing, training_units
from tli.compare.vllm_runner import PendingCell, score_pending, served_by_vllm
from tli.distributed import current_context, shared_evaluation
from tli.errors import TliError
from tli.io import atomic_write_json, atomic_write_text, replace_dir_atomically
from tli.models import load_model
from tli.plan import plan
from tli.resources import Measured
from tli.runs import COMPLETE, holding_run_dir, mark_complete, provenance
from tli.strategies import get_strategy
from tli.strategies.finetune import finetune
from tli.tasks import get_task, is_retrieval
from tli.tasks.retrieval.mrtydi import PUBLISHED_MRR100
from tli.tracking import make_tracker
from tli.train import process_device

log = logging.getLogger(__name__)


class Runner:
    """Runs an experiment's units and cells into ``out``, caching data and features per model."""

    def __init__(self, experiment: Experiment, out: Path, *, progress: bool | None = None, tracker=None):
        self.experiment, self.out, self.progress, self.tracker = experiment, out, progress, tracker
        self.context = current_context()  # several processes under accelerate launch / torchrun
        if not self.context.is_main:
            self.progress = False
        self._examples: dict[tuple[str, str], list] = {}
        self._features: dict[str, list[dict]] = {}
        self.recomputed = Recomputed()
        self.pending: list[PendingCell] = []  # backend: vllm — cells scored once every unit has trained

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
        error = None
        try:
            loaded, model_obj, cost = self.prepare(model, spec, seed, unit)
        except (TliError, RuntimeError, ValueError, OSError) as exc:
            error = exc
        error = self.agreed(error)
        if error is not None:
            return [done.get(key) or self.failed(model, spec.name, seed, *key, error) for key in wanted]
        cells = []
        for key in wanted:
            if key in done:
                cells.append(done[key])
            elif served_by_vllm(self.experiment.backend, spec.name, key[0]):  # scored after every unit
                base = loaded.local_dir or model
                self.pending.append(
                    PendingCell(model, spec.name, seed, *key, cost, unit, base, loaded.tokenizer)
                )
            else:
                cells.append(
                    self.score(loaded.tokenizer, model_obj, model, spec.name, seed, *key, cost, unit)
                )
        return cells

    def main_sees(self, flag: bool) -> bool:
        """What the main process sees on disk, for every process (so they all take the same branch)."""
        if self.context.world_size == 1:
            return flag
        return self.context.sum(float(flag) if self.context.is_main else 0.0) > 0

    def agreed(self, error: BaseException | None) -> BaseException | None:
        """Under a launcher, a step that failed on any process fails on all of them (so they stay in step and
        the run goes on with the next cell together); alone, ``error`` itself."""
        if self.context.world_size == 1:
            return error
        failed_ranks = self.context.sum(0.0 if error is None else 1.0)
        if failed_ranks and error is None:
            return TliError(f"{int(failed_ranks)} other process(es) of the launch failed this step")
        return error

    def check_unit(self, unit: Path, model: str, strategy: str, seed: int) -> None:
        """A unit trained with other settings is trained again: its adapter and training files are removed
        (its cells, made with the old unit, are recomputed as their settings differ too). Under a launcher the
        main process removes them while the others wait."""
        if not self.context.is_main:
            self.context.barrier()
            return
        self.recomputed.check_unit(
            unit,
            self.experiment.unit_settings(model, strategy, seed),
            f"{slug(model)}/{strategy}/seed-{seed}",
            stale=("adapter", "tli-adapter-training"),
        )
        self.context.barrier()

    def prepare(self, model: str, spec: StrategySpec, seed: int, unit: Path):
        """The model of this unit: trained now, or reloaded from a complete earlier training."""
        strategy = get_strategy(spec.name, spec.options)
        saved = unit / "train.json"
        # Decided before anyone loads: the main process may write train.json while another still loads.
        trained_before = self.main_sees(saved.is_file() and (unit / "adapter").exists())
        with Measured() as measured:
            loaded = load_model(
                model,
                dtype=self.experiment.dtype,
                device=process_device(spec.device or self.experiment.device),
                quantization=strategy.quantization,
                purpose="train",
                # Under a launcher each process owns its GPU and DDP / FSDP place the weights: no device_map.
                device_map=None if self.context.world_size > 1 else self.experiment.device_map,
                max_memory=None if self.context.world_size > 1 else self.experiment.max_memory,
                offload_folder=self.experiment.offload_folder,
            )
            if trained_before:
                model_obj = strategy.load(loaded, unit / "adapter")
                model_obj.eval()
                return loaded, model_obj, json.loads(saved.read_text(encoding="utf-8"))["cost"]
            model_obj = strategy.prepare(loaded, seed=seed, workdir=unit, progress=self.progress)
            trainable = strategy.trained_parameters(model_obj)
            stats = self.fine_tune(strategy, model_obj, loaded, model, seed)
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
        if self.context.is_main:
            self.write_training_record(saved, model, spec.name, seed, cost, stats, settings)
        self.context.barrier()  # the others read train.json and the adapter only once they are complete
        model_obj.eval()
        return loaded, model_obj, cost

    @staticmethod
    def write_training_record(saved: Path, model, strategy, seed, cost, stats, settings) -> None:
        atomic_write_json(
            saved,
            {
                "model": model,
                "strategy": strategy,
                "seed": seed,
                "cost": cost,
                "losses": stats["losses"],
                "settings": settings,
                "fingerprint": fingerprint(settings),
            },
        )

    def fine_tune(self, strategy, model_obj, loaded, model: str, seed: int) -> dict[str, Any]:
        """Fine-tune on the experiment's task data (a strategy that does not: no steps)."""
        if not strategy.trains_on_task:
            return {"steps": 0, "tokens_seen": 0, "losses": []}
        return finetune(
            model_obj,
            self.features(model, loaded.tokenizer),
            self.experiment.budget,
            seed=seed,
            pad_id=loaded.tokenizer.pad_token_id,
            device=loaded.device,
            progress=self.progress,
            desc=f"{strategy.name} (seed {seed})",
        )

    def save(self, strategy, model_obj, unit: Path) -> None:
        """Keep what training changed, so a rerun reloads it (full weights only with save_full_weights)."""
        if strategy.name == "full" and not self.experiment.save_full_weights:
            return
        unit.mkdir(parents=True, exist_ok=True)
        if self.context.is_main:
            replace_dir_atomically(unit / "adapter", lambda tmp: strategy.save(model_obj, tmp))
            return
        with (
            tempfile.TemporaryDirectory() as nowhere
        ):  # gathers FSDP shards with the main process; writes nothing
            strategy.save(model_obj, Path(nowhere))

    def score(
        self,
        tokenizer,
        model_obj,
        model: str,
        strategy: str,
        seed: int,
        task: str,
        language: str,
        cost: dict[str, Any],
        unit: Path,
    ) -> Cell | None:
        """Evaluate one cell and write it (predictions first, ``cell.json`` last).

        Under a launcher the evaluation is data parallel: every process runs the task's evaluation together, each
        generating, scoring or embedding its share of the examples (:func:`tli.distributed.score_in_shares`; a
        model sharded by FSDP takes every process into every forward), the shares are gathered in example order,
        and the main process writes the cell (the others return None). lm-evaluation-harness tasks are split by
        the harness itself (:func:`tli.tasks.harness.run_harness`).
        """
        where = cell_dir(unit, task, language)
        error = None
        try:
            examples = self.examples(task, language)
            with Measured() as measured, shared_evaluation(self.context):
                result = get_task(task).evaluate(
                    model_obj, tokenizer, examples, self.experiment.tasks[task], progress=self.progress
                )
        except (TliError, RuntimeError, ValueError, OSError) as exc:
            error = exc
        error = self.agreed(error)
        if error is not None:
            return self.failed(model, strategy, seed, task, language, error)
        if not self.context.is_main:
            return None  # the main process writes the cell
        return write_cell(
            where,
            result,
            task=task,
            language=language,
            model=model,
            strategy=strategy,
            seed=seed,
            system=f"dense:{strategy}" if is_retrieval(task) else None,
            cost={
                **cost,
                "evaluate_seconds": measured.seconds,
                "evaluate_processes": self.context.world_size,  # each scored its share of the examples
            },
            tracker=self.tracker,
            settings=self.experiment.cell_settings(model, strategy, seed, task, language),
        )

    def failed(
        self, model: str, strategy: str, seed: int, task: str, language: str, exc: BaseException
    ) -> Cell:
        log.debug("".join(traceback.format_exception(exc)))
        system = f"dense:{strategy}" if is_retrieval(task) else None
        return failed_cell(model, strategy, seed, task, language, system, exc)

    def holding_unit(self, unit: TrainingUnit):
        """One job per unit, however launched: the main process locks the unit's directory."""
        if not self.context.is_main:
            return contextlib.nullcontext()
        return holding_run_dir(unit.directory(self.out), "--only")

    def inference_gpus(self) -> dict[str, int | None]:
        """Base path → GPUs the plan gives its inference (vLLM's tensor-parallel size)."""
        gpus = {}
        for item in self.pending:
            if item.base_path not in gpus:
                try:
                    gpus[item.base_path] = plan(item.base_path).to_dict()["strategies"]["inference"][
                        "devices"
                    ]
                except TliError:
                    gpus[item.base_path] = None
        return gpus

    def finished_cells(self, model: str, spec: StrategySpec, seed: int) -> list[Cell]:
        """``--collect``: the unit's cells as its own job left them (done or recorded failures); nothing runs."""
        unit = unit_dir(self.out, model, spec.name, seed)
        return [read_cell(cell_dir(unit, *key)) for key in self.experiment.strategy_task_languages()]

    def run(self, units: list[TrainingUnit] | None = None, *, collect: bool = False) -> list[Cell]:
        """The experiment's training units in order (only ``units`` when given, and then no retrieval systems:
        those run with ``--collect``, once every unit is finished), then its retrieval systems; returns every
        cell (done or failed). ``collect``: read every unit's cells instead of running it."""
        cells: list[Cell] = []
        wanted = None if units is None else set(units)
        for unit in training_units(self.experiment):
            if wanted is not None and unit not in wanted:
                continue
            spec = self.experiment.strategy(unit.strategy)
            if collect:
                cells.extend(self.finished_cells(unit.model, spec, unit.seed))
                continue
            with self.holding_unit(unit):
                cells.extend(cell for cell in self.run_unit(unit.model, spec, unit.seed) if cell is not None)
        if self.pending:
            cells.extend(score_pending(self, self.pending, gpus=self.inference_gpus()))
            self.pending = []
        if self.experiment.retrieval is not None and units is None and self.context.is_main:
            cells.extend(RetrievalRunner(self).run(cells))
        self.context.barrier()
        if self.recomputed.items:
            log.warning(
                "warning: %d cell(s) or training unit(s) of %s were made with other settings and were recomputed",
                len(self.recomputed.items),
                self.out,
            )
        return cells


def run_units(
    experiment: Experiment, out: Path, units: list[TrainingUnit], progress: bool | None
) -> dict[str, Any]:
    """Run some training units into ``out`` (one job of a cluster run; ``out`` held shared, each unit alone).

    Writes the units' cells only: the comparisons need every unit and are written by :func:`run_experiment`
    with ``collect=True``. Returns ``{"units": [ids], "cells": [cell records]}``.
    """
    if current_context().is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / COMPLETE).unlink(missing_ok=True)  # cells change: results.json is no longer the cells' summary
        write_experiment_file(experiment, out)
    cells = Runner(experiment, out, progress=progress).run(units)
    return {"units": [unit.id for unit in units], "cells": [c.to_dict() for c in cells]}


def write_experiment_file(experiment: Experiment, out: Path) -> None:
    """``OUT/experiment.yaml``: the experiment as run (the same bytes from every job of a cluster run)."""
    atomic_write_text(
        out / "experiment.yaml", yaml.safe_dump(experiment.raw, sort_keys=False, allow_unicode=True)
    )


def run_experiment(
    experiment: Experiment,
    out: Path,
    track: str | None,
    tracking_uri: str | None,
    progress: bool | None,
    *,
    collect: bool = False,
) -> dict[str, Any]:
    """Run an experiment into a locked ``out``: its strategy cells, then its retrieval cells, then its
    comparisons; write ``results.json`` and the report, and mark the run complete.

    ``collect``: the training units were run by other jobs (:func:`run_units`); read their cells (refusing,
    naming them, while any is unfinished), run the retrieval systems, and write the comparisons.
    """
    if collect:
        refuse_missing(experiment, out)
    if (
        not current_context().is_main
    ):  # under a launcher: train and evaluate with the main process, write nothing
        Runner(experiment, out, progress=progress).run(collect=collect)
        return {}
    out.mkdir(parents=True, exist_ok=True)
    (out / COMPLETE).unlink(missing_ok=True)  # cells may be added: complete again only at the end
    record = experiment.to_dict()
    write_experiment_file(experiment, out)
    tracker = make_tracker(
        track, out, experiment.name, {k: v for k, v in record.items() if k != "tasks"}, tracking_uri
    )
    try:
        cells = Runner(experiment, out, progress=progress, tracker=tracker).run(collect=collect)
        results = {
            "experiment": record,
            "cells": [c.to_dict() for c in cells],
            **analyse(experiment, cells),
            **provenance("compare", record, experiment.seeds[0]),
        }
        if experiment.retrieval is not None:
            results["retrieval"] = retrieval_summary(experiment, out)
            plot_layer_curves(results["cells"], out / "retrieval_layers.png")
        plot_score_vs_cost(results["cells"], out / "score_vs_cost.png")
        atomic_write_text(out / "report.md", compare_report(results))
        atomic_write_json(out / "results.json", results)
        mark_complete(out, "comparison")
        if tracker is not None:
            done = [c for c in cells if c.status == "done"]
            tracker.log_results({"cells_done": float(len(done))}, [out / "report.md", out / "results.json"])
    finally:
        if tracker is not None:
            tracker.close()
    return results


def analyse(experiment: Experiment, cells: list[Cell]) -> dict[str, Any]:
    """Every statistic of a comparison derived from its cells' prediction files: the paired comparisons per seed
    (``comparisons_per_seed``), their summary over seeds (``comparisons``) and the research questions' claims.

    The one entry point of the statistics: ``tli compare`` writes what it returns, and ``tli verify`` calls it
    again on a finished run's cells to re-derive every figure of its ``results.json`` and report.
    """
    strategies = [spec.name for spec in experiment.strategies]
    per_seed = compare_cells(
        cells,
        strategies,
        experiment.reference,
        n_resamples=experiment.n_resamples,
        correction=experiment.correction,
        alpha=experiment.alpha,
        task_configs=experiment.tasks,
        retrieval=experiment.retrieval,
        seeds=experiment.seeds,
        margin=experiment.noninferiority_margin,
        models=experiment.models,
    )
    combined = comparisons_across_seeds(per_seed, correction=experiment.correction, alpha=experiment.alpha)
    tasks = list(experiment.tasks)
    return {
        "comparisons": [c.to_dict() for c in combined],
        "comparisons_per_seed": [c.to_dict() for c in per_seed],
        "claims": answer_questions(combined, strategies, tasks, experiment.models),
        "answers": question_answers(combined, strategies, tasks, experiment.models),
        "families": families(combined, correction=experiment.correction, alpha=experiment.alpha),
        "power": power_report(experiment),
    }


def retrieval_summary(experiment: Experiment, out: Path) -> dict[str, Any]:
    """What the report says about retrieval beyond the cells: synthetic data, published baselines."""
    summary: dict[str, Any] = {"plan": experiment.retrieval.describe(), "published_mrr100": {}}
    meta = out / "synthetic" / "synthetic.meta.json"
    if meta.is_file():
        record = json.loads(meta.read_text(encoding="utf-8"))
        summary["synthetic"] = {
            "file": str(out / "synthetic" / "synthetic.jsonl"),
            "kept": record.get("kept"),
            "counts": record.get("counts"),
            "generator": record.get("generator"),
        }
    if "mrtydi" in experiment.tasks:
        summary["published_mrr100"] = {
            lang: PUBLISHED_MRR100[lang]
            for lang in experiment.tasks["mrtydi"].languages
            if lang in PUBLISHED_MRR100
        }
    return summary
