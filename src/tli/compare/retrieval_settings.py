"""Reading the ``retrieval:`` block of an experiment into :class:`~tli.compare.schema.RetrievalSettings`.

An example (every key optional; the block applies to every retrieval task of the experiment; each key is
documented on its field in :mod:`tli.compare.schema`, ``dense_retriever``'s options on
:class:`tli.retrieval.biencoder.BiEncoderOptions` and ``synthetic``'s on
:class:`tli.tasks.retrieval.synthetic.SyntheticOptions`)::

    retrieval:
      systems: [dense, bm25, fusion]
      reference: bm25
      test: auto
      bm25: {k1: 0.9, b: 0.4}
      fusion: {k: 60, systems: [dense:none]}
      dense_retriever:
        encoder: model
        pooling: mean
        conditions: [zero-shot, direct-transfer, synthetic, mix]
        steps: 100
        hard_negatives: 1
        english: {task: tydi, language: en, split: train}
        synthetic:
          passages: {task: tydi, language: sw, split: train}
          methods: [doc2query, translate, code-switch]

A data reference (``english``, ``synthetic.passages``, :class:`~tli.compare.schema.DataRef`) names a retrieval
task, its language and split; its queries and relevant passages become (query, passage) pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tli.compare.schema import (
    SYSTEMS,
    TESTS,
    BM25Spec,
    DataRef,
    DenseRetrieverSpec,
    FusionSpec,
    Problems,
    RetrievalSettings,
    dataclass_from,
    resolve_data_path,
)
from tli.errors import ConfigError
from tli.retrieval.biencoder import CONDITIONS, BiEncoderOptions
from tli.retrieval.data import RetrievalData
from tli.tasks import TASKS, get_task, is_retrieval
from tli.tasks.retrieval.synthetic import SyntheticOptions

RETRIEVAL_KEYS = ("systems", "reference", "test", "bm25", "fusion", "dense_retriever")


def parse_retrieval(
    raw: Any, tasks: dict[str, Any], strategies: list[str], path: Path, *, read_data: bool = True
) -> RetrievalSettings | None:
    """The ``retrieval:`` block (None when the experiment has no retrieval task).

    Three phases, every problem of each collected into one error: the block's own keys (systems, test,
    BM25, fusion), the dense-retriever conditions and the data they need, then the system names the
    fusion and the reference refer to. ``read_data`` reads every data reference and checks that a local
    encoder exists (``False``: the settings alone).

    Raises:
        ConfigError: unknown keys or values, a condition without the data it needs, or data that cannot be
            read (file and line).
    """
    has_retrieval = any(is_retrieval(name) for name in tasks)
    if raw is not None and not has_retrieval:
        raise ConfigError(f"{path}: `retrieval` needs a retrieval task (xquad, tydi or mrtydi) in `tasks`")
    if not has_retrieval:
        return None
    values = _mapping(raw, "retrieval", path)
    problems = Problems(path)
    settings = _systems_and_scoring(values, path, problems)
    problems.raise_if_any()
    if values.get("dense_retriever") is not None:
        settings.dense_retriever = _dense_retriever(values["dense_retriever"], tasks, path, read_data)
    _check_system_names(settings, strategies, problems)
    problems.raise_if_any()
    return settings


def _mapping(value: Any, what: str, path: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: `{what}` must be a mapping")
    return dict(value)


def _names(value: Any) -> tuple:
    """A YAML list of names, or one name."""
    return tuple([value] if isinstance(value, str) else value)


def _systems_and_scoring(values: dict[str, Any], path: Path, problems: Problems) -> RetrievalSettings:
    """Phase 1: the block's keys, its systems, test, BM25 and fusion parameters."""
    unknown = sorted(set(values) - set(RETRIEVAL_KEYS))
    problems.check(
        not unknown,
        f"unknown key(s) {', '.join(unknown)} in `retrieval` (known: {', '.join(sorted(RETRIEVAL_KEYS))})",
    )
    systems = _names(values.get("systems", list(SYSTEMS)))
    bad = [s for s in systems if s not in SYSTEMS]
    problems.check(
        not bad and bool(systems), f"retrieval.systems {bad or '[]'}: choose from {', '.join(SYSTEMS)}"
    )
    problems.check(
        "fusion" not in systems or "bm25" in systems,
        "retrieval.systems: fusion fuses BM25 with each dense system; add bm25",
    )
    test = str(values.get("test", "auto"))
    problems.check(test in TESTS, f"retrieval.test {test!r} is not one of {', '.join(TESTS)}")
    settings = RetrievalSettings(
        systems=systems,
        test=test,
        reference=str(values.get("reference", "bm25" if "bm25" in systems else "")),
    )
    for key, cls in (("bm25", BM25Spec), ("fusion", FusionSpec)):
        try:
            block = dataclass_from(
                cls, _mapping(values.get(key), f"retrieval.{key}", path), f"retrieval.{key}", path
            )
        except ConfigError as exc:
            problems.add(str(exc).removeprefix(f"{path}: "))
            continue
        setattr(settings, key, block)
    bm25, fusion = settings.bm25, settings.fusion
    problems.check(bm25.k1 >= 0 and 0 <= bm25.b <= 1, "retrieval.bm25 needs k1 >= 0 and 0 <= b <= 1")
    problems.check(fusion.k >= 1, f"retrieval.fusion.k must be >= 1, got {fusion.k}")
    if isinstance(fusion.systems, str):
        fusion.systems = [fusion.systems]
    return settings


def _dense_retriever(raw: Any, tasks: dict[str, Any], path: Path, read_data: bool) -> DenseRetrieverSpec:
    """Phase 2: the trained dense-retriever conditions, their options and the data each one needs (read now,
    so a bad file stops the run before any training)."""
    where = "retrieval.dense_retriever"
    dense = _mapping(raw, where, path)
    conditions = _names(dense.pop("conditions", list(CONDITIONS)))
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad or not conditions:
        raise ConfigError(f"{path}: {where}.conditions {bad or '[]'}: choose from {', '.join(CONDITIONS)}")
    english_raw = dense.pop("english", None)
    synthetic_raw = _mapping(dense.pop("synthetic", None), f"{where}.synthetic", path)
    passages_raw = synthetic_raw.pop("passages", None)
    options = dataclass_from(BiEncoderOptions, dense, where, path)
    if options.encoder != "model":
        options.encoder = _encoder_path(options.encoder, path)
    synthetic = None
    if {"synthetic", "mix"} & set(conditions):
        synthetic = dataclass_from(SyntheticOptions, synthetic_raw, f"{where}.synthetic", path)
    methods = set(synthetic.methods) if synthetic else set()
    needs_english = bool(
        {"direct-transfer", "mix"} & set(conditions) or {"translate", "code-switch"} & methods
    )
    needs_passages = "doc2query" in methods
    problems = Problems(path)
    problems.check(
        not needs_english or english_raw is not None,
        f"{where}.english is needed by {', '.join(conditions)} "
        "(English training pairs, e.g. {task: tydi, language: en, split: train})",
    )
    problems.check(
        not needs_passages or passages_raw is not None,
        f"{where}.synthetic.passages is needed by doc2query "
        "(target-language passages, e.g. {task: tydi, language: sw, split: train})",
    )
    problems.raise_if_any()
    spec = DenseRetrieverSpec(
        options=options,
        conditions=conditions,
        english=_data_ref(english_raw, f"{where}.english", path, tasks) if needs_english else None,
        synthetic_passages=_data_ref(passages_raw, f"{where}.synthetic.passages", path, tasks)
        if needs_passages
        else None,
        synthetic=synthetic,
    )
    if read_data:
        _read_dense_data(spec, path)
    return spec


def _read_dense_data(spec: DenseRetrieverSpec, path: Path) -> None:
    """The dense retriever's local data and encoder exist and read (hub ids are read when the run needs
    them)."""
    for ref in (spec.english, spec.synthetic_passages):
        if ref is not None and (ref.path is None or Path(ref.path).exists()):
            load_ref(ref)  # a bad file stops the run now, with its file and line
    encoder = spec.options.encoder
    if encoder != "model" and Path(encoder).is_absolute() and not Path(encoder).exists():
        raise ConfigError(f"{path}: retrieval.dense_retriever.encoder {encoder}: no such directory")


def _check_system_names(settings: RetrievalSettings, strategies: list[str], problems: Problems) -> None:
    """Phase 3: the systems ``fusion.systems`` and ``reference`` name are systems of this experiment."""
    valid = [name for name in settings.system_names(strategies) if not name.startswith("fusion:")]
    if settings.fusion.systems is not None:
        unknown = [s for s in settings.fusion.systems if s not in valid or s == "bm25"]
        problems.check(
            not unknown,
            f"retrieval.fusion.systems {unknown}: fuse BM25 with dense systems of this "
            f"experiment ({', '.join(v for v in valid if v != 'bm25')})",
        )
    problems.check(
        not settings.reference or settings.reference in valid,
        f"retrieval.reference {settings.reference!r} is not one of this experiment's systems "
        f"({', '.join(valid)})",
    )


def _data_ref(value: Any, what: str, path: Path, tasks: dict[str, Any]) -> DataRef:
    ref = dataclass_from(DataRef, _mapping(value, what, path), what, path)
    if ref.task not in TASKS or not is_retrieval(ref.task):
        raise ConfigError(
            f"{path}: `{what}.task` {ref.task!r} must be a retrieval task (xquad, tydi, mrtydi)"
        )
    if ref.path is None and ref.task in tasks:
        ref.path = tasks[ref.task].path
    elif ref.path is not None:
        ref.path = resolve_data_path(str(ref.path), path)
    return ref


def _encoder_path(value: str, path: Path) -> str:
    if str(value).startswith(("samples:",)):
        raise ConfigError(
            f"{path}: retrieval.dense_retriever.encoder must be `model` or an encoder directory"
        )
    return resolve_data_path(str(value), path)


def load_ref(ref: DataRef) -> RetrievalData:
    """The :class:`~tli.retrieval.data.RetrievalData` a data reference names."""
    task = get_task(ref.task)
    return task.load(ref.path, ref.language, split=ref.split, limit=ref.limit)


def pairs_of(data: RetrievalData) -> list[tuple[str, str, str, str]]:
    """``(query id, query, passage id, passage)`` for every relevant passage of every query."""
    out = []
    for query in data.queries:
        for doc in data.relevant(query.id):
            position = data.corpus.index[doc]
            text = data.corpus.document(position)
            if text.strip():
                out.append((query.id, query.text, doc, text))
    return out
