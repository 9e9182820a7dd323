"""XL-Sum abstractive summarisation (Hasan et al., Findings of ACL 2021): one-sentence summaries of BBC news.

Data, as distributed: JSON Lines with ``id, url, title, summary, text``, one file per language and split
named ``<language>_<split>.jsonl`` (``swahili_train.jsonl``, ``swahili_val.jsonl``, ``swahili_test.jsonl``).
``path`` is a folder of such files (the file is picked by language and split), a single ``.jsonl`` file (named
as XL-Sum names them, it must hold the language and split asked for; with any other name, e.g.
``habari.jsonl``, it holds the language the experiment gives), the hub id ``csebuetnlp/xlsum`` (online only;
configs are the language names), or None for the shipped samples.
Languages are given as ISO codes (``sw``) or XL-Sum names (``swahili``).

Prompt: :data:`DEFAULT_PROMPT`, an English instruction (as XL-Sum evaluations of LLMs commonly use) that also
names the output language, since an English-centric model otherwise answers in English; the article is cut
to ``max_input_tokens`` tokens first. The tokenizer's chat template wraps it when it has one
(``chat_template``).

Fine-tuning features: prompt tokens + summary tokens + EOS, labels −100 on the prompt, so the loss is on the
summary only. Evaluation: greedy generation, first paragraph of the output, then ROUGE-1/2/L F1 (Unicode
tokenizer, no stemming; 0-1), corpus BLEU and chrF (sacrebleu's 0-100 scale; see
:mod:`tli.tasks.overlap_metrics`), each with a 95 % bootstrap CI over examples.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tli.errors import ConfigError
from tli.tasks import generation, overlap_metrics
from tli.tasks.base import (
    IGNORE_INDEX,
    MetricScore,
    Task,
    TaskDataError,
    TaskResult,
    bootstrap_ci,
    check_examples,
    check_int,
    check_languages,
)
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

DEFAULT_PROMPT = (
    "Summarize the following article in one sentence in {language}.\n\nArticle: {text}\n\nSummary:"
)
HUB_ID = "csebuetnlp/xlsum"
FIELDS = ("id", "url", "title", "summary", "text")
_NEEDS = "id, url, title, summary, text"
_FILE_SPLIT = {"train": "train", "validation": "val", "test": "test"}
_FILE_RE = re.compile(r"^(?P<name>.+)_(?P<split>train|val|test)\.jsonl$")

XLSUM_LANGUAGES = {
    "am": "amharic", "ar": "arabic", "az": "azerbaijani", "bn": "bengali", "my": "burmese",
    "zh": "chinese_simplified", "zh-tw": "chinese_traditional", "en": "english", "fr": "french",
    "gu": "gujarati", "ha": "hausa", "hi": "hindi", "ig": "igbo", "id": "indonesian", "ja": "japanese",
    "rn": "kirundi", "ko": "korean", "ky": "kyrgyz", "mr": "marathi", "ne": "nepali", "om": "oromo",
    "ps": "pashto", "fa": "persian", "pcm": "pidgin", "pt": "portuguese", "pa": "punjabi", "ru": "russian",
    "gd": "scottish_gaelic", "sr-cyrl": "serbian_cyrillic", "sr-latn": "serbian_latin", "si": "sinhala",
    "so": "somali", "es": "spanish", "sw": "swahili", "ta": "tamil", "te": "telugu", "th": "thai",
    "ti": "tigrinya", "tr": "turkish", "uk": "ukrainian", "ur": "urdu", "uz": "uzbek", "vi": "vietnamese",
    "cy": "welsh", "yo": "yoruba",
}  # fmt: skip
"""ISO 639 code → XL-Sum file / hub config name, for all 45 XL-Sum languages."""
_CODE_ALIASES = {"zh-cn": "zh", "zh-hans": "zh", "zh-hant": "zh-tw", "swa": "sw", "eng": "en"}
_NOT_IN_XLSUM = {
    "rw": "XL-Sum has no separate Kinyarwanda (rw) set; its closest is kirundi (rn): pass rn if you mean it",
    "sr": "XL-Sum has two Serbian sets: pass sr-cyrl (serbian_cyrillic) or sr-latn (serbian_latin)",
}
_DISPLAY = {"pcm": "Nigerian Pidgin", "zh": "Simplified Chinese", "zh-tw": "Traditional Chinese",
            "sr-cyrl": "Serbian (Cyrillic script)", "sr-latn": "Serbian (Latin script)",
            "rn": "Kirundi"}  # fmt: skip
_NAME_TO_CODE = {name: code for code, name in XLSUM_LANGUAGES.items()}


@dataclass
class XLSumConfig:
    """Options of the XL-Sum task (YAML ``tasks: {xlsum: {...}}``)."""

    path: str | None = None
    """Data: a folder of ``<language>_<split>.jsonl`` files, one such file, the hub id ``csebuetnlp/xlsum``
    (online only), or null for the samples shipped with tli."""
    languages: tuple[str, ...] = ("sw",)
    """Languages to evaluate, as ISO codes (``sw``) or XL-Sum names (``swahili``)."""
    split: str = "test"
    """Evaluation split: ``test``, ``validation`` (``val``) or ``train``."""
    train_split: str = "train"
    """Split that fine-tuning features are built from."""
    limit: int | None = None
    """Use only the first N examples of each split (file order); null for all."""
    prompt: str = DEFAULT_PROMPT
    """Instruction template: ``{text}`` (the truncated article) is required; ``{title}`` and ``{language}``
    (English name of the language, e.g. ``Swahili``) are optional. Write ``{{ }}`` for literal braces."""
    chat_template: str = "auto"
    """``auto`` wraps the prompt in the tokenizer's chat template when it has one; ``yes`` requires one;
    ``no`` uses the plain prompt (the model continues after ``Summary:``)."""
    max_input_tokens: int = 512
    """Article budget in tokens: the article is cut to this many tokens before it is put into the prompt."""
    max_new_tokens: int = 64
    """Generation limit in tokens (room for one sentence; only the first paragraph is kept)."""
    batch_size: int = 8
    """Prompts generated together (left padded)."""
    bleu_tokenize: str = overlap_metrics.DEFAULT_BLEU_TOKENIZE
    """sacrebleu BLEU tokenizer: ``13a`` (default, space-delimited scripts), ``zh``, ``char``, ``intl``,
    ``ja-mecab`` / ``ko-mecab`` (need their extras), ``flores200`` (downloads its model; online only), ..."""
    bootstrap_samples: int = 1000
    """Bootstrap resamples for the 95 % confidence intervals."""
    seed: int = 0
    """Seed of the bootstrap resampling (generation is greedy)."""

    def __post_init__(self) -> None:
        if self.path is not None and (not isinstance(self.path, (str, Path)) or not str(self.path).strip()):
            raise ConfigError(
                f"tasks.xlsum.path must be a file, folder or hub id (or null), got {self.path!r}"
            )
        self.path = None if self.path is None else str(self.path)
        self.languages = check_languages("tasks.xlsum.languages", self.languages)
        for option in ("split", "train_split"):
            try:
                setattr(self, option, normalise_split(getattr(self, option)))
            except ConfigError as exc:
                raise ConfigError(f"tasks.xlsum.{option}: {exc}") from exc
        check_int("tasks.xlsum.limit", self.limit, 1, allow_none=True)
        _check_prompt(self.prompt)
        self.chat_template = generation.chat_template_mode("tasks.xlsum.chat_template", self.chat_template)
        for option, low in (("max_input_tokens", 1), ("max_new_tokens", 1), ("batch_size", 1),
                            ("bootstrap_samples", 1), ("seed", 0)):  # fmt: skip
            check_int(f"tasks.xlsum.{option}", getattr(self, option), low)
        _check_bleu_tokenize(self.bleu_tokenize)


def _check_prompt(prompt: Any) -> None:
    hint = "{text} marks the article; {title} and {language} are optional (write {{ }} for literal braces)"
    if not isinstance(prompt, str) or "{text}" not in prompt:
        raise ConfigError(f"tasks.xlsum.prompt {prompt!r}: {hint}")
    try:
        prompt.format(text="t", title="t", language="l")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"tasks.xlsum.prompt {prompt!r}: {hint}") from exc


def _check_bleu_tokenize(name: Any) -> None:
    from sacrebleu.metrics import BLEU

    if name not in BLEU.TOKENIZERS:
        valid = ", ".join(BLEU.TOKENIZERS)
        raise ConfigError(f"tasks.xlsum.bleu_tokenize {name!r} is not a sacrebleu tokenizer ({valid})")


@dataclass(frozen=True)
class SummaryExample:
    """One XL-Sum article with its reference summary; ``language`` is the ISO code when known."""

    id: str
    url: str
    title: str
    summary: str
    text: str
    language: str


def xlsum_name(language: str) -> str:
    """XL-Sum's name for a language code or name (``sw`` → ``swahili``); unknown ones are returned lower-cased
    (a local folder may hold other languages in the same layout).

    Raises:
        ConfigError: a code XL-Sum does not have under that name (``rw``, ``sr``), with what to pass instead.
    """
    key = language.strip().lower()
    if key in _NAME_TO_CODE:
        return key
    code = key.replace("_", "-")
    code = _CODE_ALIASES.get(code, code)
    if code in _NOT_IN_XLSUM:
        raise ConfigError(f"xlsum language {language!r}: {_NOT_IN_XLSUM[code]}")
    return XLSUM_LANGUAGES.get(code, key)


def language_code(name_or_code: str) -> str:
    """ISO code for an XL-Sum name or code (``swahili`` → ``sw``); unknown names are returned as given."""
    name = xlsum_name(name_or_code)
    return _NAME_TO_CODE.get(name, name_or_code.strip().lower())


def language_display_name(code: str) -> str:
    """English name of a language for prompts (``sw`` → ``Swahili``)."""
    if code in _DISPLAY:
        return _DISPLAY[code]
    return XLSUM_LANGUAGES.get(code, code).replace("_", " ").title()


def _files_by_language(folder: Path) -> dict[str, dict[str, Path]]:
    """``{xlsum name: {split: file}}`` for the ``<name>_<split>.jsonl`` files of a folder."""
    found: dict[str, dict[str, Path]] = {}
    for file in sorted(folder.iterdir()):
        match = _FILE_RE.match(file.name)
        if match and file.is_file():
            split = {"val": "validation"}.get(match["split"], match["split"])
            found.setdefault(match["name"], {})[split] = file
    return found


def _pick_file(folder: Path, language: str, split: str) -> Path:
    files = _files_by_language(folder)
    name = xlsum_name(language)
    if name not in files:
        have = ", ".join(f"{language_code(n)} ({n})" for n in files) or "none"
        raise TaskDataError(
            f"{folder}: no XL-Sum files for language {language!r} (expected {name}_<split>.jsonl); "
            f"languages there: {have}"
        )
    if split not in files[name]:
        have = ", ".join(files[name])
        raise TaskDataError(
            f"{folder}: no {name}_{_FILE_SPLIT[split]}.jsonl for split {split}; "
            f"splits there for {name}: {have}"
        )
    return files[name][split]


def _official_name(file: Path) -> re.Match | None:
    """The ``<language>_<split>.jsonl`` match of a file named as XL-Sum names its files (a known XL-Sum language:
    ``swahili_test.jsonl``), else None (``xlsum_swahili_test.jsonl``, ``habari.jsonl``: the user's own name)."""
    match = _FILE_RE.match(file.name)
    return match if match and match["name"] in _NAME_TO_CODE else None


def _check_file_matches(file: Path, language: str, split: str) -> None:
    """A file named as XL-Sum names its files must hold the requested language and split; a file with any other
    name holds whatever the experiment says (its ``languages``)."""
    match = _official_name(file)
    if not match:
        return
    name = xlsum_name(language)
    file_split = {"val": "validation"}.get(match["split"], match["split"])
    if match["name"] != name:
        raise TaskDataError(f"{file}: this file holds {match['name']}, not {language!r} ({name})")
    if file_split != split:
        raise TaskDataError(
            f"{file}: this file is the {file_split} split, not {split}: pass the folder, or the "
            f"{name}_{_FILE_SPLIT[split]}.jsonl file"
        )


def parse_rows(rows: Sequence[tuple[str, dict[str, Any]]], language: str) -> list[SummaryExample]:
    """Validated examples from ``(where, row)`` pairs (``where`` is ``"<file>:<line>"``).

    Raises:
        TaskDataError: a missing or non-string field, an empty summary or text, or a repeated id.
    """
    examples = []
    for where, row in rows:
        examples.append(
            SummaryExample(
                id=id_field(row, "id", where, _NEEDS),
                url=text_field(row, "url", where, _NEEDS, allow_empty=True),
                title=text_field(row, "title", where, _NEEDS, allow_empty=True),
                summary=text_field(row, "summary", where, _NEEDS),
                text=text_field(row, "text", where, _NEEDS, cut=True),  # the prompt keeps max_input_tokens
                language=language,
            )
        )
    check_unique_ids([e.id for e in examples], [where for where, _ in rows])
    return examples


class XLSumTask(Task):
    """XL-Sum summarisation: ROUGE-1/2/L F1, BLEU and chrF of greedy one-sentence summaries."""

    name = "xlsum"
    metrics = ("rouge1", "rouge2", "rougeL", "bleu", "chrf")
    config_class = XLSumConfig
    trainable = True
    mean_metrics = {"rouge1": "rouge1", "rouge2": "rouge2", "rougeL": "rougeL"}
    statistic_metrics = ("bleu", "chrf")

    def load(
        self, path: Any, language: str, *, split: str = "test", limit: int | None = None
    ) -> list[SummaryExample]:
        """Examples of ``language`` and ``split`` (first ``limit`` in file order).

        Raises:
            TaskDataError: unreadable data, a bad row (file, line, field), or a missing language / split.
            ConfigError: a bad split or limit, or a language code XL-Sum lacks.
        """
        split = normalise_split(split)
        code = language_code(language)
        source = resolve_source(path, self.name)
        if source.kind == "hub":
            name = xlsum_name(language)
            hint = f"{name}_{_FILE_SPLIT[split]}.jsonl from the XL-Sum release"
            hub_rows = load_hub_rows(str(source), name, split, task=self.name, hint=hint)
            rows = [(f"{source}[{name}/{split}]:{i + 1}", row) for i, row in enumerate(hub_rows)]
            if not rows:
                raise TaskDataError(f"{source} ({name}, {split}): no rows")
            return apply_limit(parse_rows(rows, code), limit)
        file = _pick_file(source.location, language, split) if source.kind == "dir" else source.location
        if source.kind == "file":
            _check_file_matches(file, language, split)
        rows = [(f"{file}:{line}", row) for line, row in read_jsonl(file)]
        return apply_limit(parse_rows(rows, code), limit)

    def available_languages(self, path: Any) -> list[str]:
        """ISO codes (XL-Sum names when no code is known) of the languages at ``path``; for a single file,
        the one its name says, or ``[]`` when its name says none."""
        source = resolve_source(path, self.name)
        if source.kind == "hub":
            return list(XLSUM_LANGUAGES)
        if source.kind == "file":
            match = _official_name(source.location)
            return [language_code(match["name"])] if match else []
        return [language_code(name) for name in _files_by_language(source.location)]

    def prompt(self, tokenizer: Any, example: SummaryExample, config: XLSumConfig) -> tuple[str, bool]:
        """The rendered prompt for ``example`` and whether the chat template was applied."""
        text = generation.truncate_tokens(tokenizer, example.text, config.max_input_tokens)
        body = config.prompt.format(
            text=text, title=example.title, language=language_display_name(example.language)
        )
        chat = generation.uses_chat_template(tokenizer, config.chat_template)
        return generation.render_prompt(tokenizer, body, chat), chat

    def training_features(
        self, examples: Sequence[SummaryExample], tokenizer: Any, config: XLSumConfig
    ) -> list[dict[str, list[int]]]:
        """``{"input_ids", "labels"}`` per example: prompt + summary + EOS, labels −100 on the prompt.

        The prompt and the answer are tokenized separately, so the boundary is exact and the prompt tokens
        are the ones the model sees at generation time. With a chat template the answer is the summary
        itself; without one it is ``" " + summary`` (the model continues after ``Summary:``). EOS (the
        tokenizer's ``eos_token_id``; for chat models, the end-of-turn token) is appended when the tokenizer
        has one, so the model learns to stop.
        """
        features = []
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        for example in examples:
            prompt, chat = self.prompt(tokenizer, example, config)
            prompt_ids = tokenizer(prompt, add_special_tokens=not chat)["input_ids"]
            answer = example.summary.strip() if chat else " " + example.summary.strip()
            answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + eos
            features.append(
                {
                    "input_ids": prompt_ids + answer_ids,
                    "labels": [IGNORE_INDEX] * len(prompt_ids) + answer_ids,
                }
            )
        return features

    def evaluate(
        self,
        model: Any,
        tokenizer: Any,
        examples: Sequence[SummaryExample],
        config: XLSumConfig,
        *,
        progress: bool | None = None,
    ) -> TaskResult:
        """Generate a summary per example and score it (see the module docstring)."""
        language = check_examples(self.name, examples)
        rendered = [self.prompt(tokenizer, example, config) for example in examples]
        outputs = generation.generate_texts(
            model,
            tokenizer,
            [prompt for prompt, _ in rendered],
            max_new_tokens=config.max_new_tokens,
            batch_size=config.batch_size,
            add_special_tokens=not rendered[0][1],
            progress=progress,
            desc=f"xlsum {language}",
        )
        predictions = [generation.first_paragraph(output) for output in outputs]
        rows = score_rows(examples, predictions, config.bleu_tokenize)
        return TaskResult(self.name, language, len(rows), self._metric_scores(rows, config), rows)

    def _metric_scores(self, rows: list[dict[str, Any]], config: XLSumConfig) -> dict[str, MetricScore]:
        predictions = [row["prediction"] for row in rows]
        references = [row["reference"] for row in rows]
        scores = {}
        for metric in self.metrics:
            if metric in overlap_metrics.ROUGE_TYPES:
                values = np.array([row[metric] for row in rows], dtype=float)  # (n,)

                def statistic(idx: np.ndarray, values: np.ndarray = values) -> float:
                    return float(values[idx].mean())
            else:
                statistic = overlap_metrics.CorpusStatistic(
                    metric, predictions, references, config.bleu_tokenize
                )
            low, high = bootstrap_ci(
                statistic, len(rows), n_resamples=config.bootstrap_samples, seed=config.seed
            )
            signature = (
                None
                if metric in overlap_metrics.ROUGE_TYPES
                else overlap_metrics.signature(metric, config.bleu_tokenize)
            )
            scores[metric] = MetricScore(self.corpus_score(metric, rows, config), low, high, signature)
        return scores

    def corpus_statistics(
        self, metric: str, rows: Sequence[Mapping[str, Any]], config: XLSumConfig | None = None
    ) -> overlap_metrics.CorpusStatistic:
        """BLEU / chrF of the rows as sacrebleu's per-example n-gram statistics (:class:`CorpusStatistic`)."""
        if metric not in self.statistic_metrics:
            return super().corpus_statistics(metric, rows, config)
        tokenize = config.bleu_tokenize if config is not None else overlap_metrics.DEFAULT_BLEU_TOKENIZE
        return overlap_metrics.CorpusStatistic(
            metric, [row["prediction"] for row in rows], [row["reference"] for row in rows], tokenize
        )

    def corpus_score(
        self,
        metric: str,
        rows: Sequence[Mapping[str, Any]],
        config: XLSumConfig | None = None,
    ) -> float:
        """ROUGE: mean of the rows' per-example F1; BLEU / chrF: sacrebleu corpus score of the rows'
        ``prediction`` against ``reference`` (not a mean of sentence scores), with ``config.bleu_tokenize``
        (``13a`` when no config is given).

        Raises:
            ConfigError: an unknown metric or no rows.
        """
        self._check_metric(metric)
        if not rows:
            raise ConfigError(f"{self.name}: corpus_score needs at least one row")
        if metric in overlap_metrics.ROUGE_TYPES:
            return float(np.mean([row[metric] for row in rows]))
        predictions = [row["prediction"] for row in rows]
        references = [row["reference"] for row in rows]
        if metric == "bleu":
            tokenize = config.bleu_tokenize if config is not None else overlap_metrics.DEFAULT_BLEU_TOKENIZE
            return overlap_metrics.corpus_bleu(predictions, references, tokenize)
        return overlap_metrics.corpus_chrf(predictions, references)


def score_rows(
    examples: Sequence[SummaryExample], predictions: Sequence[str], bleu_tokenize: str
) -> list[dict[str, Any]]:
    """Prediction rows: ``id, prediction, reference, rouge1, rouge2, rougeL, bleu, chrf`` (per-example scores;
    ``bleu`` / ``chrf`` are sacrebleu sentence scores, for inspection)."""
    references = [example.summary for example in examples]
    rouge = overlap_metrics.rouge_f1(predictions, references)
    bleu = overlap_metrics.sentence_bleu(predictions, references, bleu_tokenize)
    chrf = overlap_metrics.sentence_chrf(predictions, references)
    return [
        {
            "id": example.id,
            "prediction": prediction,
            "reference": reference,
            **{name: rouge[name][i] for name in overlap_metrics.ROUGE_TYPES},
            "bleu": bleu[i],
            "chrf": chrf[i],
        }
        for i, (example, prediction, reference) in enumerate(
            zip(examples, predictions, references, strict=True)
        )
    ]
