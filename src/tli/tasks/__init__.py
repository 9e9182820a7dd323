"""Downstream tasks that ``tli compare`` fine-tunes on and scores strategies with.

Each task is a :class:`~tli.tasks.base.Task` with a config dataclass, a loader for the dataset's official
format (and its hub id when online), optional fine-tuning features, an ``evaluate`` that returns a
:class:`~tli.tasks.base.TaskResult` with per-example rows, and ``corpus_score`` for paired resampling tests.

- ``xlsum``: XL-Sum summarisation (ROUGE-1/2/L, BLEU, chrF), :mod:`tli.tasks.xlsum`;
- ``xnli``: XNLI zero-shot NLI by lm-eval 0.4.13's label log-likelihood (accuracy, macro-F1),
  :mod:`tli.tasks.xnli`;
- ``xquad``, ``tydi``, ``mrtydi``: passage retrieval (Recall@k, MRR@k, nDCG@10 from ranx),
  :mod:`tli.tasks.retrieval`;
- ``lm-eval:<harness task>``: any lm-evaluation-harness task scored by the harness itself (``acc``,
  ``acc_norm``, ``exact_match``, …), :mod:`tli.tasks.harness`.

Usage::

    from tli.tasks import get_task
    task = get_task("xlsum")
    config = task.make_config({"languages": ["sw"], "max_new_tokens": 64})   # path null: shipped samples
    examples = task.load(config.path, "sw", split=config.split, limit=config.limit)
    result = task.evaluate(loaded.model, loaded.tokenizer, examples, config)
"""

from __future__ import annotations

from tli.errors import ConfigError
from tli.tasks.base import IGNORE_INDEX, MetricScore, Task, TaskDataError, TaskResult, bootstrap_ci
from tli.tasks.harness import PREFIX as HARNESS_PREFIX
from tli.tasks.harness import harness_task
from tli.tasks.retrieval import MrTyDiTask, RetrievalTask, TyDiTask, XQuADTask
from tli.tasks.sources import SAMPLES_DIR, samples_dir
from tli.tasks.xlsum import SummaryExample, XLSumConfig, XLSumTask
from tli.tasks.xnli import NLIExample, XNLIConfig, XNLITask

TASKS: dict[str, Task] = {
    "xlsum": XLSumTask(),
    "xnli": XNLITask(),
    "xquad": XQuADTask(),
    "tydi": TyDiTask(),
    "mrtydi": MrTyDiTask(),
}
"""Task name → task."""


def is_retrieval(name: str) -> bool:
    """Whether the task called ``name`` is a retrieval task (its cells carry a ``system``)."""
    return isinstance(TASKS.get(name), RetrievalTask)


def get_task(name: str) -> Task:
    """The registered task called ``name``, or the harness task ``lm-eval:<harness task>``.

    Raises:
        ConfigError: an unknown name (the message lists the valid ones).
    """
    if name.startswith(HARNESS_PREFIX):
        return harness_task(name.removeprefix(HARNESS_PREFIX))
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


__all__ = [
    "IGNORE_INDEX",
    "SAMPLES_DIR",
    "TASKS",
    "MetricScore",
    "NLIExample",
    "SummaryExample",
    "Task",
    "TaskDataError",
    "TaskResult",
    "XLSumConfig",
    "XLSumTask",
    "XNLIConfig",
    "XNLITask",
    "bootstrap_ci",
    "get_task",
    "is_retrieval",
    "samples_dir",
]
