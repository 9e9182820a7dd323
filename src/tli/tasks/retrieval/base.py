"""What every retrieval task shares: options, dense evaluation with a causal LM, scores, results.

A retrieval task loads a :class:`~tli.retrieval.data.RetrievalData` (queries, corpus, qrels) and scores a
model by **zero-shot dense retrieval**: queries and passages are embedded by the model's pooled hidden
states at ``layer`` (the scan's pooling recipes, optional prompt templates per side), every passage is
ranked for every query by cosine similarity (exact top-``depth``, chunked, cached), and the run is scored by
ranx. The same pass gives the **per-layer curve** (MRR@10 at every layer of ``layer_curve``): one batched
forward returns every layer.

Results are :class:`RetrievalResult`: a :class:`~tli.tasks.base.TaskResult` whose rows are queries (every
metric per query, so paired tests resample queries) plus the TREC run, the qrels and the details (recipe,
layer, curve, passages that could not be scored). BM25, fusion and trained bi-encoders produce the same
result type through :func:`score_ranking`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tli.embed import EmbedConfig, bos_record
from tli.errors import ConfigError
from tli.models import base_causal_lm, input_device
from tli.pooling import ADD_BOS, DEFAULT_POOLING, POOLINGS
from tli.retrieval import rank  # called as rank.X, so tests can replace a system
from tli.retrieval.data import RetrievalData
from tli.retrieval.encode import DenseRecipe, LLMEncoder, check_template, model_state_fingerprint
from tli.retrieval.rank import Ranking
from tli.retrieval.ranking_metrics import METRICS, per_query
from tli.retrieval.search import BACKENDS
from tli.tasks.base import MetricScore, Task, TaskResult, bootstrap_ci, check_int, check_languages
from tli.tasks.sources import normalise_split

LAYER_WORDS = ("middle", "last")


@dataclass
class RetrievalConfig:
    """Options shared by the retrieval tasks (YAML ``tasks: {xquad|tydi|mrtydi: {...}}``)."""

    path: str | None = None
    """Data file or folder in the dataset's official format (null: the samples shipped with tli)."""
    languages: tuple[str, ...] = ("sw",)
    """Languages to evaluate (XQuAD: ``de-en`` = German queries, English passages; ``en`` = ``en-en``)."""
    split: str = "test"
    """Split: test, validation (dev) or train."""
    limit: int | None = None
    """Evaluate only the first N queries (file order) against the whole corpus; null for all."""
    layer: int | str = "middle"
    """Hidden-state index whose pooled states rank passages: a number (0 = input embeddings, N = final),
    ``middle`` (N // 2) or ``last`` (N)."""
    pooling: str = DEFAULT_POOLING
    """mean-no-special (default, as every tli command) | mean | last (the scan's recipes; ``last`` with a
    template = prompt + last token)."""
    center: bool = False
    """Subtract each side's mean vector at the layer before cosine (removes the shared decoder direction)."""
    query_template: str | None = None
    """Prompt around queries with a ``{text}`` slot, e.g. 'This question: "{text}" means in one word: "'."""
    passage_template: str | None = None
    """Prompt around passages with a ``{text}`` slot."""
    add_bos: str = "auto"
    """auto | always | never: the start token before each text (see ``tli scan --add-bos``)."""
    bos_token: str | None = None
    """The start token to prepend instead of the document separator."""
    max_query_tokens: int = 64
    """Queries are cut to this many tokens."""
    max_passage_tokens: int = 256
    """Passages are cut to this many tokens."""
    batch_size: int = 16
    """Texts per forward pass."""
    with_title: bool = True
    """Put the passage title (where the format has one) on the line before its text."""
    layer_curve: bool | list[int] = True
    """MRR@10 at every layer (true), at the listed layers, or not at all (false); costs memory and cache
    space per layer, not forward passes."""
    depth: int = 100
    """Passages retrieved per query (the run's depth; recall@100 needs 100)."""
    cache: bool | str = True
    """On-disk embedding cache: true (tli's cache folder), a folder, or false (memory only)."""
    chunk_size: int = 1024
    """Passages encoded, cached and searched per chunk (bounds memory)."""
    search: str = "torch"
    """torch (chunked exact top-k, ties by passage order) | faiss (IndexFlatIP; needs faiss installed)."""
    compare_metrics: tuple[str, ...] = ("mrr@10",)
    """Metrics of the paired comparisons between systems (every metric is reported; each compared metric
    multiplies the comparisons the multiple-testing correction covers)."""
    bootstrap_samples: int = 1000
    """Bootstrap resamples (over queries) of each metric's 95 % CI."""
    seed: int = 0
    """Seed of the bootstrap."""

    task_name: ClassVar[str] = "retrieval"

    def __post_init__(self) -> None:
        name = f"tasks.{self.task_name}"
        if self.path is not None and (not isinstance(self.path, (str, Path)) or not str(self.path).strip()):
            raise ConfigError(f"{name}.path must be a file or folder (or null), got {self.path!r}")
        self.path = None if self.path is None else str(self.path)
        self.languages = check_languages(f"{name}.languages", self.languages)
        try:
            self.split = normalise_split(self.split)
        except ConfigError as exc:
            raise ConfigError(f"{name}.split: {exc}") from exc
        check_int(f"{name}.limit", self.limit, 1, allow_none=True)
        if isinstance(self.layer, str):
            if self.layer not in LAYER_WORDS:
                raise ConfigError(f"{name}.layer {self.layer!r} must be a number, middle or last")
        else:
            check_int(f"{name}.layer", self.layer, 0)
        for option, values in (("pooling", POOLINGS), ("add_bos", ADD_BOS), ("search", BACKENDS)):
            if getattr(self, option) not in values:
                raise ConfigError(
                    f"{name}.{option} {getattr(self, option)!r} is not one of {', '.join(values)}"
                )
        check_template(f"{name}.query_template", self.query_template)
        check_template(f"{name}.passage_template", self.passage_template)
        for option, low in (
            ("max_query_tokens", 1),
            ("max_passage_tokens", 1),
            ("batch_size", 1),
            ("depth", 1),
            ("chunk_size", 1),
            ("bootstrap_samples", 1),
            ("seed", 0),
        ):
            check_int(f"{name}.{option}", getattr(self, option), low)
        if not isinstance(self.layer_curve, bool):
            if not isinstance(self.layer_curve, (list, tuple)) or not self.layer_curve:
                raise ConfigError(f"{name}.layer_curve must be true, false or a list of layers")
            for value in self.layer_curve:
                check_int(f"{name}.layer_curve", value, 0)
            self.layer_curve = sorted(set(self.layer_curve))
        self.compare_metrics = tuple(
            [self.compare_metrics] if isinstance(self.compare_metrics, str) else self.compare_metrics
        )
        unknown = [m for m in self.compare_metrics if m not in METRICS]
        if unknown or not self.compare_metrics:
            raise ConfigError(
                f"{name}.compare_metrics: {unknown or 'none'}; choose from {', '.join(METRICS)}"
            )


def resolve_layer(layer: int | str, n_layers: int, option: str = "layer") -> int:
    """A hidden-state index from ``layer`` for a model with ``n_layers`` blocks (indices 0..n_layers).

    Raises:
        ConfigError: a number beyond the model.
    """
    if layer == "middle":
        return n_layers // 2
    if layer == "last":
        return n_layers
    if not 0 <= int(layer) <= n_layers:
        raise ConfigError(f"{option} {layer} is beyond the model: hidden-state indices run 0..{n_layers}")
    return int(layer)


def curve_layers(option: bool | list[int], n_layers: int) -> tuple[int, ...]:
    """The layers of the per-layer curve (``True``: all ``0..n_layers``; ``False``: none)."""
    if option is True:
        return tuple(range(n_layers + 1))
    if option is False:
        return ()
    return tuple(resolve_layer(v, n_layers, "layer_curve") for v in option)


@dataclass
class RetrievalResult(TaskResult):
    """A retrieval cell's scores, per-query rows, TREC run and qrels, and details.

    Attributes:
        run: ``{query id: {passage id: score}}``, tie-free, ``depth`` passages per query.
        qrels: The judgements it was scored against.
        details: How the run was made (system, recipe, layer, curve, passages not scored, timings).
    """

    run: dict[str, dict[str, float]] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "details": self.details}


def first_relevant_rank(run: Mapping[str, float], relevant: set[str]) -> int | None:
    """1-based rank of the first relevant passage in a (tie-free) run, or None when none was retrieved."""
    ordered = sorted(run.items(), key=lambda item: (-item[1], item[0]))
    return next((rank for rank, (doc, _) in enumerate(ordered, start=1) if doc in relevant), None)


def score_ranking(
    task: str,
    data: RetrievalData,
    ranking: Ranking,
    *,
    bootstrap_samples: int = 1000,
    seed: int = 0,
) -> RetrievalResult:
    """Score a run with ranx: every metric per query (rows) and over the query set, with a bootstrap CI.

    Each metric's CI is the percentile bootstrap of the mean over queries
    (:func:`tli.tasks.base.bootstrap_ci`).
    """
    scores = per_query(data.qrels, ranking.run, METRICS)
    rows = []
    for query in data.queries:
        relevant = data.relevant(query.id)
        results = ranking.run.get(query.id, {})
        top = min(results.items(), key=lambda item: (-item[1], item[0]))[0] if results else None
        rows.append(
            {
                "id": query.id,
                "prediction": top,
                "reference": relevant,
                "first_relevant_rank": first_relevant_rank(results, set(relevant)),
                **{m: scores[m][query.id] for m in METRICS},
            }
        )
    metrics = {}
    for metric in METRICS:
        column = np.array([row[metric] for row in rows], dtype=float)
        low, high = bootstrap_ci(
            lambda idx, c=column: float(c[idx].mean()), len(column), n_resamples=bootstrap_samples, seed=seed
        )
        metrics[metric] = MetricScore(float(column.mean()), low, high)
    return RetrievalResult(
        task=task,
        language=data.language,
        n=len(rows),
        metrics=metrics,
        predictions=rows,
        run=ranking.run,
        qrels=data.qrels,
        details={"data": data.describe(), **ranking.details},
    )


class RetrievalTask(Task):
    """A retrieval task: subclasses read their format (:meth:`load_data`) and list their languages."""

    metrics = METRICS
    config_class = RetrievalConfig
    trainable = False
    mean_metrics = {m: m for m in METRICS}
    primary_metric: ClassVar[str] = "mrr@10"
    """The metric of research-question claims and the score-vs-cost plot."""

    def load(
        self, path: Any, language: str, *, split: str = "test", limit: int | None = None, config: Any = None
    ) -> RetrievalData:
        """The queries, corpus and qrels of ``language`` (first ``limit`` queries against the whole corpus).

        ``config`` (the task's config) carries format options some tasks need (Mr. TyDi's explicit files).

        Raises:
            TaskDataError: unreadable data, a bad row (file, line, field), unknown ids in qrels, duplicate or
                empty passage ids, a query set without relevant passages, or a language the data lacks.
        """
        check_int(f"tasks.{self.name}.limit", limit, 1, allow_none=True)
        return self.load_data(path, language, normalise_split(split), config).limited(limit)

    def load_data(self, path: Any, language: str, split: str, config: Any = None) -> RetrievalData:
        """Read the data of one language and split (subclasses)."""
        raise NotImplementedError

    def evaluate(
        self,
        model: Any,
        tokenizer: Any,
        examples: Sequence[Any],
        config: RetrievalConfig,
        *,
        progress: bool | None = None,
    ) -> RetrievalResult:
        """Zero-shot dense retrieval with ``model``'s pooled hidden states (see the module docstring)."""
        if not isinstance(examples, RetrievalData):
            raise ConfigError(f"{self.name}: evaluate needs the RetrievalData that load() returns")
        n_layers = int(base_causal_lm(model).config.num_hidden_layers)
        layer = resolve_layer(config.layer, n_layers, f"tasks.{self.name}.layer")
        curve = curve_layers(config.layer_curve, n_layers)
        recipe = DenseRecipe(
            layers=tuple(sorted({layer, *curve})),
            pooling=config.pooling,
            query_template=config.query_template,
            passage_template=config.passage_template,
            add_bos=config.add_bos,
            bos_token=config.bos_token,
            max_query_tokens=config.max_query_tokens,
            max_passage_tokens=config.max_passage_tokens,
            batch_size=config.batch_size,
        )
        name = getattr(base_causal_lm(model).config, "_name_or_path", "")
        encoder = LLMEncoder(model, tokenizer, recipe, model_state_fingerprint(model, {"name": name}))
        device = input_device(model)
        ranking, values = rank.dense_ranking(
            encoder,
            examples,
            layer=layer,
            curve_layers=curve,
            depth=config.depth,
            center=config.center,
            with_title=config.with_title,
            cache=config.cache,
            chunk_size=config.chunk_size,
            backend=config.search,
            device=str(device),
            progress=progress,
        )
        embed = EmbedConfig(pooling=config.pooling, add_bos=config.add_bos, bos_token=config.bos_token)
        ranking.details["recipe"] = {
            **recipe.to_dict(),
            **bos_record(tokenizer, embed),
            "center": config.center,
        }
        ranking.details["layer_curve"] = {str(k): v for k, v in values.items()}
        ranking.details["layers"] = n_layers
        return score_ranking(
            self.name, examples, ranking, bootstrap_samples=config.bootstrap_samples, seed=config.seed
        )

    def corpus_score(self, metric: str, rows: Sequence[Mapping[str, Any]], config: Any = None) -> float:
        """The mean of the rows' per-query ``metric`` (every retrieval metric is a mean over queries).

        Raises:
            ConfigError: an unknown metric or no rows.
        """
        self._check_metric(metric)
        if not rows:
            raise ConfigError(f"{self.name}: corpus_score needs at least one row")
        return float(np.mean([row[metric] for row in rows]))

    def training_features(
        self, examples: Sequence[Any], tokenizer: Any, config: Any
    ) -> list[dict[str, list[int]]]:
        """Retrieval tasks measure zero-shot retrieval; strategies fine-tune on another task.

        Raises:
            ConfigError: always.
        """
        raise ConfigError(
            f"task {self.name} is evaluation-only in tli compare (zero-shot retrieval): fine-tune on a task "
            "with training data (train: {task: xlsum, language: sw, path: ...}); dense retrievers are "
            "trained by retrieval.dense_retriever"
        )
