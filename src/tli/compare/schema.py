"""The schema of a ``tli compare`` experiment and of its cells: what an experiment YAML holds once parsed.

A leaf of :mod:`tli.compare`: the dataclasses here import nothing else of the package, so the parser
(:mod:`tli.compare.experiment`, :mod:`tli.compare.retrieval_settings`), the runners
(:mod:`tli.compare.runner`, :mod:`tli.compare.retrieval_runner`) and the statistics
(:mod:`tli.compare.hypotheses`, :mod:`tli.compare.comparisons`) all build on it without a cycle.

Each YAML key is documented once, on its field: :class:`Experiment` (the top level), :class:`TrainData`
(``train:``), :class:`RetrievalSettings` (``retrieval:``) and the blocks it holds (:class:`BM25Spec`,
:class:`FusionSpec`, :class:`DataRef`); ``budget:`` is :class:`tli.strategies.finetune.Budget`, a strategy's
options :class:`tli.strategies.StrategyOptions`, ``retrieval.dense_retriever``
:class:`tli.retrieval.biencoder.BiEncoderOptions` and its ``synthetic:``
:class:`tli.tasks.retrieval.synthetic.SyntheticOptions`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tli.errors import ConfigError
from tli.strategies import STRATEGIES, StrategyOptions
from tli.strategies.finetune import Budget
from tli.tasks import SAMPLES_DIR, is_retrieval

SYSTEMS = ("dense", "bm25", "fusion")
"""Retrieval systems: ``dense`` (each strategy's LLM), ``bm25``, ``fusion`` (BM25 + each dense system)."""
TESTS = ("auto", "randomisation", "t-test")
"""How retrieval systems are compared (``retrieval.test``)."""

CellKey = tuple[Any, str, str, str, Any]
"""(model, strategy or system, task, language, seed) of one cell."""


# --------------------------------------------------------------------------------------------------
# Reading YAML values
# --------------------------------------------------------------------------------------------------


class Problems:
    """Every problem of an experiment file, raised together as one :class:`ConfigError` naming the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.items.append(message)

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(f"{self.path}: " + "; ".join(self.items))


def resolve_data_path(value: str, experiment_file: Path) -> str:
    """A data path as the run reads it: relative to the experiment file; ``samples:NAME`` names tli's samples;
    an absolute path or a hub id (``csebuetnlp/xlsum``, when no such local folder exists) as written."""
    if value.startswith("samples:"):
        return str(SAMPLES_DIR / value.removeprefix("samples:").strip("/"))
    candidate = Path(value).expanduser()
    if (
        candidate.is_absolute()
        or re.match(r"^[\w.-]+/[\w.-]+$", value)
        and not (experiment_file.parent / value).exists()
    ):
        return str(candidate)  # absolute, or a hub id such as csebuetnlp/xlsum
    return str((experiment_file.parent / candidate).resolve())


def dataclass_from(cls: type, values: Any, what: str, path: Path) -> Any:
    """``cls(**values)`` from a YAML mapping; a missing block is ``{}``; a non-mapping, an unknown key or a bad
    value is a ConfigError naming the file and the block (``what``)."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: `{what}` must be a mapping")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)} in `{what}` (known: {', '.join(sorted(names))})"
        )
    try:
        return cls(**values)
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{path}: `{what}`: {exc}") from exc


def task_settings(config: Any) -> dict[str, Any]:
    """A task config as settings: every option but ``languages`` (adding a language changes no other cell)."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k != "languages"}


# --------------------------------------------------------------------------------------------------
# The retrieval block
# --------------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class DataRef:
    """Where training pairs or source passages come from: a retrieval task's data."""

    task: str
    """A retrieval task (xquad, tydi, mrtydi)."""
    language: str
    """Its language (``en``, ``sw``; XQuAD: a query-passage pair such as ``sw-en``)."""
    split: str = "train"
    """The dataset split."""
    path: str | None = None
    """Data path (default: the experiment's path for ``task``, else tli's samples)."""
    limit: int | None = None
    """Use the first ``limit`` queries (and their passages)."""

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(kw_only=True)
class BM25Spec:
    """``retrieval.bm25``: the lexical baseline's Okapi BM25 parameters."""

    k1: float = 0.9
    """Term-frequency saturation (>= 0)."""
    b: float = 0.4
    """Length normalisation (0 to 1)."""


@dataclass(kw_only=True)
class FusionSpec:
    """``retrieval.fusion``: reciprocal rank fusion of BM25 with dense systems."""

    k: int = 60
    """RRF constant: ``1 / (k + rank)``."""
    systems: list[str] | None = None
    """Dense systems fused with BM25 (``dense:<strategy>`` / ``dense:<condition>``); None: every one."""

    def fuses(self, system: str) -> bool:
        return self.systems is None or system in self.systems


@dataclass(kw_only=True)
class DenseRetrieverSpec:
    """``retrieval.dense_retriever``: the trained dense-retriever conditions and their data."""

    options: Any
    """:class:`tli.retrieval.biencoder.BiEncoderOptions` (the block's other keys)."""
    conditions: tuple[str, ...]
    """Conditions compared: zero-shot, direct-transfer, synthetic, mix."""
    english: DataRef | None = None
    """English (query, passage) training pairs (direct-transfer, mix, and the translate / code-switch
    generators)."""
    synthetic_passages: DataRef | None = None
    """Target-language passages doc2query writes questions for (YAML ``synthetic.passages``)."""
    synthetic: Any = None
    """:class:`tli.tasks.retrieval.synthetic.SyntheticOptions` (None when no condition needs it)."""

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

    def encoders(self, models: list[str]) -> list[str]:
        """The bi-encoders' model labels: each experiment model (``encoder: model``) or the encoder path."""
        return list(models) if self.options.encoder == "model" else [self.options.encoder]


@dataclass(kw_only=True)
class RetrievalSettings:
    """The parsed ``retrieval:`` block: which systems rank the retrieval tasks, and how."""

    systems: tuple[str, ...] = SYSTEMS
    """dense (each strategy's LLM), bm25, fusion (BM25 + each dense system; needs bm25)."""
    reference: str = "bm25"
    """Every retrieval system is compared with this one (default bm25 when it runs)."""
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

    def system_names(self, strategies: list[str]) -> list[str]:
        """Every system name these settings produce (for validation and report ordering)."""
        return system_names(self.systems, self.conditions, self.fusion, strategies)

    def system_cells(self, experiment: Experiment) -> list[CellKey]:
        """Every retrieval cell beyond the strategies' dense cells, as (model, system, task, language, seed)."""
        fusion = "fusion" in self.systems
        out: list[CellKey] = []
        for task, language in experiment.retrieval_task_languages():
            if "bm25" in self.systems:
                out.append((None, "bm25", task, language, None))
            if "dense" in self.systems and fusion:
                out += [
                    (m, f"fusion:bm25+dense:{s.name}", task, language, seed)
                    for m in experiment.models
                    for s in experiment.strategies
                    for seed in experiment.seeds
                    if self.fusion.fuses(f"dense:{s.name}")
                ]
            if self.dense_retriever is None:
                continue
            for encoder in self.dense_retriever.encoders(experiment.models):
                for condition in self.dense_retriever.conditions:
                    for seed in [None] if condition == "zero-shot" else experiment.seeds:
                        out.append((encoder, f"dense:{condition}", task, language, seed))
                        if fusion and self.fusion.fuses(f"dense:{condition}"):
                            out.append((encoder, f"fusion:bm25+dense:{condition}", task, language, seed))
        return out


def system_names(
    systems: tuple[str, ...], conditions: tuple[str, ...], fusion: FusionSpec, strategies: list[str]
) -> list[str]:
    """Every retrieval system name, in report order: BM25, the strategies' dense systems, the conditions,
    then the fusions."""
    names = ["bm25"] if "bm25" in systems else []
    dense = [f"dense:{s}" for s in strategies] if "dense" in systems else []
    dense += [f"dense:{c}" for c in conditions]
    names += dense
    if "fusion" in systems:
        names += [f"fusion:bm25+{d}" for d in dense if fusion.fuses(d)]
    return names


# --------------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class TrainData:
    """``train:``: the task data every fine-tuning strategy trains on (default: the first trainable task)."""

    task: str
    """A trainable task (xlsum)."""
    language: str
    """Its language."""
    split: str | None = None
    """The dataset split (default: the task's ``train_split``)."""
    limit: int | None = None
    """Use the first ``limit`` examples."""
    path: str | None = None
    """The task's data, when the experiment does not evaluate that task (e.g. fine-tune on XL-Sum, score
    retrieval); ``samples:xlsum`` names tli's samples."""
    options: dict[str, Any] = field(default_factory=dict)
    """Task options of the training data given by ``path`` (e.g. ``{max_input_tokens: 128}``); for a task the
    experiment evaluates they default to that task's options."""


@dataclass(kw_only=True)
class StrategySpec:
    """One strategy of the experiment and its options (shared ``strategy_options`` + its own)."""

    name: str
    """A strategy (none, full, lora, lora-early, lora-late, tli, tli+lora, qlora)."""
    options: StrategyOptions
    """:class:`tli.strategies.StrategyOptions`: ``strategy_options`` overridden by the strategy's own."""
    device: str | None = None
    """Run this strategy on this device (``cuda`` needs a GPU); default: the experiment's device."""


@dataclass(kw_only=True)
class Experiment:
    """A parsed, validated experiment: models × strategies × tasks × seeds, with one training budget."""

    name: str
    """Its name (default: the file's stem)."""
    models: list[str]
    """The embedded model (``default``), local directories, ``.gguf`` files or hub ids; a relative path is
    relative to the directory tli runs in."""
    strategies: list[StrategySpec]
    """A list of names, or a mapping name → own options (``{lora-early: {layers: 2}}``)."""
    tasks: dict[str, Any]
    """Task name → its options (``path``: a local file or folder, relative to the experiment file, or a hub
    id; ``languages``; …); parsed, the task's config object (``XLSumConfig``, ``XNLIConfig``, …)."""
    seeds: list[int]
    """Seeds of every trained unit (default ``[0]``)."""
    train: TrainData | None
    """What strategies fine-tune on (None when no strategy fine-tunes on a task)."""
    budget: Budget
    """The training budget, the same for every strategy."""
    reference: str
    """Every strategy is compared with this one (default ``none``, the zero-shot base)."""
    correction: str = "holm"
    """holm | bh | none, within each family (a research question, or the exploratory comparisons)."""
    alpha: float = 0.05
    """Significance level, in (0, 1)."""
    n_resamples: int = 1000
    """Bootstrap resamples, and the least Monte Carlo resamples of a test (>= 99)."""
    noninferiority_margin: float = 0.01
    """Margin of the non-inferiority hypotheses ("preserves zero-shot XNLI"), in accuracy (0.01 = 1 point)."""
    dtype: str = "auto"
    """Weights' dtype (auto | float32 | bfloat16 | float16)."""
    device: str = "auto"
    """Device of every strategy without its own (auto | cpu | cuda | mps)."""
    device_map: str | None = None
    """``auto`` / ``balanced`` / ``sequential`` / a JSON file: spread each model over the GPUs (one process)."""
    max_memory: str | None = None
    """Per-device caps for ``device_map`` (``0=70GiB,1=70GiB,cpu=200GiB``)."""
    offload_folder: str | None = None
    """Where weights placed on ``disk`` go (inference only)."""
    save_full_weights: bool = False
    """Keep a full fine-tune's weights (large), so a rerun reloads it instead of training again."""
    backend: str = "hf"
    """``hf`` | ``vllm``: the engine of the XL-Sum and XNLI cells. ``vllm`` scores them after every unit has
    trained, with vLLM's LoRA support for adapters and the saved directory of a full fine-tune (needs a CUDA GPU,
    the ``vllm`` package and ``save_full_weights: true`` with ``full``); other cells stay on HF."""
    description: str = ""
    """Free text, shown in the report."""
    source: str | None = None
    """The file it was read from (not a YAML key)."""
    raw: dict[str, Any] = field(default_factory=dict)
    """The YAML mapping as read (not a YAML key)."""
    retrieval: RetrievalSettings | None = None
    """The ``retrieval:`` block; None without retrieval tasks."""
    train_task_config: Any = None
    """Config of the train task when the experiment does not evaluate it (``train.path``; not a YAML key)."""

    def retrieval_task_languages(self) -> list[tuple[str, str]]:
        """The (task, language) pairs of the retrieval tasks."""
        return [(t, lang) for t, c in self.tasks.items() if is_retrieval(t) for lang in c.languages]

    def strategy_task_languages(self) -> list[tuple[str, str]]:
        """The (task, language) cells every strategy is scored on (retrieval ones only with ``dense``)."""
        dense = self.retrieval is None or "dense" in self.retrieval.systems
        return [
            (task, language)
            for task, config in self.tasks.items()
            if dense or not is_retrieval(task)
            for language in config.languages
        ]

    def cells(self) -> list[CellKey]:
        """Every (model, strategy or system, task, language, seed) the experiment scores."""
        strategy_cells = [
            (model, spec.name, task, language, seed)
            for model in self.models
            for spec in self.strategies
            for task, language in self.strategy_task_languages()
            for seed in self.seeds
        ]
        return strategy_cells + (self.retrieval.system_cells(self) if self.retrieval is not None else [])

    def train_config(self) -> Any:
        """The config of the task strategies fine-tune on."""
        assert self.train is not None
        return self.train_task_config or self.tasks[self.train.task]

    def strategy(self, name: str) -> StrategySpec:
        return next(spec for spec in self.strategies if spec.name == name)

    def unit_settings(self, model: str, strategy: str, seed: int) -> dict[str, Any]:
        """What determines a trained (model, strategy, seed) unit: the model, the seed, the strategy's options
        and device, the dtype, and — for strategies that fine-tune on a task — the budget and the training data
        with its task options. Nothing else of the experiment (other strategies, statistics) changes it."""
        spec = self.strategy(strategy)
        settings: dict[str, Any] = {
            "model": model,
            "strategy": strategy,
            "seed": seed,
            "dtype": self.dtype,
            "device": spec.device or self.device,
        }
        if strategy != "none":  # the zero-shot base has no options
            settings["options"] = dataclasses.asdict(spec.options)
        if STRATEGIES[strategy].trains_on_task and self.train is not None:
            settings["budget"] = dataclasses.asdict(self.budget)
            settings["train"] = {
                **{k: v for k, v in dataclasses.asdict(self.train).items() if k not in ("path", "options")},
                "data": task_settings(self.train_config()),
            }
        return settings

    def cell_settings(self, model: str, strategy: str, seed: int, task: str, language: str) -> dict[str, Any]:
        """What determines a strategy's cell: its unit's settings, the task and language, and the task's options
        (its data path, split, limit, prompt, lengths…; not the list of other languages)."""
        settings = {
            **self.unit_settings(model, strategy, seed),
            "task": task,
            "language": language,
            "task_options": task_settings(self.tasks[task]),
        }
        if self.backend != "hf":  # absent for the default, so cells made before the key existed stay valid
            settings["backend"] = self.backend
        return settings

    def to_dict(self) -> dict[str, Any]:
        """The experiment as it ran (``results.json``'s ``experiment``)."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "models": self.models,
            "strategies": [spec.name for spec in self.strategies],
            "strategy_options": {spec.name: dataclasses.asdict(spec.options) for spec in self.strategies},
            "tasks": {name: dataclasses.asdict(config) for name, config in self.tasks.items()},
            "seeds": self.seeds,
            "backend": self.backend,
            "train": dataclasses.asdict(self.train) if self.train else None,
            "budget": dataclasses.asdict(self.budget),
            "reference": self.reference,
            "correction": self.correction,
            "alpha": self.alpha,
            "n_resamples": self.n_resamples,
            "noninferiority_margin": self.noninferiority_margin,
            "retrieval": self.retrieval.describe() if self.retrieval is not None else None,
        }


# --------------------------------------------------------------------------------------------------
# A cell's result
# --------------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One (model, strategy, task, language, seed) result, as ``cell.json`` holds it and ``results.json``
    lists it."""

    model: str | None
    """The model (null for BM25, which has none)."""
    strategy: str | None
    """The fine-tuning strategy (null for BM25 and trained dense retrievers)."""
    task: str
    language: str
    seed: int | None
    """The seed (null for systems without randomness: BM25, zero-shot dense retrievers)."""
    status: str = "pending"
    """``done`` or ``failed``."""
    n: int = 0
    """Examples (retrieval: queries) scored."""
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    """Metric → ``{score, ci95_low, ci95_high}``."""
    cost: dict[str, Any] = field(default_factory=dict)
    """What the cell cost: ``trainable_parameters``, ``train_seconds``, ``evaluate_seconds``,
    ``peak_memory_mb``, ``tokens_seen``, ``steps``, …"""
    predictions: str | None = None
    """Path of the per-example rows (jsonl)."""
    error: str | None = None
    """Why a failed cell failed (the error's first line)."""
    system: str | None = None
    """Retrieval cells: what ranked (``bm25``, ``dense:<strategy or condition>``, ``fusion:<a>+<b>``)."""
    run: str | None = None
    """Retrieval cells: path of the TREC run file."""
    qrels: str | None = None
    """Retrieval cells: path of the TREC qrels file the run was scored against."""
    details: dict[str, Any] = field(default_factory=dict)
    """Retrieval cells: how the run was made (recipe, layer, per-layer curve, passages not scored)."""
    fingerprint: str | None = None
    """SHA-256 of ``settings``: a rerun reuses the cell only when its settings are the same."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The parts of the experiment that made this cell (:meth:`Experiment.cell_settings`)."""

    @property
    def name(self) -> str:
        """What is compared: the retrieval system, else the strategy."""
        return self.system or self.strategy

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Cell:
        return cls(**record)
