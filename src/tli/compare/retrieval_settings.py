"""The ``retrieval:`` block of an experiment: which systems rank the retrieval tasks, and how.

YAML (every key optional; the block applies to every retrieval task of the experiment)::

    retrieval:
      systems: [dense, bm25, fusion]     # dense: each strategy's LLM; fusion: bm25 + each dense system
      reference: bm25                    # every retrieval system is compared with this one
      test: auto                         # auto (default: exact / analytic test by rule, see
                                         # tli.compare.significance) | randomisation | t-test (ranx's)
      bm25: {k1: 0.9, b: 0.4}
      fusion: {k: 60, systems: [dense:none]}   # RRF constant; dense systems fused with BM25 (default all)
      dense_retriever:                   # trained bi-encoders (sentence-transformers, MNRL)
        encoder: model                   # each experiment model with pooling, or a local encoder directory
        pooling: mean
        conditions: [zero-shot, direct-transfer, synthetic, mix]
        steps: 100
        batch_size: 16
        lr: 2.0e-5
        hard_negatives: 1                # BM25-mined per pair
        english: {task: tydi, language: en, split: train}            # English (query, passage) pairs
        synthetic:
          passages: {task: tydi, language: sw, split: train}         # target-language passages (doc2query)
          methods: [doc2query, translate, code-switch]
          generator: model

A data reference (``english``, ``synthetic.passages``) names a retrieval task, its language and split, and
optionally a ``path`` (default: the experiment's path for that task, else tli's samples) and a ``limit``. Its
queries and relevant passages become (query, passage) pairs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tli.compare.experiment import dataclass_from
from tli.errors import ConfigError

SYSTEMS = ("dense", "bm25", "fusion")
TESTS = ("auto", "randomisation", "t-test")


@dataclass(kw_only=True)
class DataRef:
    """Where training pairs or source passages come from: a retrieval task's data."""

    task: str
    language: str
    split: str = "train"
    path: str | None = None
    """Data path (default: the experiment's path for ``task``, else tli's samples)."""
    limit: int | None = None
    """Use the first ``limit`` queries (and their passages)."""

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(kw_only=True)
class BM25Spec:
    k1: float = 0.9
    b: float = 0.4


@dataclass(kw_only=True)
class FusionSpec:
    k: int = 60
    """RRF constant: ``1 / (k + rank)``."""
    systems: list[str] | None = None
    """Dense systems fused with BM25 (``dense:<strategy>`` / ``dense:<condition>``); None: every one."""

    def fuses(self, system: str) -> bool:
        return self.systems is None or system in self.systems


@dataclass(kw_only=True)
class DenseRetrieverSpec:
    """The trained dense-retriever conditions and their data."""

    options: Any
    """:class:`tli.retrieval.biencoder.BiEncoderOptions`."""
    conditions: tuple[str, ...]
    english: DataRef | None = None
    synthetic_passages: DataRef | None = None
    synthetic: Any = None
    """:class:`tli.retrieval.synthetic.SyntheticOptions` (None when no condition needs it)."""

    def describe(self) -> dict[str, Any]:
        return {
            **self.options.to_dict(),
            "conditions": list(self.conditions),
            "english": self.english.describe() if self.english else None,
            "synthetic": None
            if self.synthetic is None
            else {
                **self.synthetic.to_dict(),
                "passages": self.synthetic_passages.describe() if self.synthetic_passages else None,
            },
        }


@dataclass(kw_only=True)
class RetrievalSettings:
    """The parsed ``retrieval:`` block: which systems rank the retrieval tasks, and how."""

    systems: tuple[str, ...] = SYSTEMS
    reference: str = "bm25"
    test: str = "auto"
    """How systems are compared per seed: ``auto`` (the rule of :mod:`tli.compare.significance`),
    ``randomisation`` (Monte Carlo for every metric) or ``t-test`` (ranx's paired t-test)."""
    bm25: BM25Spec = field(default_factory=BM25Spec)
    fusion: FusionSpec = field(default_factory=FusionSpec)
    dense_retriever: DenseRetrieverSpec | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "systems": list(self.systems),
            "reference": self.reference,
            "test": self.test,
            "bm25": dataclasses.asdict(self.bm25),
            "fusion": dataclasses.asdict(self.fusion),
            "dense_retriever": self.dense_retriever.describe() if self.dense_retriever else None,
        }

    @property
    def conditions(self) -> tuple[str, ...]:
        return self.dense_retriever.conditions if self.dense_retriever else ()


def _mapping(value: Any, what: str, path: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: `{what}` must be a mapping")
    return dict(value)


def _data_ref(value: Any, what: str, path: Path, tasks: dict[str, Any]) -> DataRef:
    from tli.tasks import TASKS, is_retrieval

    ref = dataclass_from(DataRef, _mapping(value, what, path), what, path)
    if ref.task not in TASKS or not is_retrieval(ref.task):
        raise ConfigError(
            f"{path}: `{what}.task` {ref.task!r} must be a retrieval task (xquad, tydi, mrtydi)"
        )
    if ref.path is None and ref.task in tasks:
        ref.path = tasks[ref.task].path
    elif ref.path is not None:
        from tli.compare.experiment import _resolve_data_path

        ref.path = _resolve_data_path(str(ref.path), path)
    return ref


def parse_retrieval(
    raw: Any, tasks: dict[str, Any], strategies: list[str], path: Path, *, read_data: bool = True
) -> RetrievalSettings | None:
    """The ``retrieval:`` block (None when the experiment has no retrieval task).

    ``read_data`` reads every data reference and checks that a local encoder exists (``False``: the settings
    alone).

    Raises:
        ConfigError: unknown keys or values, a condition without the data it needs, or data that cannot be
            read (file and line).
    """
    from tli.retrieval.biencoder import CONDITIONS, BiEncoderOptions
    from tli.retrieval.synthetic import SyntheticOptions
    from tli.tasks import is_retrieval

    has_retrieval = any(is_retrieval(name) for name in tasks)
    if raw is not None and not has_retrieval:
        raise ConfigError(f"{path}: `retrieval` needs a retrieval task (xquad, tydi or mrtydi) in `tasks`")
    if not has_retrieval:
        return None
    values = _mapping(raw, "retrieval", path)
    known = {"systems", "reference", "test", "bm25", "fusion", "dense_retriever"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)} in `retrieval` (known: {', '.join(sorted(known))})"
        )
    systems = values.get("systems", list(SYSTEMS))
    systems = tuple([systems] if isinstance(systems, str) else systems)
    bad = [s for s in systems if s not in SYSTEMS]
    if bad or not systems:
        raise ConfigError(f"{path}: retrieval.systems {bad or '[]'}: choose from {', '.join(SYSTEMS)}")
    if "fusion" in systems and "bm25" not in systems:
        raise ConfigError(f"{path}: retrieval.systems: fusion fuses BM25 with each dense system; add bm25")
    test = str(values.get("test", "auto"))
    if test not in TESTS:
        raise ConfigError(f"{path}: retrieval.test {test!r} is not one of {', '.join(TESTS)}")
    plan = RetrievalSettings(
        systems=systems,
        test=test,
        reference=str(values.get("reference", "bm25" if "bm25" in systems else "")),
        bm25=dataclass_from(
            BM25Spec, _mapping(values.get("bm25"), "retrieval.bm25", path), "retrieval.bm25", path
        ),
        fusion=dataclass_from(
            FusionSpec, _mapping(values.get("fusion"), "retrieval.fusion", path), "retrieval.fusion", path
        ),
    )
    if plan.bm25.k1 < 0 or not 0 <= plan.bm25.b <= 1:
        raise ConfigError(f"{path}: retrieval.bm25 needs k1 >= 0 and 0 <= b <= 1")
    if plan.fusion.k < 1:
        raise ConfigError(f"{path}: retrieval.fusion.k must be >= 1, got {plan.fusion.k}")
    dense = values.get("dense_retriever")
    if dense is not None:
        dense = _mapping(dense, "retrieval.dense_retriever", path)
        conditions = dense.pop("conditions", list(CONDITIONS))
        conditions = tuple([conditions] if isinstance(conditions, str) else conditions)
        bad = [c for c in conditions if c not in CONDITIONS]
        if bad or not conditions:
            raise ConfigError(
                f"{path}: retrieval.dense_retriever.conditions {bad or '[]'}: choose from "
                f"{', '.join(CONDITIONS)}"
            )
        english_raw = dense.pop("english", None)
        synthetic_raw = _mapping(dense.pop("synthetic", None), "retrieval.dense_retriever.synthetic", path)
        passages_raw = synthetic_raw.pop("passages", None)
        options = dataclass_from(BiEncoderOptions, dense, "retrieval.dense_retriever", path)
        if options.encoder != "model":
            options.encoder = _encoder_path(options.encoder, path)
        needs_synthetic = bool({"synthetic", "mix"} & set(conditions))
        synthetic = (
            dataclass_from(SyntheticOptions, synthetic_raw, "retrieval.dense_retriever.synthetic", path)
            if needs_synthetic
            else None
        )
        needs_english = bool({"direct-transfer", "mix"} & set(conditions)) or bool(
            synthetic and {"translate", "code-switch"} & set(synthetic.methods)
        )
        if needs_english and english_raw is None:
            raise ConfigError(
                f"{path}: retrieval.dense_retriever.english is needed by {', '.join(conditions)} "
                "(English training pairs, e.g. {task: tydi, language: en, split: train})"
            )
        needs_passages = bool(synthetic and "doc2query" in synthetic.methods)
        if needs_passages and passages_raw is None:
            raise ConfigError(
                f"{path}: retrieval.dense_retriever.synthetic.passages is needed by doc2query "
                "(target-language passages, e.g. {task: tydi, language: sw, split: train})"
            )
        plan.dense_retriever = DenseRetrieverSpec(
            options=options,
            conditions=conditions,
            english=_data_ref(english_raw, "retrieval.dense_retriever.english", path, tasks)
            if needs_english
            else None,
            synthetic_passages=_data_ref(
                passages_raw, "retrieval.dense_retriever.synthetic.passages", path, tasks
            )
            if needs_passages
            else None,
            synthetic=synthetic,
        )
        for ref in (plan.dense_retriever.english, plan.dense_retriever.synthetic_passages):
            if read_data and ref is not None and (ref.path is None or Path(ref.path).exists()):
                load_ref(ref)  # a bad file stops the run now, with its file and line
        encoder = options.encoder
        if read_data and encoder != "model" and Path(encoder).is_absolute() and not Path(encoder).exists():
            raise ConfigError(f"{path}: retrieval.dense_retriever.encoder {encoder}: no such directory")
    valid = [name for name in plan_system_names(plan, strategies) if not name.startswith("fusion:")]
    if plan.fusion.systems is not None:
        if isinstance(plan.fusion.systems, str):
            plan.fusion.systems = [plan.fusion.systems]
        unknown = [s for s in plan.fusion.systems if s not in valid or s == "bm25"]
        if unknown:
            raise ConfigError(
                f"{path}: retrieval.fusion.systems {unknown}: fuse BM25 with dense systems of this "
                f"experiment ({', '.join(v for v in valid if v != 'bm25')})"
            )
    if plan.reference and plan.reference not in valid:
        raise ConfigError(
            f"{path}: retrieval.reference {plan.reference!r} is not one of this experiment's "
            f"systems ({', '.join(valid)})"
        )
    return plan


def _encoder_path(value: str, path: Path) -> str:
    from tli.compare.experiment import _resolve_data_path

    if str(value).startswith(("samples:",)):
        raise ConfigError(
            f"{path}: retrieval.dense_retriever.encoder must be `model` or an encoder directory"
        )
    return _resolve_data_path(str(value), path)


def plan_system_names(plan: RetrievalSettings, strategies: list[str]) -> list[str]:
    """Every system name the plan can produce (for validation and report ordering)."""
    names = ["bm25"] if "bm25" in plan.systems else []
    dense = [f"dense:{s}" for s in strategies] if "dense" in plan.systems else []
    dense += [f"dense:{c}" for c in plan.conditions]
    names += dense
    if "fusion" in plan.systems:
        names += [f"fusion:bm25+{d}" for d in dense if plan.fusion.fuses(d)]
    return names


def load_ref(ref: DataRef):
    """The :class:`~tli.retrieval.data.RetrievalData` a data reference names."""
    from tli.tasks import get_task

    task = get_task(ref.task)
    return task.load(ref.path, ref.language, split=ref.split, limit=ref.limit)


def pairs_of(data) -> list[tuple[str, str, str, str]]:
    """``(query id, query, passage id, passage)`` for every relevant passage of every query."""
    out = []
    for query in data.queries:
        for doc in data.relevant(query.id):
            position = data.corpus.index[doc]
            text = data.corpus.document(position)
            if text.strip():
                out.append((query.id, query.text, doc, text))
    return out
