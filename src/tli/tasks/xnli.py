"""XNLI cross-lingual natural language inference (Conneau et al., EMNLP 2018), zero-shot by label likelihood.

Data: the official XNLI 1.0 TSV (``xnli.test.tsv`` / ``xnli.dev.tsv``: a header with ``language``,
``gold_label`` = entailment / neutral / contradiction, ``sentence1``, ``sentence2``, ``pairID``, ...; all
15 languages in one file, read without quote processing since sentences contain quotes), the hub layout
(``premise``, ``hypothesis``, ``label`` = 0 / 1 / 2 for entailment / neutral / contradiction, optional ``id``
and ``language``) as JSON Lines or as the TSV / CSV ``datasets`` exports (``Dataset.to_csv(path, sep="\t")``;
without a ``language`` column every row is of the language asked for), a folder holding either, the hub id
``facebook/xnli`` (online only; configs are the language codes), or None for the samples shipped with tli.

Scoring follows lm-evaluation-harness **0.4.13** (the installed version; newer upstream versions changed the
template to a ``"{premise}, <question>?"`` context): its ``xnli_<lang>`` task has an empty context and three
full-sentence choices ``premise + ", <question>? <label word>, " + hypothesis`` with the label words of
:data:`TEMPLATE_WORDS` (copied from ``lm_eval/tasks/xnli/utils.py``), each scored as the continuation
``" " + choice`` (lm-eval's default target delimiter). The prediction is the choice with the highest total
log-likelihood (lm-eval's ``acc``); log-likelihoods are computed as lm-eval's HFLM does for an empty context
(:mod:`tli.tasks.loglikelihood`).

Why tli scores XNLI itself instead of calling lm-eval: the harness compares strategies with paired tests over
per-example scores, so it needs each example's three log-likelihoods and prediction from the model already in
memory (a PEFT model mid-comparison, a quantised model), in one batched pass, without lm-eval's task registry,
dataset download and output-directory machinery; lm-eval is also not a dependency of tli. That this scorer is
lm-eval's is not assumed but tested: ``tests/test_tasks_xnli.py`` runs lm-eval 0.4.13 offline on the same
data and model and checks the same accuracy, predictions and log-likelihoods.

Scores: ``accuracy`` with an exact (Clopper–Pearson) binomial 95 % CI, and ``macro_f1`` (scikit-learn, over all
three labels) with a bootstrap 95 % CI over examples.

Split: tli scores ``split: test`` (``xnli.test.tsv``, 5,010 pairs per language) by default;
lm-evaluation-harness's ``xnli_<lang>`` tasks score the *validation* split (2,490 pairs). Set
``split: validation`` to compare a figure with the harness's published numbers; a test-split figure is not
comparable with them.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tli.errors import ConfigError
from tli.tasks.base import (
    MetricScore,
    Task,
    TaskDataError,
    TaskResult,
    bootstrap_ci,
    check_examples,
    check_int,
    check_languages,
)
from tli.tasks.loglikelihood import continuation_logliks
from tli.tasks.sources import (
    apply_limit,
    check_unique_ids,
    id_field,
    load_hub_rows,
    normalise_split,
    read_jsonl,
    resolve_source,
    text_field,
)

LABELS = ("entailment", "neutral", "contradiction")
"""Label names in the hub's order: ``label`` 0, 1, 2."""
HUB_ID = "facebook/xnli"
LM_EVAL_VERSION = "0.4.13"
TARGET_DELIMITER = " "
"""lm-eval's default ``target_delimiter``, put before each choice."""

TEMPLATE_WORDS: dict[str, tuple[str, str, str, str]] = {
    "ar": ("صحيح", "نعم", "لذا", "رقم"),
    "bg": ("правилно", "да", "така", "не"),
    "de": ("richtig", "Ja", "Auch", "Nein"),
    "el": ("σωστός", "Ναί", "Έτσι", "όχι"),
    "en": ("right", "Yes", "Also", "No"),
    "es": ("correcto", "Sí", "Asi que", "No"),
    "fr": ("correct", "Oui", "Aussi", "Non"),
    "hi": ("सही", "हाँ", "इसलिए", "नहीं"),
    "ru": ("правильно", "Да", "Так", "Нет"),
    "sw": ("sahihi", "Ndiyo", "Hivyo", "Hapana"),
    "th": ("ถูกต้อง", "ใช่", "ดังนั้น", "ไม่"),
    "tr": ("doğru", "Evet", "Böylece", "Hayır"),
    "ur": ("صحیح", "جی ہاں", "اس لئے", "نہیں"),
    "vi": ("đúng", "Vâng", "Vì vậy", "Không"),
    "zh": ("正确", "是的", "所以", "不是的"),
}
"""``(question word, entailment word, neutral word, contradiction word)`` per language, copied verbatim from
lm-eval 0.4.13's ``lm_eval/tasks/xnli/utils.py`` (``LANGUAGES``), machine-translation oddities included (the
Arabic contradiction word means "number"), so scores stay comparable with lm-eval's."""

_TSV_COLUMNS = ("language", "gold_label", "sentence1", "sentence2", "pairID")
_HUB_COLUMNS = ("premise", "hypothesis", "label")
_TSV_FILES = {"test": "xnli.test.tsv", "validation": "xnli.dev.tsv"}
_JSONL_NEEDS = "premise, hypothesis, label (0/1/2)"
_JSONL_NAME_RE = re.compile(
    r"^(?:xnli[._-])?(?P<lang>[a-z]{2})(?:[._-](?P<split>train|validation|val|dev|test))?\.jsonl$"
)


@dataclass
class XNLIConfig:
    """Options of the XNLI task (YAML ``tasks: {xnli: {...}}``)."""

    path: str | None = None
    """Data: an XNLI 1.0 TSV, a hub-layout jsonl or TSV / CSV (``premise, hypothesis, label``, as ``datasets``
    exports it), a folder holding them, the hub id ``facebook/xnli`` (online only), or null for the samples
    shipped with tli."""
    languages: tuple[str, ...] = ("sw",)
    """Languages to evaluate: codes with an lm-eval 0.4.13 template (ar bg de el en es fr hi ru sw th tr ur vi
    zh)."""
    split: str = "test"
    """Evaluation split: ``test`` (``xnli.test.tsv``) or ``validation`` (``dev``, ``xnli.dev.tsv``)."""
    limit: int | None = None
    """Use only the first N examples of each language (file order); null for all."""
    batch_size: int = 16
    """Sequences per forward pass (three per example); memory grows with batch × length × vocabulary."""
    max_length: int | None = None
    """Input limit in tokens (longer inputs lose tokens on the left, as in lm-eval); null: the model's
    context length by lm-eval's rule."""
    bootstrap_samples: int = 1000
    """Bootstrap resamples for the macro-F1 confidence interval."""
    seed: int = 0
    """Seed of the bootstrap resampling."""

    def __post_init__(self) -> None:
        if self.path is not None and (not isinstance(self.path, (str, Path)) or not str(self.path).strip()):
            raise ConfigError(
                f"tasks.xnli.path must be a file, folder or hub id (or null), got {self.path!r}"
            )
        self.path = None if self.path is None else str(self.path)
        self.languages = check_languages("tasks.xnli.languages", self.languages)
        for language in self.languages:
            template_words(language, option="tasks.xnli.languages")
        try:
            self.split = normalise_split(self.split)
        except ConfigError as exc:
            raise ConfigError(f"tasks.xnli.split: {exc}") from exc
        if self.split == "train":
            raise ConfigError("tasks.xnli.split train: XNLI is evaluated zero-shot on test or validation")
        check_int("tasks.xnli.limit", self.limit, 1, allow_none=True)
        check_int("tasks.xnli.max_length", self.max_length, 2, allow_none=True)
        for option, low in (("batch_size", 1), ("bootstrap_samples", 1), ("seed", 0)):
            check_int(f"tasks.xnli.{option}", getattr(self, option), low)


@dataclass(frozen=True)
class NLIExample:
    """One premise / hypothesis pair; ``label`` is 0 entailment, 1 neutral, 2 contradiction."""

    id: str
    premise: str
    hypothesis: str
    label: int
    language: str


def template_words(language: str, *, option: str = "language") -> tuple[str, str, str, str]:
    """lm-eval 0.4.13's template words for ``language``.

    Raises:
        ConfigError: a language without an lm-eval XNLI template (the message lists those with one).
    """
    if language not in TEMPLATE_WORDS:
        raise ConfigError(
            f"{option}: no lm-eval {LM_EVAL_VERSION} XNLI template for {language!r}; languages with one: "
            f"{', '.join(TEMPLATE_WORDS)}"
        )
    return TEMPLATE_WORDS[language]


def choices(example: NLIExample) -> list[str]:
    """The three lm-eval choices, entailment / neutral / contradiction:
    ``premise + ", <question>? <word>, " + hypothesis``."""
    question, *words = template_words(example.language)
    return [f"{example.premise}, {question}? {word}, {example.hypothesis}" for word in words]


def _label_from_int(value: Any, where: str) -> int:
    if isinstance(value, str) and value.strip() in ("0", "1", "2"):  # a table's cell
        return int(value.strip())
    if isinstance(value, bool) or value not in (0, 1, 2):
        if isinstance(value, str) and value in LABELS:
            return LABELS.index(value)
        raise TaskDataError(f"{where}: label {value!r} is not 0, 1 or 2 (entailment, neutral, contradiction)")
    return int(value)


def _read_tsv(path: Path) -> tuple[str, list[tuple[str, dict[str, str]]]]:
    """The layout (``official`` or ``hub``) and ``("<file>:<line>", row)`` for every data line of a table.

    Two layouts, told apart by the header: the official XNLI 1.0 TSV (:data:`_TSV_COLUMNS`, read without quote
    processing since its sentences contain quotes) and the hub layout that ``datasets`` exports
    (``Dataset.to_csv(path, sep="\t")``: ``premise, hypothesis, label`` and optional ``id``, ``language``; read
    with the CSV quoting pandas writes). A ``.csv`` file is comma-separated, anything else tab-separated.
    """
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskDataError(f"{path}: cannot read ({exc})") from exc
    first = text.split("\n", 1)[0]
    header = [cell.strip() for cell in first.rstrip("\r").split(delimiter)]
    if not any(header):
        raise TaskDataError(f"{path}: empty file (no header, no rows)")
    layout = "hub" if all(column in header for column in _HUB_COLUMNS) else "official"
    quoting = csv.QUOTE_MINIMAL if layout == "hub" else csv.QUOTE_NONE
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
        lines = [(reader.line_num, cells) for cells in reader]
    except csv.Error as exc:
        raise TaskDataError(f"{path}:{reader.line_num}: unreadable row ({exc})") from exc
    header = [cell.strip() for cell in lines[0][1]]
    if layout == "official":
        for column in _TSV_COLUMNS:
            if column not in header:
                raise TaskDataError(
                    f"{path}:1: missing column {column!r} (an XNLI 1.0 TSV header needs "
                    f"{', '.join(_TSV_COLUMNS)}; a table exported by datasets needs {', '.join(_HUB_COLUMNS)})"
                )
    rows = []
    for number, cells in lines[1:]:
        if not cells or not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise TaskDataError(
                f"{path}:{number}: expected {len(header)} {'tab' if delimiter == chr(9) else 'comma'}-separated "
                f"fields, found {len(cells)}"
            )
        rows.append((f"{path}:{number}", dict(zip(header, cells, strict=True))))
    if not rows:
        raise TaskDataError(f"{path}: no rows after the header")
    return layout, rows


def _tsv_examples(path: Path, language: str) -> list[NLIExample]:
    layout, rows = _read_tsv(path)
    if layout == "hub":
        languages = sorted({row["language"] for _, row in rows if row.get("language")})
        if languages and language not in languages:
            raise TaskDataError(
                f"{path}: no rows for language {language!r}; languages there: {', '.join(languages)}"
            )
        return parse_hub_rows(rows, language)
    languages = sorted({row["language"] for _, row in rows})
    selected = [(where, row) for where, row in rows if row["language"] == language]
    if not selected:
        raise TaskDataError(
            f"{path}: no rows for language {language!r}; languages there: {', '.join(languages)}"
        )
    examples = []
    needs = ", ".join(_TSV_COLUMNS)
    for where, row in selected:
        gold = row["gold_label"].strip()
        if gold not in LABELS:
            raise TaskDataError(f"{where}: gold_label {gold!r} is not one of {', '.join(LABELS)}")
        examples.append(
            NLIExample(
                id=text_field(row, "pairID", where, needs),
                premise=text_field(row, "sentence1", where, needs),
                hypothesis=text_field(row, "sentence2", where, needs),
                label=LABELS.index(gold),
                language=language,
            )
        )
    check_unique_ids([e.id for e in examples], [where for where, _ in selected])
    return examples


def parse_hub_rows(rows: Sequence[tuple[str, dict[str, Any]]], language: str) -> list[NLIExample]:
    """Examples from ``(where, row)`` pairs in the hub layout; rows with a ``language`` field other than
    ``language`` are skipped; ``id`` defaults to the row's position (1-based).

    Raises:
        TaskDataError: a missing or non-string field, a label not in 0/1/2, or a repeated id.
    """
    examples, places = [], []
    for position, (where, row) in enumerate(rows, start=1):
        if row.get("language") not in (None, language):
            continue
        if "label" not in row:
            raise TaskDataError(f"{where}: missing field 'label' (rows need {_JSONL_NEEDS})")
        examples.append(
            NLIExample(
                id=id_field(row, "id", where, _JSONL_NEEDS) if row.get("id") is not None else str(position),
                premise=text_field(row, "premise", where, _JSONL_NEEDS),
                hypothesis=text_field(row, "hypothesis", where, _JSONL_NEEDS),
                label=_label_from_int(row["label"], where),
                language=language,
            )
        )
        places.append(where)
    check_unique_ids([e.id for e in examples], places)
    return examples


def _jsonl_languages(path: Path) -> list[str]:
    """Languages of a hub-layout jsonl: its rows' ``language`` values, else its file name's, else none."""
    found = sorted({row["language"] for _, row in read_jsonl(path) if isinstance(row.get("language"), str)})
    if found:
        return found
    match = _JSONL_NAME_RE.match(path.name)
    return [match["lang"]] if match else []


def _jsonl_examples(path: Path, language: str) -> list[NLIExample]:
    languages = _jsonl_languages(path)
    if languages and language not in languages:
        raise TaskDataError(
            f"{path}: no rows for language {language!r}; languages there: {', '.join(languages)}"
        )
    return parse_hub_rows([(f"{path}:{line}", row) for line, row in read_jsonl(path)], language)


def _folder_file(folder: Path, language: str, split: str) -> Path:
    """The TSV of ``split`` in an XNLI folder, else a jsonl named ``[xnli_]<lang>[_<split>].jsonl`` (no split
    in the name: the test split)."""
    tsv = folder / _TSV_FILES[split]
    if tsv.is_file():
        return tsv
    for file in sorted(folder.glob("*.jsonl")):
        match = _JSONL_NAME_RE.match(file.name)
        # A name without a split (xnli_sw.jsonl) is the test split, so it never leaks into validation.
        if match and match["lang"] == language and normalise_split(match["split"] or "test") == split:
            return file
    have = ", ".join(sorted(p.name for p in folder.iterdir() if p.suffix in (".tsv", ".jsonl"))) or "none"
    raise TaskDataError(
        f"{folder}: no {_TSV_FILES[split]} and no xnli_{language}.jsonl for split {split}; "
        f"data files there: {have}"
    )


class XNLITask(Task):
    """XNLI zero-shot NLI by lm-eval 0.4.13's label log-likelihood: accuracy and macro-F1."""

    name = "xnli"
    metrics = ("accuracy", "macro_f1")
    config_class = XNLIConfig
    trainable = False
    mean_metrics = {"accuracy": "correct"}
    statistic_metrics = ("macro_f1",)

    def load(
        self, path: Any, language: str, *, split: str = "test", limit: int | None = None
    ) -> list[NLIExample]:
        """Examples of ``language`` (first ``limit`` in file order).

        Raises:
            TaskDataError: unreadable data, a bad row (file, line, field), or a language the data lacks.
            ConfigError: a bad split or limit.
        """
        split = normalise_split(split)
        source = resolve_source(path, self.name)
        if source.kind == "hub":
            hint = "XNLI-1.0.zip holds xnli.test.tsv and xnli.dev.tsv"
            hub_rows = load_hub_rows(str(source), language, split, task=self.name, hint=hint)
            rows = [(f"{source}[{language}/{split}]:{i + 1}", row) for i, row in enumerate(hub_rows)]
            return apply_limit(parse_hub_rows(rows, language), limit)
        file = _folder_file(source.location, language, split) if source.kind == "dir" else source.location
        if file.suffix.lower() in (".tsv", ".csv"):
            return apply_limit(_tsv_examples(file, language), limit)
        return apply_limit(_jsonl_examples(file, language), limit)

    def available_languages(self, path: Any) -> list[str]:
        """Languages at ``path``: a TSV's ``language`` column, a jsonl's ``language`` fields or file name, the
        union over a folder's files, or the 15 XNLI languages for a hub id."""
        source = resolve_source(path, self.name)
        if source.kind == "hub":
            return list(TEMPLATE_WORDS)
        files = [source.location] if source.kind == "file" else sorted(source.location.iterdir())
        found: set[str] = set()
        for file in files:
            if file.suffix.lower() in (".tsv", ".csv") and file.is_file():
                found |= {row["language"] for _, row in _read_tsv(file)[1] if row.get("language")}
            elif file.suffix == ".jsonl" and file.is_file():
                found |= set(_jsonl_languages(file))
        return sorted(found)

    def evaluate(
        self,
        model: Any,
        tokenizer: Any,
        examples: Sequence[NLIExample],
        config: XNLIConfig,
        *,
        progress: bool | None = None,
    ) -> TaskResult:
        """Predict each example's label as the argmax of its three choices' log-likelihoods, then score."""
        language = check_examples(self.name, examples)
        template_words(language)
        continuations = [TARGET_DELIMITER + choice for example in examples for choice in choices(example)]
        logliks = continuation_logliks(
            model,
            tokenizer,
            continuations,
            batch_size=config.batch_size,
            max_length=config.max_length,
            progress=progress,
            desc=f"xnli {language}",
        )
        table = np.asarray(logliks, dtype=float).reshape(len(examples), len(LABELS))  # (n, 3)
        predicted = table.argmax(axis=1)  # first maximum on ties, as lm-eval's np.argmax
        rows = [
            {
                "id": example.id,
                "prediction": LABELS[int(predicted[i])],
                "reference": LABELS[example.label],
                "correct": int(predicted[i] == example.label),
                "accuracy": float(predicted[i] == example.label),
                **{f"loglik_{label}": float(table[i, j]) for j, label in enumerate(LABELS)},
            }
            for i, example in enumerate(examples)
        ]
        return TaskResult(self.name, language, len(rows), self._metric_scores(rows, config), rows)

    def _metric_scores(self, rows: list[dict[str, Any]], config: XNLIConfig) -> dict[str, MetricScore]:
        from scipy.stats import binomtest

        correct = sum(row["correct"] for row in rows)
        interval = binomtest(correct, len(rows)).proportion_ci(confidence_level=0.95, method="exact")

        def macro_f1(indices: np.ndarray) -> float:
            return self.corpus_score("macro_f1", [rows[int(i)] for i in indices])

        low, high = bootstrap_ci(macro_f1, len(rows), n_resamples=config.bootstrap_samples, seed=config.seed)
        return {
            "accuracy": MetricScore(correct / len(rows), float(interval.low), float(interval.high)),
            "macro_f1": MetricScore(self.corpus_score("macro_f1", rows), low, high),
        }

    def corpus_score(self, metric: str, rows: Sequence[Mapping[str, Any]], config: Any = None) -> float:
        """``accuracy`` = mean of the rows' ``correct``; ``macro_f1`` = scikit-learn
        ``f1_score(reference, prediction, labels=LABELS, average="macro", zero_division=0)``: the unweighted mean
        over **all three** labels of F1 = 2PR / (P + R) = 2TP / (2TP + FP + FN) (0 for a label neither column
        has), so a subset that lacks a label is not scored on two labels only.

        Raises:
            ConfigError: an unknown metric or no rows.
        """
        self._check_metric(metric)
        if not rows:
            raise ConfigError(f"{self.name}: corpus_score needs at least one row")
        if metric == "accuracy":
            return float(np.mean([row["correct"] for row in rows]))
        from sklearn.metrics import f1_score

        references = [row["reference"] for row in rows]
        predictions = [row["prediction"] for row in rows]
        return float(f1_score(references, predictions, labels=list(LABELS), average="macro", zero_division=0))

    def corpus_statistics(self, metric: str, rows: Sequence[Mapping[str, Any]], config: Any = None) -> Any:
        """Macro-F1 as per-example confusion-matrix cells (:class:`ConfusionStatistic`)."""
        if metric not in self.statistic_metrics:
            return super().corpus_statistics(metric, rows, config)
        return ConfusionStatistic(rows)

    def training_features(
        self, examples: Sequence[Any], tokenizer: Any, config: Any
    ) -> list[dict[str, list[int]]]:
        """XNLI measures zero-shot inference in tli, so it has no fine-tuning features.

        Raises:
            ConfigError: always.
        """
        raise ConfigError(
            "task xnli is evaluation-only (zero-shot NLI, to see whether fine-tuning preserves reasoning): "
            "fine-tune on a task with training data, e.g. xlsum"
        )


class ConfusionStatistic:
    """Macro-F1 over the three labels from per-example sufficient statistics: row ``i`` is the one-hot cell
    ``3·reference + prediction`` of the 3 × 3 confusion matrix, so a resample's matrix is a sum of rows."""

    def __init__(self, rows: Sequence[Mapping[str, Any]]):
        self.stats = np.zeros((len(rows), len(LABELS) ** 2), dtype=np.int64)  # (n, 9)
        for i, row in enumerate(rows):
            self.stats[i, LABELS.index(row["reference"]) * len(LABELS) + LABELS.index(row["prediction"])] = 1

    def score_sum(self, summed: np.ndarray) -> float:
        """``mean_l 2TP_l / (2TP_l + FP_l + FN_l)`` (0 where the denominator is 0) of a summed confusion matrix."""
        matrix = np.asarray(summed, dtype=float).reshape(len(LABELS), len(LABELS))  # (reference, prediction)
        tp = np.diag(matrix)
        denominator = 2 * tp + (matrix.sum(axis=0) - tp) + (matrix.sum(axis=1) - tp)
        f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
        return float(f1.mean())
