"""Downstream checks of one model state through the tasks ``tli compare`` scores: per-example rows.

Retrieval on the shipped Mr. TyDi (Swahili) and XQuAD (German→English) samples with pooled hidden states (the
``retrieval-demo`` experiment's settings), and zero-shot XNLI (Swahili) by log-likelihood of the three choices.
"""

from __future__ import annotations

from typing import Any

from tli.tasks import SAMPLES_DIR, get_task

DOWNSTREAM = {
    "mrtydi": {"language": "sw", "metric": "mrr@100"},
    "xquad": {"language": "de-en", "metric": "mrr@100"},
    "xnli": {"language": "sw", "metric": "correct"},
}
"""Task → its language and the per-example metric the ablation tests."""

RETRIEVAL_OPTIONS = {"layer": "middle", "pooling": "mean-no-special", "center": True, "cache": False}
"""The ``retrieval-demo`` experiment's dense-retrieval settings (no embedding cache: each model state differs)."""


def task_rows(loaded: Any, task_name: str, *, progress: bool | None = False) -> list[dict[str, Any]]:
    """Per-example rows (``id`` and the task's per-example metrics) of ``loaded``'s current state."""
    task = get_task(task_name)
    language = DOWNSTREAM[task_name]["language"]
    path = {
        "mrtydi": SAMPLES_DIR / "mrtydi",
        "xquad": SAMPLES_DIR / "xquad",
        "xnli": SAMPLES_DIR / "xnli" / "xnli.test.tsv",
    }[task_name]
    options = {"path": str(path), "languages": [language]}
    if task_name != "xnli":
        options |= RETRIEVAL_OPTIONS
    config = task.make_config(options)
    examples = (
        task.load(str(path), language, config=config)
        if task_name != "xnli"
        else task.load(str(path), language)
    )
    loaded.model.eval()
    result = task.evaluate(loaded.model, loaded.tokenizer, examples, config, progress=progress)
    metric = DOWNSTREAM[task_name]["metric"]
    return [{"id": str(row["id"]), metric: float(row[metric])} for row in result.predictions]


def downstream_rows(loaded: Any, *, progress: bool | None = False) -> dict[str, list[dict[str, Any]]]:
    """Every downstream task's rows for the model state ``loaded`` holds now."""
    return {name: task_rows(loaded, name, progress=progress) for name in DOWNSTREAM}
