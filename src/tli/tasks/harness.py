"""lm-evaluation-harness tasks as ``tli compare`` tasks: the harness's own definitions, engine and figures.

An experiment names harness tasks under one key, ``lm-eval``::

    tasks:
      lm-eval:
        tasks: [belebele_swh_Latn, xcopa_sw]
        data: {xcopa_sw: samples:lm-eval/xcopa_sw.jsonl}   # a local file replaces the task's hub dataset
        limit: 200
        num_fewshot: 0

Each harness task becomes one tli task called ``lm-eval:<harness task>`` (:class:`HarnessTask`) with one
language (:func:`task_language`). A cell is scored by ``lm_eval.simple_evaluate`` on the strategy's in-memory
model wrapped as the harness's ``HFLM``, so its figures are the harness's; the per-example records
(``log_samples``) become tli's prediction rows, one per document, with one column per metric named as the
harness names it (``acc``, ``acc_norm``; ``exact_match,strict-match`` for a metric under a filter other than
``none``). A metric the harness aggregates by the mean (``acc``, ``acc_norm``, ``exact_match``) has a
per-example score and a corpus score ``(1/n) Σ_i m_i``, so tli's paired tests resample that column; a corpus
metric (AfroBench's weighted ``f1``, ``bleu``, ``chrf``) keeps the harness's per-example item (``(gold,
prediction)``) in the row and is rescored by the harness's own aggregation on every resample, like tli's BLEU.

A local file (``.jsonl``/``.json`` read by the ``json`` builder, ``.csv`` by ``csv``) must hold the task's own
dataset fields; it becomes the split the task evaluates (``test_split``, else ``validation_split``) and its
few-shot pool, and every row is rendered through the task's prompt, target and choices when the experiment is
read, so a file with the wrong fields stops before any model loads.

``lm_eval`` is imported inside functions only: ``tli --help`` loads neither it nor torch.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tli.distributed import DistributedContext, evaluation_context
from tli.errors import ConfigError, TliError
from tli.tasks.base import MetricScore, Task, TaskDataError, TaskResult, bootstrap_ci, check_int

KEY = "lm-eval"
"""The experiment's task key that holds harness tasks."""
PREFIX = f"{KEY}:"
"""Prefix of a harness task's tli name (``lm-eval:xcopa_sw``)."""
BLOCK_OPTIONS = ("tasks", "data", "limit", "num_fewshot", "batch_size", "languages", "bootstrap_samples")
"""Options of the ``lm-eval`` block."""
BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv"}
"""Local file extension → the ``datasets`` builder that reads it."""
ISO_639_3 = {
    "swh": "sw", "swa": "sw", "eng": "en", "yor": "yo", "hau": "ha", "ibo": "ig", "amh": "am", "zul": "zu",
    "xho": "xh", "kin": "rw", "lug": "lg", "som": "so", "orm": "om", "wol": "wo", "twi": "tw", "ewe": "ee",
    "lin": "ln", "sna": "sn", "sot": "st", "fra": "fr", "ara": "ar", "arb": "ar", "por": "pt", "tir": "ti",
}  # fmt: skip
"""Three-letter codes in harness task names (Belebele, AfroBench) → the two-letter codes tli's cells use."""


@dataclass(kw_only=True)
class HarnessTaskConfig:
    """One harness task of an experiment's ``lm-eval`` block (every field but ``harness_task`` and
    ``languages`` is shared by the block's tasks)."""

    harness_task: str
    """The harness's task name (``xcopa_sw``)."""
    languages: tuple[str, ...] = ()
    """The task's one language (from its name, or the block's ``languages: {task: code}``)."""
    path: str | None = None
    """A local file in the task's dataset fields replacing its hub dataset; None: the hub (online)."""
    limit: int | None = None
    """Score the first ``limit`` documents (the harness's ``--limit``); None: all."""
    num_fewshot: int | None = None
    """Few-shot examples per prompt (the harness's ``--num_fewshot``); None: the task's default."""
    batch_size: int = 8
    """The harness's batch size."""
    bootstrap_samples: int = 1000
    """Bootstrap resamples of each metric's 95 % interval."""
    metrics: tuple[str, ...] = ()
    """The task's per-example metrics as the harness names them (resolved from its definition)."""
    split: str = field(default="test", repr=False)
    """The split the task evaluates (resolved; kept for the runner's data cache)."""


# --------------------------------------------------------------------------------------------------
# The harness's catalogue
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def task_manager() -> Any:
    """The harness's task index, built once per process (indexing its ~13 000 YAMLs takes seconds)."""
    from lm_eval.tasks import TaskManager

    return TaskManager()


def task_definition(name: str) -> dict[str, Any]:
    """The harness task's full configuration (its ``include`` chain merged, ``!function`` entries resolved).

    Raises:
        ConfigError: an unknown task (the closest names suggested) or a group (its tasks suggested).
    """
    manager = task_manager()
    if name in manager.all_groups or name in manager.all_tags:
        raise ConfigError(
            f"lm-eval: {name!r} is a group or tag of the harness, not one task: list its tasks "
            f"(`lm_eval ls tasks` shows them) under tasks.lm-eval.tasks"
        )
    entry = manager.task_index.get(name)
    if entry is None or name not in manager.all_subtasks:
        close = difflib.get_close_matches(name, manager.all_subtasks, n=5, cutoff=0.6)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise ConfigError(f"lm-eval: unknown harness task {name!r}{hint}")
    return manager._factory._load_full_config(entry, None)


def metric_aggregations(
    name: str, definition: Mapping[str, Any]
) -> dict[str, Callable[[list], float] | None]:
    """The task's metrics, one per metric × filter, named as the harness reports them without ``,none``,
    each with the harness's aggregation of its per-example items: None for the mean (a per-example score),
    else the corpus function (weighted F1, BLEU…) that tli reapplies to every resample of the rows.

    Raises:
        ConfigError: a metric whose aggregation the harness does not register: it has no per-example form
            tli can resample.
    """
    from lm_eval.api.registry import get_aggregation, get_metric_aggregation

    filters = [f["name"] for f in definition.get("filter_list") or []] or ["none"]
    out: dict[str, Callable[[list], float] | None] = {}
    for item in definition.get("metric_list") or [{"metric": "acc"}]:
        metric = item["metric"] if isinstance(item["metric"], str) else item["metric"].__name__
        aggregation = item.get("aggregation")
        if isinstance(aggregation, str):
            aggregation = None if aggregation == "mean" else get_aggregation(aggregation) or aggregation
        elif aggregation is None:
            aggregation = get_metric_aggregation(metric)
            if aggregation is None:
                aggregation = f"no aggregation for {metric}"
        if isinstance(aggregation, str) or (aggregation is not None and not callable(aggregation)):
            raise ConfigError(
                f"lm-eval: task {name}: metric {metric!r} has no aggregation the harness registers "
                f"({aggregation!r}), so it has no per-example form tli can resample; choose tasks whose "
                "metrics are means (acc, acc_norm, exact_match…) or registered corpus scores (f1, bleu…)"
            )
        if aggregation is not None and getattr(aggregation, "__name__", "") == "mean":
            aggregation = None
        for f in filters:
            out[metric if f == "none" else f"{metric},{f}"] = aggregation
    return out


def per_example_metrics(name: str, definition: Mapping[str, Any]) -> tuple[str, ...]:
    """The names of :func:`metric_aggregations`, in the task's order."""
    return tuple(metric_aggregations(name, definition))


def task_language(name: str) -> str:
    """The language of a harness task from its name: ``xcopa_sw`` → ``sw``, ``belebele_swh_Latn`` → ``sw``
    (script tags dropped, three-letter codes mapped by :data:`ISO_639_3`); ``und`` when the name does not say."""
    parts = [p for p in name.split("_") if not re.fullmatch(r"[A-Z][a-z]{3}", p)]
    for part in reversed(parts[1:]):
        if part in ISO_639_3:
            return ISO_639_3[part]
        if re.fullmatch(r"[a-z]{2}", part):
            return part
    return "und"


def eval_split(definition: Mapping[str, Any]) -> str:
    """The split the harness scores: ``test_split``, else ``validation_split``."""
    split = definition.get("test_split") or definition.get("validation_split")
    if not split:
        raise ConfigError(f"lm-eval: task {definition.get('task')} has neither a test nor a validation split")
    return str(split)


def local_definition(definition: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The task's definition with its hub dataset replaced by one local file, which becomes the evaluated
    split and the few-shot pool (a file holds one split)."""
    builder = BUILDERS.get(Path(path).suffix.lower())
    if builder is None:
        raise ConfigError(
            f"lm-eval: {path}: unknown data file type {Path(path).suffix!r}; use .jsonl, .json or .csv"
        )
    split = eval_split(definition)
    return {
        **definition,
        "dataset_path": builder,
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(path)}},
        "training_split": None,
        "validation_split": split if definition.get("test_split") is None else None,
        "test_split": split if definition.get("test_split") is not None else None,
        "fewshot_split": split,
    }


@contextmanager
def quiet_harness() -> Iterator[None]:
    """The harness's notes (default aggregations, dataset progress bars) held back while tli reads a task's
    data: an error must stay one line, and a valid file needs no commentary."""
    import datasets

    logger = logging.getLogger("lm_eval")
    level, bars = logger.level, datasets.is_progress_bar_enabled()
    logger.setLevel(logging.ERROR)
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        logger.setLevel(level)
        if bars:
            datasets.enable_progress_bars()


def _render_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a document lacking a field raises while the harness renders it."""
    from jinja2.exceptions import UndefinedError

    return (KeyError, TypeError, IndexError, AttributeError, UndefinedError)


def _first_row(path: str) -> Any:
    """The first row of a local file, for naming its fields in an error (None when it does not read)."""
    import datasets

    try:
        return datasets.load_dataset(BUILDERS[Path(path).suffix.lower()], data_files=path, split="train")[0]
    except (OSError, ValueError, IndexError, KeyError):
        return None


def build_task(config: HarnessTaskConfig) -> Any:
    """The harness's ``ConfigurableTask`` for ``config``: its hub dataset, or the local file."""
    from lm_eval.api.task import ConfigurableTask

    definition = task_definition(config.harness_task)
    if config.path is not None:
        definition = local_definition(definition, config.path)
    for key in ("tag", "group", "task_list"):
        definition.pop(key, None)
    try:
        return ConfigurableTask(config=definition)  # renders the first document: a field check already
    except _render_errors() as exc:
        if config.path is None:
            raise
        raise field_error(config, 1, _first_row(config.path), exc) from exc
    except (OSError, ValueError) as exc:
        where = config.path or definition.get("dataset_path")
        raise TaskDataError(f"lm-eval: task {config.harness_task}: cannot read {where}: {exc}") from exc


def field_error(config: HarnessTaskConfig, row: int, doc: Any, exc: BaseException) -> TaskDataError:
    """``FILE: row 2 does not match task xcopa_sw's fields: missing field 'question' (the row has: …)``."""
    # the json builder gives every row the file's columns: a field a row lacks reads as null
    nulls = sorted(k for k, v in doc.items() if v is None) if isinstance(doc, Mapping) else []
    undefined = re.fullmatch(r"'(\w+)' is undefined", str(exc))  # jinja2, rendering a missing column
    if nulls:
        missing = f"missing field {', '.join(map(repr, nulls))}"
    elif isinstance(exc, KeyError):
        missing = f"missing field {exc.args[0]!r}"
    elif undefined:
        missing = f"missing field {undefined.group(1)!r}"
    else:
        missing = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    has = ""
    if isinstance(doc, Mapping):
        has = f" (the row has: {', '.join(sorted(k for k, v in doc.items() if v is not None))})"
    return TaskDataError(
        f"lm-eval: {config.path}: row {row} does not match task {config.harness_task}'s fields: {missing}{has}"
    )


def check_documents(task: Any, config: HarnessTaskConfig) -> int:
    """Render every document through the task's prompt, target and choices; return how many there are.

    Raises:
        TaskDataError: a document lacking a field the task reads (the file, row and field named).
        ConfigError: ``limit`` larger than the data.
    """
    docs = list(task.eval_docs)
    for row, doc in enumerate(docs, start=1):
        try:
            task.doc_to_text(doc)
            task.doc_to_target(doc)
            if task.config.output_type == "multiple_choice":
                task.doc_to_choice(doc)
        except _render_errors() as exc:
            raise field_error(config, row, doc, exc) from exc
    if config.limit is not None and config.limit > len(docs):
        raise ConfigError(
            f"lm-eval: task {config.harness_task}: limit {config.limit} is larger than its data "
            f"({len(docs)} documents in {config.path or 'the hub dataset'})"
        )
    return len(docs)


# --------------------------------------------------------------------------------------------------
# The experiment block
# --------------------------------------------------------------------------------------------------


def parse_block(options: Any, resolve_path: Any) -> dict[str, HarnessTaskConfig]:
    """The ``lm-eval`` block of an experiment as one config per harness task, keyed ``lm-eval:<task>``.

    ``resolve_path`` maps a data path as written (relative to the experiment, ``samples:…``) to the path read.

    Raises:
        ConfigError: an unknown option, task or data key, or a bad value (every problem of the block at once).
    """
    if not isinstance(options, Mapping):
        raise ConfigError("tasks.lm-eval must be a mapping with `tasks: [harness task, ...]`")
    problems = []
    unknown = sorted(set(options) - set(BLOCK_OPTIONS))
    if unknown:
        problems.append(f"unknown option(s) {', '.join(unknown)}; valid options: {', '.join(BLOCK_OPTIONS)}")
    names = options.get("tasks")
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError("tasks.lm-eval.tasks must be a non-empty list of harness task names")
    data = dict(options.get("data") or {})
    languages = dict(options.get("languages") or {})
    for key, what in ((data, "data"), (languages, "languages")):
        stray = sorted(set(key) - set(names))
        if stray:
            problems.append(f"tasks.lm-eval.{what} names {', '.join(stray)}, not in tasks.lm-eval.tasks")
    shared = {k: options.get(k) for k in ("limit", "num_fewshot") if options.get(k) is not None}
    shared["batch_size"] = options.get("batch_size", 8)
    shared["bootstrap_samples"] = options.get("bootstrap_samples", 1000)
    for option, low in (("limit", 1), ("num_fewshot", 0), ("batch_size", 1), ("bootstrap_samples", 0)):
        try:
            check_int(f"tasks.lm-eval.{option}", shared.get(option), low, allow_none=True)
        except ConfigError as exc:
            problems.append(str(exc))
    configs = {}
    for name in dict.fromkeys(names):
        try:
            definition = task_definition(name)
            configs[f"{PREFIX}{name}"] = HarnessTaskConfig(
                harness_task=name,
                languages=(str(languages.get(name) or task_language(name)),),
                path=resolve_path(str(data[name])) if name in data else None,
                metrics=per_example_metrics(name, definition),
                split=eval_split(definition),
                **shared,
            )
        except ConfigError as exc:
            problems.append(str(exc).removeprefix("lm-eval: "))
    if problems:
        raise ConfigError("tasks.lm-eval: " + "; ".join(problems))
    return configs


# --------------------------------------------------------------------------------------------------
# The task
# --------------------------------------------------------------------------------------------------


class HarnessTask(Task):
    """One lm-evaluation-harness task, scored by the harness's engine, with tli's rows and intervals."""

    config_class = HarnessTaskConfig
    trainable = False

    def __init__(self, harness_task: str, aggregations: Mapping[str, Callable[[list], float] | None]) -> None:
        self.harness_task = harness_task
        self.name = f"{PREFIX}{harness_task}"  # type: ignore[misc]
        self.aggregations = dict(aggregations)
        """Metric → None (the mean of per-example scores) or the harness's corpus aggregation of the items."""
        self.metrics = tuple(aggregations)  # type: ignore[misc]
        # a mean metric's rows hold its per-example score, so the paired tests resample that column
        self.mean_metrics = {m: m for m, agg in aggregations.items() if agg is None}  # type: ignore[misc]

    def load(self, path: Any, language: str, *, split: str = "test", limit: int | None = None) -> list[Any]:
        """A local file's documents, checked against the task's fields (the hub's are read when scored: [])."""
        if path is None:
            return []
        config = HarnessTaskConfig(harness_task=self.harness_task, path=str(path), limit=limit)
        with quiet_harness():
            task = build_task(config)
            check_documents(task, config)
            docs = list(task.eval_docs)
        return docs[:limit] if limit is not None else docs

    def available_languages(self, path: Any) -> list[str]:
        return []  # a harness task has one language, from its name

    def evaluate(
        self,
        model: Any,
        tokenizer: Any,
        examples: Sequence[Any],
        config: Any,
        *,
        progress: bool | None = None,
    ) -> TaskResult:
        """Score ``model`` with ``lm_eval.simple_evaluate`` and turn its per-example records into rows.

        Under ``tli compare``'s launcher (:func:`tli.distributed.evaluation_context`) the harness's own data
        parallelism splits the documents (:func:`run_harness`); its rank 0 holds the records, builds the result
        from them and sends it (or why it could not) to every process.
        """
        context = evaluation_context()
        output = run_harness(model, tokenizer, config, context)
        outcome: tuple[TaskResult | None, str | None] = (None, None)
        if output is not None:
            try:
                outcome = (self.result_from_output(output, config), None)
            # sent on to the other processes, which would otherwise wait for a result forever
            except (TliError, LookupError, ValueError, AssertionError) as exc:
                outcome = (None, f"{config.harness_task}: {exc}")
        result, error = context.main_value(outcome)
        if error is not None:
            raise TaskDataError(error)
        return result

    def result_from_output(self, output: Mapping[str, Any], config: HarnessTaskConfig) -> TaskResult:
        """The cell's result from ``simple_evaluate``'s output: rows from its samples, the harness's corpus
        figures (checked against the rows) with bootstrap intervals over the rows."""
        rows = rows_from_samples(output["samples"][config.harness_task], config.metrics)
        reported = output["results"][config.harness_task]
        metrics = {}
        for i, metric in enumerate(config.metrics):
            harness = float(reported[metric if "," in metric else f"{metric},none"])
            # the harness's figure is its aggregation of the per-example items: the rows reproduce it
            ours = self.corpus_score(metric, rows)
            assert abs(harness - ours) < 1e-9 or (np.isnan(harness) and np.isnan(ours)), (
                metric,
                harness,
                ours,
            )
            low, high = bootstrap_ci(
                lambda idx, m=metric: self.corpus_score(m, [rows[j] for j in idx]),
                len(rows),
                n_resamples=config.bootstrap_samples,
                seed=i,
            )
            metrics[metric] = MetricScore(harness, low, high)
        return TaskResult(task=self.name, language=config.languages[0], n=len(rows), metrics=metrics,
                          predictions=rows)  # fmt: skip

    def corpus_score(self, metric: str, rows: Sequence[Mapping[str, Any]], config: Any = None) -> float:
        """The harness's aggregation of the rows' items: ``(1/n) Σ_i m_i`` for a mean metric, else its corpus
        function (e.g. weighted F1 of the ``(gold, prediction)`` pairs, BLEU of the ``(reference, output)``
        pairs) on the rows given — any resample of them."""
        self._check_metric(metric)
        aggregation = self.aggregations[metric]
        if aggregation is None:
            return float(np.mean([float(row[metric]) for row in rows]))
        return float(aggregation([_item(row[metric]) for row in rows]))


def run_harness(
    model: Any, tokenizer: Any, config: HarnessTaskConfig, context: DistributedContext | None = None
) -> dict[str, Any] | None:
    """``lm_eval.simple_evaluate`` on one task with the in-memory model as the harness's ``HFLM`` (the
    model's own device, the block's batch size, the harness's default seeds).

    With ``context`` of several processes whose model is not sharded (DDP: each holds all of it), the ``HFLM`` is
    told its rank and world size, so the harness scores each process's share of the documents (padded to equal
    request counts) and gathers the records on rank 0. A sharded model (FSDP, ZeRO-3) needs every process in
    every forward, so there each scores every document. Either way only rank 0 gets the output (None elsewhere:
    the harness returns results where its rank and ``LOCAL_RANK`` are both 0).
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    task = build_task(config)
    harness = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=config.batch_size)
    if context is not None and context.world_size > 1 and not context.sharded:
        # HFLM takes an in-memory model as one process; these are the attributes its own launch would set
        harness._rank, harness._world_size = context.rank, context.world_size
        harness.accelerator = context.accelerator
    output = lm_eval.simple_evaluate(
        model=harness,
        tasks=[task],
        num_fewshot=config.num_fewshot,
        limit=config.limit,
        log_samples=True,
        bootstrap_iters=0,  # tli computes the intervals from the rows
    )
    return output if context is None or context.is_main else None


def rows_from_samples(samples: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per document from the harness's per-example records (one record per document and filter):
    ``{"id", "prediction", "reference", <metric>: score…}`` in document order.

    ``prediction`` is the chosen choice's index for a likelihood task (the argmax of the filtered
    log-likelihoods), else the filtered generation; ``reference`` is the harness's target.
    """
    by_doc: dict[int, dict[str, Any]] = {}
    for sample in samples:
        row = by_doc.setdefault(
            int(sample["doc_id"]), {"id": str(sample["doc_id"]), "reference": _plain(sample.get("target"))}
        )
        suffix = "" if sample.get("filter", "none") == "none" else f",{sample['filter']}"
        for metric in metrics:
            base, _, filter_name = metric.partition(",")
            if (filter_name or "none") == sample.get("filter", "none") and base in sample:
                value = sample[base]
                # a score (mean metrics) as a float; a corpus metric's item (gold, prediction) as written
                row[metric] = float(value) if isinstance(value, (int, float, np.number)) else _plain(value)
        row.setdefault("prediction", _prediction(sample.get("filtered_resps")))
        if suffix:
            row[f"prediction{suffix}"] = _prediction(sample.get("filtered_resps"))
    return [by_doc[doc] for doc in sorted(by_doc)]


def _prediction(responses: Any) -> Any:
    if not responses:
        return None
    first = responses[0]
    if isinstance(first, (list, tuple)) and first and isinstance(first[0], (int, float)):
        return int(np.argmax([float(r[0]) for r in responses]))  # (loglik, is_greedy) per choice
    return _plain(first)


def _item(value: Any) -> Any:
    """A corpus metric's per-example item as the harness made it: JSON stored its tuples as lists."""
    return tuple(value) if isinstance(value, list) else value


def _plain(value: Any) -> Any:
    """A JSON-writable copy of a harness value."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


@cache
def harness_task(name: str) -> HarnessTask:
    """The tli task of harness task ``name`` (its metrics read from the harness's definition)."""
    return HarnessTask(name, metric_aggregations(name, task_definition(name)))
