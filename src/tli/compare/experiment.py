"""An experiment of ``tli compare``: models × strategies × tasks × seeds, with one training budget.

YAML schema (every key but ``models``, ``strategies`` and ``tasks`` optional)::

    models: [default]                 # the embedded model, local directories, .gguf files or hub ids
    strategies: [none, lora, full]    # or a mapping name → options, e.g. {lora-early: {layers: 2}}
    tasks:                            # task name → its options (path: local file/folder or hub id)
      xlsum: {path: data/xlsum, languages: [sw], max_new_tokens: 64}
      xnli: {path: data/xnli.test.tsv, languages: [sw, en]}
    seeds: [0]
    train: {task: xlsum, language: sw}  # what strategies fine-tune on (default: the first trainable task)
    budget: {steps: 20, batch_size: 4, lr: 2.0e-4, warmup_steps: 2}
    strategy_options: {target_layer: 2, lora_r: 16}   # shared defaults of every strategy
    reference: none                   # every strategy is compared with this one
    correction: holm                  # holm | bh | none, over all comparisons of the run
    alpha: 0.05
    n_resamples: 1000                 # randomisation and bootstrap resamples per comparison

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

from tli.errors import ConfigError
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
    "dtype",
    "device",
    "save_full_weights",
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
    dtype: str = "auto"
    device: str = "auto"
    save_full_weights: bool = False
    description: str = ""
    source: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def cells(self) -> list[tuple[str, str, str, str, int]]:
        """Every (model, strategy, task, language, seed) the experiment scores."""
        return [
            (model, spec.name, task, language, seed)
            for model in self.models
            for spec in self.strategies
            for task, config in self.tasks.items()
            for language in config.languages
            for seed in self.seeds
        ]

    def strategy(self, name: str) -> StrategySpec:
        return next(spec for spec in self.strategies if spec.name == name)


def shipped_experiments() -> dict[str, Path]:
    """Experiments shipped with tli (``tli/experiments/*.yaml``), by name."""
    root = resources.files("tli") / "experiments"
    return {p.name.removesuffix(".yaml"): Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def read_experiment_file(spec: str | Path) -> tuple[dict[str, Any], Path]:
    """The YAML mapping of an experiment file or shipped experiment name."""
    import yaml

    path = Path(spec)
    if not path.is_file():
        path = shipped_experiments().get(str(spec), path)
    if not path.is_file():
        names = ", ".join(sorted(shipped_experiments()))
        raise ConfigError(f"{spec}: no such experiment file or shipped experiment ({names})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with models, strategies and tasks")
    return data, path


def _list(value: Any, key: str, path: Path) -> list:
    if isinstance(value, (str, int)):
        return [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{path}: `{key}` must be a non-empty list")
    return value


def _dataclass_from(cls: type, values: Any, what: str, path: Path) -> Any:
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
    except ConfigError as exc:
        raise ConfigError(f"{path}: `{what}`: {exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"{path}: `{what}`: {exc}") from exc


def _strategies(raw: Any, shared: dict[str, Any], path: Path) -> list[StrategySpec]:
    items = raw.items() if isinstance(raw, dict) else ((name, {}) for name in _list(raw, "strategies", path))
    specs = []
    for name, own in items:
        if name not in STRATEGIES:
            raise ConfigError(f"{path}: unknown strategy {name!r} (valid: {', '.join(STRATEGIES)})")
        own = dict(own or {})
        device = own.pop("device", None)
        options = _dataclass_from(StrategyOptions, {**shared, **own}, f"strategies.{name}", path)
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
            raise ConfigError(f"{path}: unknown task {name!r} (valid: {', '.join(sorted(TASKS))})")
        options = dict(options or {})
        if "path" in options and options["path"] is not None:
            options["path"] = _resolve_data_path(str(options["path"]), path)
        try:
            tasks[name] = get_task(name).make_config(options)
        except ConfigError as exc:
            raise ConfigError(f"{path}: task {name}: {exc}") from exc
    return tasks


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
    for name, config in tasks.items():
        data, task = config.path, get_task(name)
        if data is not None and not Path(data).exists():
            continue  # a hub id: checked online
        available = task.available_languages(data)
        missing = [lang for lang in config.languages if available and lang not in available]
        if missing:
            raise ConfigError(
                f"{path}: task {name}: {data or 'shipped sample'} has no language {', '.join(missing)} "
                f"(it has: {', '.join(available) or 'none'})"
            )
        for language in config.languages:
            task.load(data, language, split=config.split, limit=config.limit)


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


def parse_experiment(spec: str | Path, *, check_device: bool = True) -> Experiment:
    """Read and validate an experiment file (or a shipped experiment's name).

    Args:
        check_device: refuse strategies that need a device this machine lacks (a dry run only reports it).

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
    budget = _dataclass_from(Budget, raw.get("budget"), "budget", path)
    train = _train_data(raw.get("train"), tasks, strategies, path)
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
        dtype=str(raw.get("dtype", "auto")),
        device=str(raw.get("device", "auto")),
        save_full_weights=bool(raw.get("save_full_weights", False)),
        source=str(path),
        raw=raw,
    )
    if not 0 < experiment.alpha < 1:
        raise ConfigError(f"{path}: alpha must be in (0, 1), got {experiment.alpha}")
    if experiment.n_resamples < 99:
        raise ConfigError(f"{path}: n_resamples must be >= 99, got {experiment.n_resamples}")
    check_data(tasks, path)
    if check_device:
        check_devices(experiment, path)
    for spec in strategies:
        get_strategy(spec.name, spec.options)
    return experiment


def _train_data(
    raw: Any, tasks: dict[str, Any], strategies: list[StrategySpec], path: Path
) -> TrainData | None:
    if not any(STRATEGIES[s.name].trains_on_task for s in strategies):
        return None  # nothing fine-tunes on a task
    if raw is None:
        trainable = [name for name in tasks if get_task(name).trainable]
        if not trainable:
            raise ConfigError(
                f"{path}: strategies {', '.join(s.name for s in strategies if STRATEGIES[s.name].trains_on_task)} "
                "fine-tune on a task, but no task here has training data: add xlsum, or a `train:` entry"
            )
        name = trainable[0]
        raw = {"task": name, "language": tasks[name].languages[0]}
    train = _dataclass_from(TrainData, raw, "train", path)
    if train.task not in tasks:
        raise ConfigError(f"{path}: train task {train.task!r} is not one of the experiment's tasks")
    if not get_task(train.task).trainable:
        raise ConfigError(f"{path}: train task {train.task} has no training data (it is zero-shot)")
    return train
