"""Reading an experiment YAML of ``tli compare`` into a validated :class:`~tli.compare.schema.Experiment`.

A minimal experiment (every key but ``models``, ``strategies`` and ``tasks`` optional; each key is documented
on its field in :mod:`tli.compare.schema`)::

    models: [default]
    strategies: [none, lora, full]
    tasks:
      xlsum: {path: data/xlsum, languages: [sw], max_new_tokens: 64}
      xnli: {path: data/xnli.test.tsv, languages: [sw, en]}
    budget: {steps: 20, batch_size: 4}

Everything is checked when the file is read — unknown keys, strategies and tasks (valid ones listed),
languages a dataset lacks (the ones it has listed), a budget of zero steps, a strategy that needs a device this
machine lacks — and every problem found is reported together, in one line, before any model is loaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from tli.adapter import read_adapter_meta
from tli.compare.retrieval_settings import parse_retrieval
from tli.compare.schema import (
    Experiment,
    Problems,
    StrategySpec,
    TrainData,
    dataclass_from,
    resolve_data_path,
)
from tli.config import CORRECTIONS
from tli.errors import ConfigError, ModelLoadError, TliError
from tli.lexicon import split_for_study
from tli.limits import read_yaml
from tli.models import classify_model
from tli.models.vllm_engine import check_vllm_available
from tli.strategies import STRATEGIES, StrategyOptions, get_strategy
from tli.strategies.finetune import Budget
from tli.tasks import TASKS, get_task, is_retrieval
from tli.tasks.harness import KEY as HARNESS_KEY
from tli.tasks.harness import parse_block

BACKENDS = ("hf", "vllm")
"""Engines of the generation and log-likelihood cells (``backend:``)."""

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
    "backend",
    "retrieval",
}


def shipped_experiments() -> dict[str, Path]:
    """Experiments shipped with tli (``tli/experiments/*.yaml``), by name."""
    root = resources.files("tli") / "experiments"
    return {p.name.removesuffix(".yaml"): Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def read_experiment_file(spec: str | Path) -> tuple[dict[str, Any], Path]:
    """The YAML mapping of an experiment file or shipped experiment name."""
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
                setattr(options, key, resolve_data_path(str(getattr(options, key)), path))
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
        if name == HARNESS_KEY:  # lm-evaluation-harness tasks: one tli task per harness task
            try:
                tasks.update(parse_block(options, lambda value: resolve_data_path(value, path)))
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc}") from exc
            continue
        if name not in TASKS:
            raise ConfigError(f"{path}: {valid_tasks(name)}")
        options = dict(options or {})
        if "path" in options and options["path"] is not None:
            options["path"] = resolve_data_path(str(options["path"]), path)
        try:
            tasks[name] = get_task(name).make_config(options)
        except ConfigError as exc:
            raise ConfigError(f"{path}: task {name}: {exc}") from exc
    return tasks


def valid_tasks(name: str) -> str:
    """``unknown task 'x' (valid: xlsum, xnli); retrieval tasks: mrtydi, tydi, xquad``."""
    plain = sorted(task for task in TASKS if not is_retrieval(task))
    retrieval = sorted(task for task in TASKS if is_retrieval(task))
    return (
        f"unknown task {name!r} (valid: {', '.join(plain)}); retrieval tasks: {', '.join(retrieval)}; "
        f"lm-evaluation-harness tasks: under {HARNESS_KEY}"
    )


def check_data(tasks: dict[str, Any], path: Path) -> None:
    """Every asked language exists in its local dataset, and its rows read (a file in the wrong format names
    its file, line and field now, not after an hour of training). Hub ids are checked when loaded."""
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
    for model in models:
        try:
            classify_model(model)
        except ModelLoadError as exc:
            raise ConfigError(f"{path}: models: {exc}") from exc


def check_strategy_files(strategies: list[StrategySpec], path: Path) -> None:
    """The files a strategy reads besides the task data: the lexicon a ``tli`` / ``tli+lora`` strategy trains
    its adapter on (read and split now), or the adapter it is given (``tli_adapter``)."""
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
    """A strategy that asks for CUDA on a machine without it, or ``backend: vllm`` without a GPU or without
    vLLM, stops here, before anything runs."""
    if experiment.backend == "vllm":
        try:
            check_vllm_available(torch.cuda.is_available())
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    for spec in experiment.strategies:
        device = spec.device or experiment.device
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(
                f"{path}: strategy {spec.name} needs device {device}, but this machine has no CUDA GPU "
                "(drop its `device`, or run the experiment where a GPU is available)"
            )


def parse_experiment(spec: str | Path, *, check_device: bool = True, check_files: bool = True) -> Experiment:
    """Read and validate an experiment file (or a shipped experiment's name).

    Four phases: the top-level keys, each block (strategies, tasks, budget, train, retrieval — every problem
    of every block is collected and raised together), the files the run will read, then the devices. Every
    file the run will read is read now (each task's data for every language and split, the training data, a
    TLI strategy's lexicon or adapter, a local model's directory or GGUF file, the retrieval data and
    encoder), so an experiment that parses — and a ``--dry-run`` that says *valid* — does not stop later for a
    missing or malformed file.

    Args:
        check_device: refuse strategies that need a device this machine lacks (a dry run only reports it).
        check_files: read the data files (``False``: the settings alone, e.g. to re-derive a finished run's
            comparisons from its files).

    Raises:
        ConfigError: everything wrong, in one line naming the file and each key.
    """
    raw, path = read_experiment_file(spec)
    problems = Problems(path)
    _check_top_level(raw, problems)
    if not {"models", "strategies", "tasks"} <= set(raw):
        problems.raise_if_any()  # the blocks below need them
    experiment = _parse_blocks(raw, path, problems, check_files)
    problems.raise_if_any()
    assert experiment is not None
    if check_files:
        _collect(problems, check_data, experiment.tasks, path)
        _collect(problems, check_models, experiment.models, path)
        _collect(problems, check_strategy_files, experiment.strategies, path)
        problems.raise_if_any()
    if check_device:
        check_devices(experiment, path)
    for spec_ in experiment.strategies:
        get_strategy(spec_.name, spec_.options)
    return experiment


def _collect(problems: Problems, check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``check(*args)``, or None with its ConfigError noted (without the file prefix, said once)."""
    try:
        return check(*args, **kwargs)
    except ConfigError as exc:
        message = str(exc)
        problems.add(message.removeprefix(f"{problems.path}: "))
        return None


def _check_top_level(raw: dict[str, Any], problems: Problems) -> None:
    """Unknown and missing top-level keys."""
    unknown = sorted(set(raw) - TOP_KEYS)
    problems.check(not unknown, f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(TOP_KEYS))})")
    for key in ("models", "strategies", "tasks"):
        problems.check(key in raw, f"missing `{key}`")


def _parse_blocks(
    raw: dict[str, Any], path: Path, problems: Problems, check_files: bool
) -> Experiment | None:
    """Each block of the file, parsed and checked on its own; None when one of them failed."""
    shared = raw.get("strategy_options") or {}
    if not isinstance(shared, dict):
        problems.add("`strategy_options` must be a mapping")
        shared = {}
    strategies = _collect(problems, _strategies, raw["strategies"], shared, path)
    tasks = _collect(problems, _tasks, raw["tasks"], path)
    models = _collect(problems, _list, raw["models"], "models", path)
    seeds = _collect(problems, _seeds, raw.get("seeds", [0]), path)
    budget = _collect(problems, dataclass_from, Budget, raw.get("budget"), "budget", path)
    reference = str(raw.get("reference", "none"))
    correction = str(raw.get("correction", "holm"))
    problems.check(
        correction in CORRECTIONS, f"correction {correction!r} is not one of {', '.join(CORRECTIONS)}"
    )
    statistics = _collect(problems, _statistics, raw, path)
    train = train_task_config = retrieval = None
    if strategies is not None:
        problems.check(
            reference in {s.name for s in strategies},
            f"reference {reference!r} is not one of the experiment's strategies",
        )
    if strategies is not None and tasks is not None:
        parsed = _collect(problems, _train_data, raw.get("train"), tasks, strategies, path, check_files)
        train, train_task_config = parsed or (None, None)
        retrieval = _collect(
            problems,
            parse_retrieval,
            raw.get("retrieval"),
            tasks,
            [s.name for s in strategies],
            path,
            read_data=check_files,
        )
    backend = str(raw.get("backend", "hf"))
    problems.check(backend in BACKENDS, f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "vllm" and strategies is not None:
        problems.check(
            "full" not in {s.name for s in strategies} or bool(raw.get("save_full_weights", False)),
            "backend vllm scores a full fine-tune from its saved weights: set save_full_weights: true",
        )
    if problems.items:
        return None
    return Experiment(
        name=str(raw.get("name", path.stem)),
        description=str(raw.get("description", "")),
        models=[str(m) for m in models],
        strategies=strategies,
        tasks=tasks,
        seeds=seeds,
        train=train,
        budget=budget,
        reference=reference,
        correction=correction,
        **statistics,
        dtype=str(raw.get("dtype", "auto")),
        device=str(raw.get("device", "auto")),
        device_map=_optional_str(raw.get("device_map")),
        max_memory=_optional_str(raw.get("max_memory")),
        offload_folder=_optional_str(raw.get("offload_folder")),
        save_full_weights=bool(raw.get("save_full_weights", False)),
        backend=backend,
        source=str(path),
        raw=raw,
        train_task_config=train_task_config,
        retrieval=retrieval,
    )


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _seeds(raw: Any, path: Path) -> list[int]:
    try:
        return [int(s) for s in _list(raw, "seeds", path)]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: `seeds` must be whole numbers, got {raw!r}") from exc


def _statistics(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """``alpha``, ``n_resamples`` and ``noninferiority_margin``, each in its range (every problem at once)."""
    try:
        values = {
            "alpha": float(raw.get("alpha", 0.05)),
            "n_resamples": int(raw.get("n_resamples", 1000)),
            "noninferiority_margin": float(raw.get("noninferiority_margin", 0.01)),
        }
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{path}: alpha, n_resamples and noninferiority_margin must be numbers ({exc})"
        ) from exc
    problems = Problems(path)
    problems.check(0 < values["alpha"] < 1, f"alpha must be in (0, 1), got {values['alpha']}")
    problems.check(
        0 < values["noninferiority_margin"] < 1,
        "noninferiority_margin must be in (0, 1) (an accuracy difference), got "
        f"{values['noninferiority_margin']}",
    )
    problems.check(values["n_resamples"] >= 99, f"n_resamples must be >= 99, got {values['n_resamples']}")
    problems.raise_if_any()
    return values


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
        train.path = resolve_data_path(str(train.path), path)
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
