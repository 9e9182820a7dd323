"""TyDi QA GoldP as monolingual passage retrieval (Clark et al., TACL 2020): has Swahili.

Data, as distributed: SQuAD v1.1-format JSON holding all eleven languages, ``tydiqa-goldp-v1.1-dev.json``
and ``tydiqa-goldp-v1.1-train.json``; a question's language is the prefix of its id (``swahili-…``).
``path`` is one such file, a folder holding them (the split picks the file: ``validation``/``test`` → dev,
``train`` → train), or null for tli's samples. GoldP has no test file: ``test`` reads the dev file (the
evaluation set of every GoldP result).

As retrieval, the questions of one language search every gold passage (``context``) of that language in the
file; the relevant passage is the question's own. Metrics and dense evaluation:
:mod:`tli.tasks.retrieval.base`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tli.retrieval.data import RetrievalData
from tli.tasks.base import TaskDataError
from tli.tasks.retrieval.base import RetrievalConfig, RetrievalTask
from tli.tasks.retrieval.squad import read_json, read_squad, squad_retrieval
from tli.tasks.sources import resolve_source

LANGUAGES = {
    "arabic": "ar",
    "bengali": "bn",
    "english": "en",
    "finnish": "fi",
    "indonesian": "id",
    "japanese": "ja",
    "korean": "ko",
    "russian": "ru",
    "swahili": "sw",
    "telugu": "te",
    "thai": "th",
}
"""TyDi QA language names (question id prefixes) → ISO codes."""
CODES = {code: name for name, code in LANGUAGES.items()}
FILES = {
    "train": "tydiqa-goldp-v1.1-train.json",
    "validation": "tydiqa-goldp-v1.1-dev.json",
    "test": "tydiqa-goldp-v1.1-dev.json",
}


@dataclass
class TyDiConfig(RetrievalConfig):
    """Options of the TyDi QA GoldP retrieval task (YAML ``tasks: {tydi: {...}}``); see
    :class:`RetrievalConfig`."""

    task_name: ClassVar[str] = "tydi"


def language_of(question_id: str) -> str | None:
    """ISO code from a TyDi question id's prefix (``swahili-123-0`` → ``sw``), or None."""
    return LANGUAGES.get(question_id.split("-", 1)[0].lower())


class TyDiTask(RetrievalTask):
    """TyDi QA GoldP: questions retrieve gold passages of the same language."""

    name = "tydi"
    config_class = TyDiConfig
    primary_metric: ClassVar[str] = "mrr@10"

    def _file(self, path: Any, split: str) -> Path:
        source = resolve_source(path, self.name)
        if source.kind == "hub":
            raise TaskDataError(
                f"tydi data {path!r}: give tydiqa-goldp-v1.1-dev.json (or its folder), from "
                "https://github.com/google-research-datasets/tydiqa; hub ids are not read for retrieval"
            )
        if source.kind == "file":
            return source.location
        file = source.location / FILES[split]
        if not file.is_file():
            have = ", ".join(sorted(p.name for p in source.location.glob("*.json"))) or "none"
            raise TaskDataError(
                f"{source.location}: no {FILES[split]} for split {split}; JSON files there: {have}"
            )
        return file

    def load_data(self, path: Any, language: str, split: str, config: Any = None) -> RetrievalData:
        if language not in CODES:
            raise TaskDataError(f"tydi: no language {language!r}; TyDi QA has {', '.join(sorted(CODES))}")
        file = self._file(path, split)
        squad = read_squad(file, keep=lambda question_id: language_of(question_id) == language)
        if not squad.questions:
            have = self.available_languages(str(file))
            raise TaskDataError(
                f"{file}: no questions in language {language!r} (ids start with "
                f"{CODES[language]}-); languages there: {', '.join(have) or 'none'}"
            )
        return squad_retrieval(
            squad,
            squad,
            task=self.name,
            language=language,
            query_language=language,
            passage_language=language,
        )

    def available_languages(self, path: Any) -> list[str]:
        """Languages of the question ids in the file(s) at ``path``."""
        source = resolve_source(path, self.name)
        if source.kind == "hub":
            return sorted(CODES)
        files = [source.location] if source.kind == "file" else sorted(source.location.glob("*.json"))
        found: set[str] = set()
        for file in files:
            document = read_json(file)
            for article in document.get("data", []) if isinstance(document, dict) else []:
                for paragraph in article.get("paragraphs", []) if isinstance(article, dict) else []:
                    for qa in paragraph.get("qas", []) if isinstance(paragraph, dict) else []:
                        code = language_of(str(qa.get("id", ""))) if isinstance(qa, dict) else None
                        if code:
                            found.add(code)
        return sorted(found)
