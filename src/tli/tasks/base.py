"""What every downstream task shares: scores with confidence intervals, results, the :class:`Task` interface.

A task turns a data source (a local file or folder in the dataset's official format, a hub id when online, or
the samples shipped with tli) into examples, optionally into fine-tuning features, and scores a model on them.
Results keep one row per example (``predictions``) so that a harness can compare two models with paired tests
(paired bootstrap, approximate randomisation) by resampling rows and calling :meth:`Task.corpus_score` on each
resample: the corpus score of a metric is always a function of the rows alone.

Nothing here assumes a task generates text: generation tasks (XL-Sum), likelihood tasks (XNLI) and retrieval
tasks implement the same five methods.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from tli.errors import ConfigError, DataError
from tli.stats import bootstrap_ci as stats_bootstrap_ci

CONFIDENCE = 0.95
IGNORE_INDEX = -100
"""Label of prompt tokens in fine-tuning features: PyTorch's cross-entropy ignores it, so only the answer
contributes to the loss."""


class TaskDataError(DataError):
    """A task's data file, folder or hub dataset that cannot be read (the message names the file, the line
    and the missing or bad field, or the languages and splits that exist)."""


@dataclass(frozen=True)
class MetricScore:
    """A corpus-level score with its 95 % confidence interval (NaN bounds when fewer than 2 examples)."""

    score: float
    ci95_low: float
    ci95_high: float
    signature: str | None = None
    """How the score was computed, where a library defines it (sacrebleu's signature for BLEU and chrF)."""

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        if record["signature"] is None:
            del record["signature"]
        return record


@dataclass
class TaskResult:
    """One model scored on one task in one language.

    Attributes:
        task: Task name (``xlsum``, ``xnli``, ...).
        language: Language code of the examples (``sw``).
        n: Number of examples scored.
        metrics: Corpus score and CI per metric name, in the task's ``metrics`` order.
        predictions: One row per example, in the order of the examples:
            ``{"id", "prediction", "reference", <metric>: per-example score, ...}`` plus task-specific fields.
    """

    task: str
    language: str
    n: int
    metrics: dict[str, MetricScore]
    predictions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "language": self.language,
            "n": self.n,
            "metrics": {name: score.to_dict() for name, score in self.metrics.items()},
            "predictions": [dict(row) for row in self.predictions],
        }


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    n_resamples: int,
    seed: int,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a corpus statistic over ``n`` examples: tli's one bootstrap,
    :func:`tli.stats.bootstrap_ci`, seeded with ``seed``, and ``(nan, nan)`` below 2 examples.

    Draws ``n_resamples`` index vectors ``I_b`` of length ``n`` uniformly with replacement from ``0..n-1``
    (``numpy.random.default_rng(seed)``), evaluates ``s_b = statistic(I_b)`` and returns the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of ``{s_b}``. ``statistic`` recomputes
    the whole corpus score on the resampled examples (for corpus BLEU: the BLEU of the resampled corpus,
    not a mean of sentence scores).

    Args:
        statistic: Maps an index array of shape ``(n,)`` to a float.
        n: Number of examples; fewer than 2 gives ``(nan, nan)`` (no spread to estimate).
        n_resamples: Number of bootstrap resamples ``B``.
        seed: Seed of the resampling.
        confidence: Two-sided confidence level.
    """
    if n < 2:
        return float("nan"), float("nan")
    return stats_bootstrap_ci(statistic, n, n_resamples=n_resamples, rng=seed, confidence=confidence)


class Task(ABC):
    """A downstream task: data loading, optional fine-tuning features, evaluation and corpus scores.

    Subclasses set the class attributes and implement the abstract methods. Instances are stateless; the
    registry in :mod:`tli.tasks` holds one of each.
    """

    name: ClassVar[str]
    """Registry key and the ``task`` field of results."""
    metrics: ClassVar[tuple[str, ...]]
    """Metric names reported by :meth:`evaluate` and accepted by :meth:`corpus_score`."""
    config_class: ClassVar[type]
    """The task's options dataclass (YAML ``tasks: {<name>: {...}}`` maps onto it)."""
    trainable: ClassVar[bool] = True
    """Whether :meth:`training_features` can build fine-tuning data for this task."""
    mean_metrics: ClassVar[dict[str, str]] = {}
    """Metrics whose corpus score is the plain mean of a per-row field: metric name → row key (paired tests
    can resample that column directly); the others need :meth:`corpus_score` on every resample."""
    statistic_metrics: ClassVar[tuple[str, ...]] = ()
    """Corpus metrics that :meth:`corpus_statistics` gives per-example sufficient statistics for (paired tests
    then resample by summing statistics instead of rescoring text)."""

    def make_config(self, options: Mapping[str, Any] | None = None) -> Any:
        """The task's config from a mapping (a YAML ``tasks.<name>`` block); unknown keys are rejected.

        Raises:
            ConfigError: an unknown option (the message lists the valid ones) or an invalid value.
        """
        options = dict(options or {})
        valid = [f.name for f in dataclasses.fields(self.config_class)]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ConfigError(
                f"tasks.{self.name}: unknown option(s) {', '.join(unknown)}; "
                f"valid options: {', '.join(valid)}"
            )
        return self.config_class(**options)

    @abstractmethod
    def load(self, path: Any, language: str, *, split: str = "test", limit: int | None = None) -> list[Any]:
        """Examples of ``language`` from ``path`` (file or folder, hub id, or None for the shipped samples).

        Raises:
            TaskDataError: the data cannot be read, lacks a field, or lacks the language or split.
        """

    @abstractmethod
    def available_languages(self, path: Any) -> list[str]:
        """Language codes the data at ``path`` holds (empty when a single file does not say)."""

    def training_features(
        self, examples: Sequence[Any], tokenizer: Any, config: Any
    ) -> list[dict[str, list[int]]]:
        """Causal-LM fine-tuning features ``{"input_ids", "labels"}``, labels ``-100`` on prompt tokens.

        Raises:
            ConfigError: the task has no training data (``trainable`` is False).
        """
        raise ConfigError(f"task {self.name} has no fine-tuning data in tli: it is evaluation-only")

    @abstractmethod
    def evaluate(
        self,
        model: Any,
        tokenizer: Any,
        examples: Sequence[Any],
        config: Any,
        *,
        progress: bool | None = None,
    ) -> TaskResult:
        """Score ``model`` on ``examples`` (one language); ``progress`` shows a tqdm bar (None: on a TTY)."""

    @abstractmethod
    def corpus_score(self, metric: str, rows: Sequence[Mapping[str, Any]], config: Any = None) -> float:
        """Recompute ``metric`` from prediction rows (any resample of :attr:`TaskResult.predictions`).

        ``config`` is the task config the rows were produced with, for metrics that have options (XL-Sum's
        BLEU tokenizer); None uses the defaults. ``corpus_score(m, result.predictions, config)`` equals
        ``result.metrics[m].score``.
        """

    def corpus_statistics(self, metric: str, rows: Sequence[Mapping[str, Any]], config: Any = None) -> Any:
        """Per-example sufficient statistics of a corpus metric in :attr:`statistic_metrics`: an object with
        ``stats`` ``(n, j)`` and ``score_sum(summed)`` such that ``score_sum(stats.sum(axis=0))`` equals
        :meth:`corpus_score` on the same rows, so a resample's score is the score of its summed statistics.

        Raises:
            ConfigError: a metric without sufficient statistics.
        """
        raise ConfigError(f"task {self.name}: metric {metric!r} has no per-example sufficient statistics")

    def _check_metric(self, metric: str) -> None:
        if metric not in self.metrics:
            raise ConfigError(f"task {self.name} has no metric {metric!r}; it has {', '.join(self.metrics)}")


def check_examples(task: str, examples: Sequence[Any]) -> str:
    """The single language of ``examples``.

    Raises:
        ConfigError: no examples, or examples of several languages (evaluate one language at a time).
    """
    if not examples:
        raise ConfigError(f"{task}: no examples to evaluate (check the data path, language and limit)")
    languages = sorted({example.language for example in examples})
    if len(languages) > 1:
        raise ConfigError(f"{task}: evaluate one language at a time, got {', '.join(languages)}")
    return languages[0]


def check_int(option: str, value: Any, low: int, *, allow_none: bool = False) -> None:
    """Raise ConfigError unless ``value`` is a whole number ``>= low`` (or None when allowed)."""
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        extra = " (or null for no limit)" if allow_none else ""
        raise ConfigError(f"{option} must be a whole number >= {low}{extra}, got {value!r}")


def check_languages(option: str, value: Any) -> tuple[str, ...]:
    """A non-empty list of language codes as a tuple (YAML gives lists; a single string is accepted)."""
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(
            f"{option} must be a non-empty list of language codes such as [sw, en], got {value!r}"
        )
    for language in value:
        if not isinstance(language, str) or not language.strip():
            raise ConfigError(f"{option}: {language!r} is not a language code (e.g. sw, en)")
    return tuple(language.strip() for language in value)
