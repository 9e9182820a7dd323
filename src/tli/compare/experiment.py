"""An experiment of ``tli compare``: models × strategies × tasks × seeds, with one training budget.

YAML schema (every key but ``models``, ``strategies`` and ``tasks`` optional)::

    models: [default]                 # the embedded model, local directories, .gguf files or hub ids
    strategies: [none, lora, full]    # or a mapping name → options, e.g. {lora-early: {layers: 2}}
    tasks:                            # task name → its options (path: local file/folder or hub id)
      xlsum: {path: data/xlsum, languages: [sw], max_new_tokens: 64}
      xnli: {path: data/xnli.test.tsv, languages: [sw, en]}
    seeds: [0]
    train: {task: xlsum, language: sw}  # what strategies fine-tune on (default: the first trainable task);
                                      # with `path`, a task the experiment does not evaluate
    retrieval: {systems: [dense, bm25, fusion], dense_retriever: {...}}   # retrieval tasks only, see
                                      # tli.compare.retrieval_settings
    budget: {steps: 20, batch_size: 4, lr: 2.0e-4, warmup_steps: 2}
    strategy_options: {target_layer: 2, lora_r: 16}   # shared defaults of every strategy
    reference: none                   # every strategy is compared with this one
    correction: holm                  # holm | bh | none, within each family (a research question, or the
                                      # exploratory comparisons; see tli.compare.questions)
    alpha: 0.05
    n_resamples: 1000                 # bootstrap resamples, and the least Monte Carlo resamples of a test
    noninferiority_margin: 0.01       # "preserves": not worse than the zero-shot base by more than this

Everything is checked when the file is read — unknown keys, strategies and tasks (valid ones listed),
languages a dataset lacks (the ones it has listed), a budget of zero steps, a strategy that needs a device this
machine lacks — so a bad experiment stops with one line before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tli.errors import ConfigError, TliError
from tli.strategies import STRATEGIES, StrategyOptions, get_strategy
from tli.strategies.finetune import Budget
from tli.tasks import TASKS, get_task

TOP_KEYS = {
    "name",
    "description",
    "models",
    "strategies",
    "tasks",
    "seeds",
    "train",
    "budget",
    "strategy_options",
    "reference",
    "correction",
    "alpha",
    "n_resamples",
    "noninferiority_margin",
    "dtype",
    "device",
    "device_map",
    "max_memory",
    "offload_folder",
    "save_full_weights",
    "retrieval",
}
CORRECTIONS = ("holm", "bh", "none")


@dataclass(kw_only=True)
class TrainData:
    """The task data every fine-tuning strategy trains on."""

    task: str
    language: str
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
    options: StrategyOptions
    device: str | None = None
    """Run this strategy on this device (``cuda`` needs a GPU); default: the experiment's device."""


@dataclass(kw_only=True)
class Experiment:
    """A parsed, validated experiment."""

    name: str
    models: list[str]
    strategies: list[StrategySpec]
    tasks: dict[str, Any]
    """Task name → its config object (``XLSumConfig``, ``XNLIConfig``, …)."""
    seeds: list[int]
    train: TrainData | None
    budget: Budget
    reference: str
    correction: str = "holm"
    alpha: float = 0.05
    n_resamples: int = 1000
    noninferiority_margin: float = 0.01
    """Margin of the non-inferiority hypotheses ("preserves zero-shot XNLI"), in accuracy (0.01 = 1 point)."""
    dtype: str = "auto"
    device: str = "auto"
    device_map: str | None = None
    """``auto`` / ``balanced`` / ``sequential`` / a JSON file: spread each model over the GPUs (one process)."""
    max_memory: str | None = None
    """Per-device caps for ``device_map`` (``0=70GiB,1=70GiB,cpu=200GiB``)."""
    offload_folder: str | None = None
    """Where weights placed on ``disk`` go (inference only)."""
    save_full_weights: bool = False
    description: str = ""
    source: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    retrieval: Any = None
    """The ``retrieval:`` block (:class:`tli.compare.retrieval_settings.RetrievalSettings`); None without retrieval
    tasks."""
    train_task_config: Any = None
    """Config of the train task when the experiment does not evaluate it (``train.path``)."""

    def strategy_task_languages(self) -> list[tuple[str, str]]:
        """The (task, language) cells every strategy is scored on (retrieval ones only with ``dense``)."""
        from tli.tasks import is_retrieval

        dense = self.retrieval is None or "dense" in self.retrieval.systems
        return [
            (task, language)
            for task, config in self.tasks.items()
            if dense or not is_retrieval(task)
            for language in config.languages
        ]

    def cells(self) -> list[tuple[Any, str, str, str, Any]]:
        """Every (model, strategy or system, task, language, seed) the experiment scores."""
        from tli.compare.retrieval_runner import experiment_system_cells

        return [
            (model, spec.name, task, language, seed)
            for model in self.models
            for spec in self.strategies
            for task, language in self.strategy_task_languages()
            for seed in self.seeds
        ] + experiment_system_cells(self)

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
        return {
            **self.unit_settings(model, strategy, seed),
            "task": task,
            "language": language,
            "task_options": task_settings(self.tasks[task]),
        }


def task_settings(config: Any) -> dict[str, Any]:
    """A task config as settings: every option but ``languages`` (adding a language changes no other cell)."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k != "languages"}


def shipped_experiments() -> dict[str, Path]:
    """Experiments shipped with tli (``tli/experiments/*.yaml``), by name."""
    root = resources.files("tli") / "experiments"
    return {p.name.removesuffix(".yaml"): Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def read_experiment_file(spec: str | Path) -> tuple[dict[str, Any], Path]:
    """The YAML mapping of an experiment file or shipped experiment name."""
    from tli.limits import read_yaml

    path = Path(spec)
    if not path.is_file():
        path = shipped_experiments().get(str(spec), path)
    if not path.is_file():
        names = ", ".join(sorted(shipped_experiments()))
        raise ConfigError(f"{spec}: no such experiment file or shipped experiment ({names})")
    data = read_yaml(path, str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with models, strategies and tasks")
    return data, path


def _list(value: Any, key: str, path: Path) -> list:
    if isinstance(value, (str, int)):
        return [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{path}: `{key}` must be a non-empty list")
    return value


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


def _strategies(raw: Any, shared: dict[str, Any], path: Path) -> list[StrategySpec]:
    items = raw.items() if isinstance(raw, dict) else ((name, {}) for name in _list(raw, "strategies", path))
    specs = []
    for name, own in items:
        if name not in STRATEGIES:
            raise ConfigError(f"{path}: unknown strategy {name!r} (valid: {', '.join(STRATEGIES)})")
        own = dict(own or {})
        device = own.pop("device", None)
        options = dataclass_from(StrategyOptions, {**shared, **own}, f"strategies.{name}", path)
        for key in ("lexicon", "tli_adapter"):  # files, relative to the experiment file as data paths are
            if getattr(options, key):
                setattr(options, key, _resolve_data_path(str(getattr(options, key)), path))
        specs.append(StrategySpec(name=str(name), options=options, device=device))
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: a strategy is listed twice in `strategies`")
    return specs


def _tasks(raw: Any, path: Path) -> dict[str, Any]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: `tasks` must map task names to their options, e.g. xnli: {{path: FILE}}")
    tasks = {}
    for name, options in raw.items():
        if name not in TASKS:
            raise ConfigError(f"{path}: {valid_tasks(name)}")
        options = dict(options or {})
        if "path" in options and options["path"] is not None:
            options["path"] = _resolve_data_path(str(options["path"]), path)
        try:
            tasks[name] = get_task(name).make_config(options)
        except ConfigError as exc:
            raise ConfigError(f"{path}: task {name}: {exc}") from exc
    return tasks


def valid_tasks(name: str) -> str:
    """``unknown task 'x' (valid: xlsum, xnli); retrieval tasks: mrtydi, tydi, xquad``."""
    from tli.tasks import is_retrieval

    plain = sorted(task for task in TASKS if not is_retrieval(task))
    retrieval = sorted(task for task in TASKS if is_retrieval(task))
    return f"unknown task {name!r} (valid: {', '.join(plain)}); retrieval tasks: {', '.join(retrieval)}"


def _resolve_data_path(value: str, experiment_file: Path) -> str:
    """A relative data path is relative to the experiment file; ``samples:`` names tli's shipped samples."""
    if value.startswith("samples:"):
        from tli.tasks import SAMPLES_DIR

        return str(SAMPLES_DIR / value.removeprefix("samples:").strip("/"))
    candidate = Path(value).expanduser()
    if (
        candidate.is_absolute()
        or re.match(r"^[\w.-]+/[\w.-]+$", value)
        and not (experiment_file.parent / value).exists()
    ):
        return str(candidate)  # absolute, or a hub id such as csebuetnlp/xlsum
    return str((experiment_file.parent / candidate).resolve())


def check_data(tasks: dict[str, Any], path: Path) -> None:
    """Every asked language exists in its local dataset, and its rows read (a file in the wrong format names
    its file, line and field now, not after an hour of training). Hub ids are checked when loaded."""
    from tli.tasks import is_retrieval

    for name, config in tasks.items():
        data, task = config.path, get_task(name)
        if data is not None and not Path(data).exists():
            continue  # a hub id: checked online
        if is_retrieval(name):
            # retrieval loaders check languages themselves (XQuAD's are query-passage pairs, and asking it
            # for Swahili names the Swahili sets)
            for language in config.languages:
                task.load(data, language, split=config.split, limit=config.limit, config=config)
            continue
        available = task.available_languages(data)
        missing = [lang for lang in config.languages if available and lang not in available]
        if missing:
            raise ConfigError(
                f"{path}: task {name}: {data or 'shipped sample'} has no language {', '.join(missing)} "
                f"(it has: {', '.join(available) or 'none'})"
            )
        for language in config.languages:
            task.load(data, language, split=config.split, limit=config.limit)


def check_models(models: list[str], path: Path) -> None:
    """A local model (a directory or a ``.gguf`` file) exists and is one; a hub id is read when the run loads it.

    Model entries are used as written: a relative path is relative to the directory tli runs in.
    """
    from tli.errors import ModelLoadError
    from tli.models import classify_model

    for model in models:
        try:
            classify_model(model)
        except ModelLoadError as exc:
            raise ConfigError(f"{path}: models: {exc}") from exc


def check_strategy_files(strategies: list[StrategySpec], path: Path) -> None:
    """The files a strategy reads besides the task data: the lexicon a ``tli`` / ``tli+lora`` strategy trains
    its adapter on (read and split now), or the adapter it is given (``tli_adapter``)."""
    from tli.adapter import read_adapter_meta
    from tli.lexicon import split_for_study

    for spec in strategies:
        if spec.name not in ("tli", "tli+lora"):
            continue
        options = spec.options
        try:
            if options.tli_adapter:
                read_adapter_meta(options.tli_adapter)
            else:
                split_for_study(options.lexicon)
        except TliError as exc:
            raise ConfigError(f"{path}: strategy {spec.name}: {exc}") from exc


def check_devices(experiment: Experiment, path: Path) -> None:
    """A strategy that asks for CUDA on a machine without it stops here, before anything runs."""
    import torch

    for spec in experiment.strategies:
        device = spec.device or experiment.device
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(
                f"{path}: strategy {spec.name} needs device {device}, but this machine has no CUDA GPU "
                "(drop its `device`, or run the experiment where a GPU is available)"
            )


def parse_experiment(spec: str | Path, *, check_device: bool = True, check_files: bool = True) -> Experiment:
    """Read and validate an experiment file (or a shipped experiment's name).

    Every file the run will read is read now (each task's data for every language and split, the training
    data, a TLI strategy's lexicon or adapter, a local model's directory or GGUF file, the retrieval data and
    encoder), so an experiment that parses — and a ``--dry-run`` that says *valid* — does not stop later for a
    missing or malformed file.

    Args:
        check_device: refuse strategies that need a device this machine lacks (a dry run only reports it).
        check_files: read the data files (``False``: the settings alone, e.g. to re-derive a finished run's
            comparisons from its files).

    Raises:
        ConfigError: anything wrong, in one line naming the file and the key.
    """
    raw, path = read_experiment_file(spec)
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(TOP_KEYS))})"
        )
    for key in ("models", "strategies", "tasks"):
        if key not in raw:
            raise ConfigError(f"{path}: missing `{key}`")
    shared = raw.get("strategy_options") or {}
    if not isinstance(shared, dict):
        raise ConfigError(f"{path}: `strategy_options` must be a mapping")
    strategies = _strategies(raw["strategies"], shared, path)
    tasks = _tasks(raw["tasks"], path)
    seeds = [int(s) for s in _list(raw.get("seeds", [0]), "seeds", path)]
    budget = dataclass_from(Budget, raw.get("budget"), "budget", path)
    train, train_task_config = _train_data(raw.get("train"), tasks, strategies, path, check_files)
    reference = str(raw.get("reference", "none"))
    if reference not in {s.name for s in strategies}:
        raise ConfigError(f"{path}: reference {reference!r} is not one of the experiment's strategies")
    correction = str(raw.get("correction", "holm"))
    if correction not in CORRECTIONS:
        raise ConfigError(f"{path}: correction {correction!r} is not one of {', '.join(CORRECTIONS)}")
    experiment = Experiment(
        name=str(raw.get("name", path.stem)),
        description=str(raw.get("description", "")),
        models=[str(m) for m in _list(raw["models"], "models", path)],
        strategies=strategies,
        tasks=tasks,
        seeds=seeds,
        train=train,
        budget=budget,
        reference=reference,
        correction=correction,
        alpha=float(raw.get("alpha", 0.05)),
        n_resamples=int(raw.get("n_resamples", 1000)),
        noninferiority_margin=float(raw.get("noninferiority_margin", 0.01)),
        dtype=str(raw.get("dtype", "auto")),
        device=str(raw.get("device", "auto")),
        device_map=None if raw.get("device_map") is None else str(raw["device_map"]),
        max_memory=None if raw.get("max_memory") is None else str(raw["max_memory"]),
        offload_folder=None if raw.get("offload_folder") is None else str(raw["offload_folder"]),
        save_full_weights=bool(raw.get("save_full_weights", False)),
        source=str(path),
        raw=raw,
        train_task_config=train_task_config,
    )
    from tli.compare.retrieval_settings import parse_retrieval

    experiment.retrieval = parse_retrieval(
        raw.get("retrieval"), tasks, [s.name for s in strategies], path, read_data=check_files
    )
    if not 0 < experiment.alpha < 1:
        raise ConfigError(f"{path}: alpha must be in (0, 1), got {experiment.alpha}")
    if not 0 < experiment.noninferiority_margin < 1:
        raise ConfigError(
            f"{path}: noninferiority_margin must be in (0, 1) (an accuracy difference), got "
            f"{experiment.noninferiority_margin}"
        )
    if experiment.n_resamples < 99:
        raise ConfigError(f"{path}: n_resamples must be >= 99, got {experiment.n_resamples}")
    if check_files:
        check_data(tasks, path)
        check_models(experiment.models, path)
        check_strategy_files(strategies, path)
    if check_device:
        check_devices(experiment, path)
    for spec in strategies:
        get_strategy(spec.name, spec.options)
    return experiment


def _train_data(
    raw: Any, tasks: dict[str, Any], strategies: list[StrategySpec], path: Path, check_files: bool = True
) -> tuple[TrainData | None, Any]:
    """The train data and, for a task the experiment does not evaluate (``train.path``), its config."""
    if not any(STRATEGIES[s.name].trains_on_task for s in strategies):
        return None, None  # nothing fine-tunes on a task
    if raw is None:
        trainable = [name for name in tasks if get_task(name).trainable]
        if not trainable:
            raise ConfigError(
                f"{path}: strategies {', '.join(s.name for s in strategies if STRATEGIES[s.name].trains_on_task)} "
                "fine-tune on a task, but no task here has training data: add xlsum, or a `train:` entry"
            )
        name = trainable[0]
        raw = {"task": name, "language": tasks[name].languages[0]}
    train = dataclass_from(TrainData, raw, "train", path)
    if train.task not in TASKS:
        raise ConfigError(f"{path}: train: {valid_tasks(train.task)}")
    if not get_task(train.task).trainable:
        raise ConfigError(f"{path}: train task {train.task} has no training data (it is zero-shot)")
    config = None
    if train.options and train.path is None:
        raise ConfigError(
            f"{path}: train.options only apply with train.path (a task the experiment does not "
            "evaluate); set the options under tasks otherwise"
        )
    if train.path is not None or train.task not in tasks:
        if train.path is None:
            raise ConfigError(
                f"{path}: train task {train.task!r} is not one of the experiment's tasks: evaluate it, or "
                f"give train.path (e.g. samples:{train.task})"
            )
        train.path = _resolve_data_path(str(train.path), path)
        try:
            # an evaluated task's options (prompt, max_input_tokens…) hold for its training file too
            scored = dataclasses.asdict(tasks[train.task]) if train.task in tasks else {}
            values = {**scored, **(train.options or {}), "path": train.path, "languages": [train.language]}
            config = get_task(train.task).make_config(values)
        except ConfigError as exc:
            raise ConfigError(f"{path}: `train`: {exc}") from exc
    if check_files:
        check_train_data(train, config or tasks[train.task], from_task=config is None, path=path)
    return train, config


def check_train_data(train: TrainData, config: Any, *, from_task: bool, path: Path) -> None:
    """The data strategies fine-tune on exists and reads (a dry run that passes never fails later for it).

    A task's ``path`` that is one file is the data the task is scored on: training on it too would score the
    strategies on their training examples, so it is refused unless ``train.path`` names the training file.

    Raises:
        ConfigError: the evaluation file given as training data (``from_task``), or data that cannot be read
            (file, line and field).
    """
    data = config.path
    split = train.split or getattr(config, "train_split", "train")
    if from_task and data is not None and Path(data).is_file():
        raise ConfigError(
            f"{path}: strategies fine-tune on {train.task} ({train.language}, split {split}), but "
            f"tasks.{train.task}.path is one file ({data}), the data they are scored on: give the training data "
            f"as `train: {{task: {train.task}, language: {train.language}, path: TRAIN_FILE}}`, or set "
            f"tasks.{train.task}.path to a folder of <language>_<split>.jsonl files"
        )
    if data is None or Path(data).exists():  # a hub id is read when the run needs it
        try:
            get_task(train.task).load(data, train.language, split=split, limit=train.limit)
        except TliError as exc:
            raise ConfigError(
                f"{path}: `train` ({train.task}, {train.language}, split {split}): {exc}"
            ) from exc
