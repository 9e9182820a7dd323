"""XQuAD as cross-lingual passage retrieval (Artetxe, Ruder and Yogatama, ACL 2020).

Data, as distributed: one SQuAD v1.1 JSON file per language, ``xquad.<lang>.json``, professionally translated
from the same 240 SQuAD paragraphs and 1,190 questions, so paragraph ``data[a].paragraphs[p]`` is the same
text in every file. ``path`` is the folder holding them (or null for tli's samples).

A language ``A-B`` puts queries in language A (questions of ``xquad.A.json``) against passages in language B
(every paragraph of ``xquad.B.json``); the relevant passage is the question's paragraph. ``A`` alone means
``A-A``. Retrieval metrics and dense evaluation: :mod:`tli.tasks.retrieval.base`.

XQuAD has no Swahili (its languages: ar de el en es hi ro ru th tr vi zh); asking for ``sw`` says so
and points to the Swahili sets: TyDi QA GoldP (task ``tydi``) and Mr. TyDi / MIRACL (task ``mrtydi``).
A folder that holds a (non-official) ``xquad.sw.json`` of the same structure is read like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tli.errors import ConfigError
from tli.retrieval.data import RetrievalData
from tli.tasks.base import TaskDataError
from tli.tasks.retrieval.base import RetrievalConfig, RetrievalTask
from tli.tasks.retrieval.squad import read_squad, squad_retrieval
from tli.tasks.sources import resolve_source

XQUAD_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
SWAHILI_SETS = (
    "TyDi QA GoldP (task tydi, tydiqa-goldp-v1.1-dev.json) and Mr. TyDi / MIRACL (task mrtydi: corpus jsonl, "
    "topics TSV, TREC qrels)"
)


@dataclass
class XQuADConfig(RetrievalConfig):
    """Options of the XQuAD retrieval task (YAML ``tasks: {xquad: {...}}``); see :class:`RetrievalConfig`."""

    languages: tuple[str, ...] = ("en",)
    """Query-passage language pairs such as ``de-en`` (``en`` = ``en-en``)."""

    task_name: ClassVar[str] = "xquad"

    def __post_init__(self) -> None:
        super().__post_init__()
        for language in self.languages:
            split_pair(language)
        if self.split != "test":
            raise ConfigError(f"tasks.xquad.split {self.split}: XQuAD has only its test files (split: test)")


def split_pair(language: str) -> tuple[str, str]:
    """``("de", "en")`` from ``de-en``; ``("en", "en")`` from ``en``.

    Raises:
        ConfigError: not ``A`` or ``A-B`` with two-letter-ish codes.
    """
    parts = language.split("-")
    if len(parts) > 2 or not all(p.strip() for p in parts):
        raise ConfigError(
            f"tasks.xquad.languages: {language!r} must be a code (en) or a query-passage pair (de-en)"
        )
    return (parts[0], parts[-1])


class XQuADTask(RetrievalTask):
    """XQuAD: queries in one language retrieve paragraphs in another (or the same)."""

    name = "xquad"
    config_class = XQuADConfig
    primary_metric: ClassVar[str] = "mrr@10"

    def _file(self, folder: Path, language: str) -> Path:
        file = folder / f"xquad.{language}.json"
        if file.is_file():
            return file
        have = self.available_languages(str(folder))
        if language == "sw":
            raise TaskDataError(
                f"{folder}: XQuAD has no Swahili (its languages: {' '.join(XQUAD_LANGUAGES)}); for Swahili "
                f"retrieval use {SWAHILI_SETS}"
            )
        raise TaskDataError(
            f"{folder}: no xquad.{language}.json; languages there: {', '.join(have) or 'none'}"
        )

    def load_data(self, path: Any, language: str, split: str, config: Any = None) -> RetrievalData:
        query_language, passage_language = split_pair(language)
        source = resolve_source(path, self.name)
        if source.kind == "hub":
            raise TaskDataError(
                f"xquad data {path!r}: give the folder holding xquad.<lang>.json (download the files from "
                "https://github.com/google-deepmind/xquad); hub ids are not read for retrieval"
            )
        folder = source.location if source.kind == "dir" else source.location.parent
        queries = read_squad(self._file(folder, query_language))
        passages = (
            queries
            if passage_language == query_language
            else read_squad(self._file(folder, passage_language))
        )
        return squad_retrieval(
            queries,
            passages,
            task=self.name,
            language=language,
            query_language=query_language,
            passage_language=passage_language,
        )

    def available_languages(self, path: Any) -> list[str]:
        """Codes of the ``xquad.<lang>.json`` files at ``path`` (pairs of them are valid languages)."""
        source = resolve_source(path, self.name)
        if source.kind == "hub":
            return []
        folder = source.location if source.kind == "dir" else source.location.parent
        return sorted(p.name.split(".")[1] for p in folder.glob("xquad.*.json"))
