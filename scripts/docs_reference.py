"""MkDocs hook: the reference pages generated from the code at build time, so they cannot drift from it.

``mkdocs.yml`` names this file under ``hooks:``. On every build it adds these pages (in memory; nothing is
written into ``docs/``):

- ``reference/cli.md`` — every ``tli`` command with every option, from the argparse parsers the CLI itself
  builds (:data:`CLI_PARSER`, :data:`COMMAND_PARSER`), with the YAML key, type and default of the config
  dataclass field behind each option (:data:`COMMAND_CONFIGS`);
- ``reference/experiment.md`` — the experiment YAML of ``tli compare``: each block's keys, types, defaults and
  attribute docstrings, from the dataclasses the experiment loader fills (:data:`EXPERIMENT_SCHEMA` …);
- ``reference/vocabulary.md`` — the named choices (poolings, strategies, tasks, criteria, …) from their
  constants (:data:`VOCABULARY`);
- ``reference/launch.md`` — how every shipped full-scale experiment launches: per (model, strategy) the GPUs,
  launcher, nodes, command and training GPU-hours, and its SLURM arrays, from the dry run (:data:`DRY_RUN`);
- ``reference/api.md`` — the Python API as mkdocstrings ``::: module`` blocks, for the names ``import tli``
  exports (:data:`API_REGISTRY`) and the modules in :data:`API_MODULES`.

Every import path this hook uses is a ``"module:attribute"`` constant below: when a module moves, fix it
here and nowhere else. ``tests/test_docs.py`` imports this file and checks the pages against the real parser
and loader.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import textwrap
from typing import Any

# --------------------------------------------------------------------------------------------------
# Where the generated pages read from (one place to fix after a module moves)
# --------------------------------------------------------------------------------------------------

CLI_PARSER = "tli.cli:build_parser"
"""The top-level ``tli`` parser (global options, the list of commands)."""
CLI_HANDLERS = "tli.cli:HANDLERS"
"""Command name → handler; its order is the order of the page."""
CLI_SUMMARIES = "tli.cli:SUMMARIES"
"""Command name → one-line summary."""
COMMAND_PARSER = "tli.config:build_parser"
"""``build_parser(command)``: a command's parser, generated from its config dataclass."""
COMMAND_CONFIGS = "tli.config:COMMANDS"
"""Command name → config dataclass (fields = options = YAML keys)."""
SHIPPED_CONFIGS = "tli.config:shipped_configs"
"""Shipped ``--config`` files by name."""

EXPERIMENT_SCHEMA = "tli.compare.schema:Experiment"
"""The parsed experiment (top-level keys)."""
EXPERIMENT_TOP_KEYS = "tli.compare.experiment:TOP_KEYS"
"""The top-level keys an experiment file may have."""
EXPERIMENT_LOADER = "tli.compare.experiment:parse_experiment"
"""``parse_experiment(path)``: reads and validates an experiment file (used by tests/test_docs.py)."""
SHIPPED_EXPERIMENTS = "tli.compare.experiment:shipped_experiments"
DRY_RUN = "tli.compare:dry_run"
"""The dry run of an experiment (its units' launch plan and SLURM arrays)."""
TRAIN_DATA = "tli.compare.schema:TrainData"
BUDGET = "tli.strategies.finetune:Budget"
STRATEGY_OPTIONS = "tli.strategies:StrategyOptions"
STRATEGIES = "tli.strategies:STRATEGIES"
TASKS = "tli.tasks:TASKS"
"""Task name → task object; ``task.config_class`` is the dataclass of ``tasks: {<name>: …}``."""
RETRIEVAL_PLAN = "tli.compare.schema:RetrievalSettings"
BM25_SPEC = "tli.compare.schema:BM25Spec"
FUSION_SPEC = "tli.compare.schema:FusionSpec"
DATA_REF = "tli.compare.schema:DataRef"
BIENCODER_OPTIONS = "tli.retrieval.biencoder:BiEncoderOptions"
BIENCODER_CONDITIONS = "tli.retrieval.biencoder:CONDITIONS"
SYNTHETIC_OPTIONS = "tli.tasks.retrieval.synthetic:SyntheticOptions"

VOCABULARY = {
    "pooling recipes (`--pooling`)": "tli.pooling:POOLINGS",
    "start-token modes (`--add-bos`)": "tli.pooling:ADD_BOS",
    "layer-choice criteria (`--select-by`)": "tli.config:CRITERIA",
    "TLI losses (`--loss`)": "tli.config:LOSS_NAMES",
    "multiple-testing corrections (`--correction`, experiment `correction`)": "tli.config:CORRECTIONS",
    "quantisations (`--quantization`)": "tli.architecture:QUANTIZATIONS",
    "device-map strategies (`--device-map`)": "tli.placement:DEVICE_MAP_STRATEGIES",
    "strategies of `tli compare`": STRATEGIES,
    "tasks of `tli compare`": TASKS,
    "dense-retriever conditions": BIENCODER_CONDITIONS,
    "retrieval systems": "tli.compare.schema:SYSTEMS",
    "tests behind a comparison's `p_value` (key: the name `test` holds in results.json)": (
        "tli.compare.significance:TESTS"
    ),
}
"""Page heading → a constant (tuple, or dict whose keys are the names)."""

API_REGISTRY = "tli:_API"
"""Name → module of everything ``import tli`` exports (resolved lazily)."""
API_MODULES = {
    "tli.stats": ["mcnemar_exact", "noninferiority_paired"],
    "tli.errors": None,
    "tli.compare": ["compare", "analyse"],
    "tli.plan": ["plan"],
    "tli.claims": ["Claim", "judge", "outcome", "SeedSummary", "summarise_seeds", "across_seeds"],
    "tli.seeds": ["random_effects", "SeedCombination"],
    "tli.compare.significance": None,
    "tli.compare.power": None,
    "tli.compare.comparisons": ["compare_cells", "comparisons_across_seeds"],
    "tli.compare.questions": [
        "QUESTIONS",
        "PRIMARY_METRIC",
        "EXPLORATORY",
        "NONINFERIORITY_METRIC",
        "DEFAULT_MARGIN",
        "family_of",
        "families",
        "overall_answer",
    ],
}
"""More modules for the API page: module → the members shown (None: the module's public members). The concept
pages link to these objects by their full path (``[`judge`][tli.claims.judge]``), so a moved or renamed object
fails the strict build instead of leaving a stale name in the prose."""

# Descriptions of schema fields that have no attribute docstring in the code, keyed "Class.field" (the docstring
# wins as soon as one is written; tests/test_docs.py checks that every key has a description).
FIELD_NOTES = {
    "Experiment.name": "Name of the experiment (default: the file name).",
    "Experiment.description": "Free text, shown in the report.",
    "Experiment.models": "Models: `default` (the embedded SmolLM2-135M), local directories, `.gguf` files or hub "
    "ids (a relative model path is relative to the directory tli runs in).",
    "Experiment.strategies": "A list of strategy names, or a mapping name → its own options (below).",
    "Experiment.tasks": "Task name → its options (below). At least one.",
    "Experiment.seeds": "Training seeds; every (model, strategy) trains once per seed.",
    "Experiment.train": "What fine-tuning strategies train on (default: the first trainable task); see `train`.",
    "Experiment.budget": "The training budget, the same for every strategy; see `budget`.",
    "Experiment.strategy_options": "Options shared by every strategy (a strategy's own options override them).",
    "Experiment.reference": "A strategy of the experiment; every other strategy is compared with it "
    "(exploratory family).",
    "Experiment.correction": "`holm`, `bh` or `none`, applied within each family.",
    "Experiment.alpha": "Significance level of the verdicts, in (0, 1).",
    "Experiment.n_resamples": "Bootstrap resamples, and the least Monte Carlo resamples of a randomisation test "
    "(at least 99).",
    "Experiment.dtype": "Compute dtype of the models: `auto`, `float32`, `bfloat16` or `float16`.",
    "Experiment.device": "Device of every strategy without its own `device`: `auto`, `cpu` or `cuda[:N]`.",
    "Experiment.save_full_weights": "Also save fully fine-tuned weights (large) besides the scores.",
    "Experiment.retrieval": "The retrieval systems and dense-retriever conditions (retrieval tasks only); see "
    "`retrieval`.",
    "StrategyOptions.lora_dropout": "Dropout on the LoRA input, in [0, 1).",
    "Budget.warmup_steps": "Steps of linear learning-rate warm-up.",
    "Budget.weight_decay": "AdamW weight decay.",
    "TrainData.task": "The task to train on (one of `tasks`, or any task given with `path`).",
    "TrainData.language": "The language of its training data.",
    "RetrievalPlan.systems": "Which systems rank: `dense` (each strategy's model, and the trained conditions), "
    "`bm25`, `fusion`.",
    "RetrievalPlan.reference": "The system every other system is compared with (exploratory family).",
    "BM25Spec.k1": "BM25 term-frequency saturation.",
    "BM25Spec.b": "BM25 length normalisation.",
    "BiEncoderOptions.warmup_steps": "Steps of linear learning-rate warm-up.",
    "SyntheticOptions.max_new_tokens": "Tokens generated per query (greedy).",
    "DataRef.task": "A retrieval task (`xquad`, `tydi`, `mrtydi`).",
    "DataRef.language": "Its language.",
    "DataRef.split": "Its split.",
}

# Defaults the loader applies to keys whose schema field has none (checked against the loader in tests/test_docs.py).
TOP_KEY_DEFAULTS = {
    "name": "the file name",
    "seeds": "`[0]`",
    "reference": "`none`",
    "train": "the first trainable task",
    "budget": "see `budget`",
}
REQUIRED_TOP_KEYS = ("models", "strategies", "tasks")


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def resolve(spec: str) -> Any:
    """The object a ``"module:attribute"`` constant names."""
    module, _, name = spec.partition(":")
    value = importlib.import_module(module)
    for part in filter(None, name.split(".")):
        value = getattr(value, part)
    return value


def attribute_docstrings(cls: type) -> dict[str, str]:
    """Field name → the string literal written right below it in the class body (over the MRO)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, following in zip(body, body[1:] + [None], strict=True):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(following.value.value)
    return docs


def field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def show_default(value: Any) -> str:
    """A default as a YAML user writes it."""
    if value is dataclasses.MISSING:
        return "required"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, (list, tuple)):
        return "`[" + ", ".join(map(str, value)) + "]`" if value else "`[]`"
    if dataclasses.is_dataclass(value):
        return "see below"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`" if value != "" else '`""`'


_ROLE = re.compile(r":(?:class|func|meth|data|mod|attr):`~?([^`]+)`")


def cell(text: Any) -> str:
    """Text fit for one Markdown table cell (Sphinx roles such as ``:class:`X` `` become ``X``)."""
    text = " ".join(_ROLE.sub(r"`\1`", str(text)).split())
    # Python-Markdown keeps a pipe inside a code span in its cell (and would show a backslash there)
    parts = re.split(r"(`+[^`]*`+)", text)
    return "".join(part if part.startswith("`") else part.replace("|", "\\|") for part in parts)


def short_type(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return "`" + text.replace("typing.", "") + "`"


def first_line(doc: str | None) -> str:
    return inspect.cleandoc(doc or "").split("\n\n")[0].replace("\n", " ")


def describe(cls: type, name: str, docs: dict[str, str], metadata=None) -> str:
    """A field's description: its attribute docstring, its ``help`` metadata, else :data:`FIELD_NOTES`."""
    return docs.get(name) or (metadata or {}).get("help") or FIELD_NOTES.get(f"{cls.__name__}.{name}", "")


def fields_table(cls: type, *, skip: tuple[str, ...] = ()) -> str:
    """A table of a dataclass's fields: key, type, default, description (attribute docstring or metadata)."""
    docs = attribute_docstrings(cls)
    rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name.startswith("_"):
            continue
        text = describe(cls, f.name, docs, f.metadata)
        rows.append(
            f"| `{f.name}` | {cell(short_type(f.type))} | {cell(show_default(field_default(f)))} | {cell(text)} |"
        )
    return "\n".join(rows)


GENERATED = "<!-- Generated by scripts/docs_reference.py at build time: edit the code, not this page. -->"


# --------------------------------------------------------------------------------------------------
# reference/cli.md
# --------------------------------------------------------------------------------------------------


def _flags(action) -> str:
    dashed = [s for s in action.option_strings if not (s.startswith("--") and "_" in s)]
    return ", ".join(f"`{s}`" for s in (dashed or action.option_strings))


def _value(action) -> str:
    if not action.option_strings:
        return "positional"
    if action.nargs == 0:
        return "flag"
    if action.choices:
        return " \\| ".join(map(str, action.choices))
    if action.metavar == "BOOL":
        return "flag (or `true`/`false`)"
    text = action.metavar or (action.type.__name__ if action.type else "str")
    return f"{text}, several" if action.nargs in ("+", "*") else str(text)


def command_options(command: str) -> list[dict[str, str]]:
    """Every option of ``tli <command>`` as the real parser defines it, with its config field."""
    parser = resolve(COMMAND_PARSER)(command)
    config = resolve(COMMAND_CONFIGS)[command]
    fields = {f.name: f for f in dataclasses.fields(config)}
    docs = attribute_docstrings(config)
    out = []
    for action in parser._actions:
        if action.dest == "help":
            continue
        f = fields.get(action.dest)
        default = show_default(field_default(f)) if f is not None else show_default(action.default)
        out.append(
            {
                "flags": _flags(action) if action.option_strings else f"`{action.dest.upper()}`",
                "option_strings": list(action.option_strings),
                "dest": action.dest,
                "key": f"`{action.dest}`" if f is not None else "—",
                "value": short_type(f.type)
                if f is not None and action.option_strings and action.nargs != 0 and action.metavar != "BOOL"
                else _value(action),
                "type": short_type(f.type) if f is not None else "`str`",
                "default": "—"
                if action.dest.startswith("no_") or (f is None and action.default is None)
                else default,
                "help": action.help or docs.get(action.dest, ""),
            }
        )
    return out


def render_cli() -> str:
    top = resolve(CLI_PARSER)()
    handlers, summaries = resolve(CLI_HANDLERS), resolve(CLI_SUMMARIES)
    configs = sorted(resolve(SHIPPED_CONFIGS)())
    lines = [
        GENERATED,
        "# Command line",
        "",
        "Every option of every command, generated from the parsers `tli` builds from its config dataclasses "
        "(`tli COMMAND --help` prints the same). The **YAML key** is the name of the option in a `--config` "
        "file: one file serves every command; keys a command does not use are named once on stderr and "
        "ignored, keys no command knows are an error, flags on the command line override the file. Flags "
        "take dashes or underscores; list options take commas or spaces (`--lora-layers 0,1` = "
        "`--lora-layers 0 1`).",
        "",
        f"Shipped config files, named directly (`--config NAME`): {', '.join(f'`{c}`' for c in configs)}.",
        "",
        "## `tli`",
        "",
        "```text",
        top.format_usage().strip(),
        "```",
        "",
        "| option | description |",
        "| --- | --- |",
    ]
    for action in top._actions:
        if action.option_strings:
            lines.append(f"| {_flags(action)} | {cell(action.help or '')} |")
    lines += ["", "| command | what it does |", "| --- | --- |"]
    lines += [f"| [`tli {name}`](#tli-{name}) | {cell(summaries[name])} |" for name in handlers]
    for name in handlers:
        parser = resolve(COMMAND_PARSER)(name)
        lines += [
            "",
            f"## `tli {name}`",
            "",
            cell(summaries[name]) + ".",
            "",
            "```text",
            parser.format_usage().strip(),
            "```",
            "",
            "| option | YAML key | value | default | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for o in command_options(name):
            lines.append(
                f"| {o['flags']} | {o['key']} | {cell(o['value'])} | {cell(o['default'])} | {cell(o['help'])} |"
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# reference/experiment.md
# --------------------------------------------------------------------------------------------------


def render_experiment() -> str:
    experiment, top_keys = resolve(EXPERIMENT_SCHEMA), resolve(EXPERIMENT_TOP_KEYS)
    fields = [f for f in dataclasses.fields(experiment) if f.name in top_keys]
    docs = attribute_docstrings(experiment)
    lines = [
        GENERATED,
        "# Experiment YAML",
        "",
        "The file `tli compare EXPERIMENT` reads, block by block, generated from the dataclasses the loader "
        "fills: every key, its type, its default and what it does. Everything is checked when the file is read "
        "(unknown keys with the known ones listed, unknown strategies and tasks, languages a dataset lacks, a "
        "budget of zero steps, a device the machine lacks, every data file), so a bad experiment stops in one "
        "line before any model loads; `tli compare FILE --dry-run` does all of it and prints the plan. A "
        "relative data path is relative to the experiment file; `samples:xlsum` names tli's shipped samples. "
        "A first complete file: [Getting started](../getting-started.md#your-first-experiment).",
        "",
        f"Shipped experiments (name them instead of a file): "
        f"{', '.join(f'`{n}`' for n in sorted(resolve(SHIPPED_EXPERIMENTS)()))}.",
        "",
        "## Top level",
        "",
        "`models`, `strategies` and `tasks` are required.",
        "",
        "| key | type | default | description |",
        "| --- | --- | --- | --- |",
    ]
    for f in fields:
        text = describe(experiment, f.name, docs)
        default = field_default(f)
        if f.name in REQUIRED_TOP_KEYS:
            shown = "required"
        elif default is dataclasses.MISSING:
            shown = TOP_KEY_DEFAULTS.get(f.name, "required")
        else:
            shown = show_default(default)
        lines.append(f"| `{f.name}` | {cell(short_type(f.type))} | {cell(shown)} | {cell(text)} |")
    for key in sorted(set(top_keys) - {f.name for f in fields}):  # keys the loader folds into other fields
        text = FIELD_NOTES.get(f"{experiment.__name__}.{key}", "")
        lines.append(f"| `{key}` | mapping | `{{}}` | {cell(text)} |")

    strategies = resolve(STRATEGIES)
    lines += [
        "",
        "## `strategies` and `strategy_options`",
        "",
        "```yaml",
        "strategies: [none, lora, full]",
        "# or, with a strategy's own options over the shared strategy_options:",
        "strategies: {none: {}, lora-early: {layers: 2}, tli: {tli_epochs: 5}}",
        "strategy_options: {target_layer: 2, lora_r: 16}",
        "```",
        "",
        "| strategy | what it trains |",
        "| --- | --- |",
    ]
    lines += [
        f"| `{name}` | {cell(getattr(cls, 'description', '') or first_line(cls.__doc__))} |"
        for name, cls in strategies.items()
    ]
    lines += [
        "",
        "A strategy's own mapping may also hold `device` (e.g. `cuda`: run this strategy there; a machine "
        "without it stops before any model loads). Options (shared or per strategy):",
        "",
        fields_table(resolve(STRATEGY_OPTIONS)),
        "",
        "## `budget`",
        "",
        first_line(resolve(BUDGET).__doc__),
        "",
        fields_table(resolve(BUDGET)),
        "",
        "## `train`",
        "",
        first_line(resolve(TRAIN_DATA).__doc__),
        "",
        fields_table(resolve(TRAIN_DATA)),
        "",
        "## `tasks`",
        "",
        "Each key of `tasks` is a task name; its mapping sets that task's options.",
    ]
    for name, task in resolve(TASKS).items():
        config = task.config_class
        lines += [
            "",
            f"### `{name}`",
            "",
            first_line(config.__doc__ or type(task).__doc__),
            "",
            fields_table(config),
        ]
    lines += [
        "",
        "## `retrieval`",
        "",
        first_line(resolve(RETRIEVAL_PLAN).__doc__) + " Only with retrieval tasks.",
        "",
        fields_table(resolve(RETRIEVAL_PLAN), skip=("bm25", "fusion", "dense_retriever")),
        "",
        "### `retrieval.bm25`",
        "",
        fields_table(resolve(BM25_SPEC)),
        "",
        "### `retrieval.fusion`",
        "",
        fields_table(resolve(FUSION_SPEC)),
        "",
        "### `retrieval.dense_retriever`",
        "",
        first_line(resolve(BIENCODER_OPTIONS).__doc__)
        + f" Besides the options below: `conditions` (default: all of "
        f"{', '.join(f'`{c}`' for c in resolve(BIENCODER_CONDITIONS))}), `english` (a data reference: the "
        "English pairs of `direct-transfer` and `mix`) and `synthetic` (below).",
        "",
        fields_table(resolve(BIENCODER_OPTIONS)),
        "",
        "### `retrieval.dense_retriever.synthetic`",
        "",
        first_line(resolve(SYNTHETIC_OPTIONS).__doc__)
        + " Besides the options below: `passages` (a data reference: the target-language passages doc2query "
        "writes questions for).",
        "",
        fields_table(resolve(SYNTHETIC_OPTIONS)),
        "",
        "### Data references (`english`, `synthetic.passages`)",
        "",
        first_line(resolve(DATA_REF).__doc__),
        "",
        fields_table(resolve(DATA_REF)),
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# reference/vocabulary.md and reference/api.md
# --------------------------------------------------------------------------------------------------


def render_vocabulary() -> str:
    lines = [
        GENERATED,
        "# Names",
        "",
        "The named choices options take, read from the constants that validate them.",
        "",
        "| what | names |",
        "| --- | --- |",
    ]
    for heading, spec in VOCABULARY.items():
        value = resolve(spec)
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            names = "; ".join(f"`{key}`: {text}" for key, text in value.items())
        else:
            names = ", ".join(f"`{n}`" for n in value)
        lines.append(f"| {heading} | {cell(names)} |")
    return "\n".join(lines) + "\n"


def render_api() -> str:
    registry: dict[str, str] = resolve(API_REGISTRY)
    by_module: dict[str, list[str]] = {}
    for name, module in registry.items():
        by_module.setdefault(module, []).append(name)
    lines = [
        GENERATED,
        "# Python API",
        "",
        "`import tli` loads nothing heavy; each name below resolves on first use (`tli.scan`, `tli.train`, "
        "`tli.evaluate`, `tli.run`, …). Then the modules behind `tli compare`, `tli plan` and the statistics. "
        "Rendered from the docstrings by mkdocstrings.",
        "",
        "```python",
        "import tli",
        "",
        'study = tli.run(out="runs/study", seeds=[0, 1, 2])  # the whole pipeline',
        'result = tli.scan(lexicon="pairs.csv", pooling="mean-no-special", out="runs/scan")',
        "```",
    ]
    sections: dict[str, list[str] | None] = {m: sorted(names) for m, names in by_module.items()}
    for module, members in API_MODULES.items():
        if module in sections and members is not None:
            sections[module] = sections[module] + [m for m in members if m not in sections[module]]
        else:
            sections[module] = members
    for module, members in sections.items():
        lines += ["", f"## `{module}`", "", f"::: {module}", "    options:", "      show_root_heading: false"]
        if members is not None:
            lines.append("      members: [" + ", ".join(members) + "]")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# reference/launch.md
# --------------------------------------------------------------------------------------------------


def render_launch() -> str:
    """Each shipped experiment of a model other than the embedded one: its dry run's launch table and arrays."""
    parse, dry_run = resolve(EXPERIMENT_LOADER), resolve(DRY_RUN)
    lines = [
        GENERATED,
        "",
        "# Launching the shipped full-scale experiments",
        "",
        "What `tli compare NAME --dry-run --out OUT` prints for each shipped experiment of the briefs' models: per",
        "model and strategy the GPUs a unit needs (80 GiB H100s, from `tli plan`), how it launches, and the",
        "training GPU-hours of all its seeds (MFU 0.35; evaluation not counted); then the SLURM job arrays and the",
        "`--collect` job. On several nodes, `NODE_RANK` and `MAIN_IP` are filled by the shipped SLURM script.",
        "See [Scaling up](../scaling.md#tli-compare-on-a-cluster-one-job-per-training-unit).",
    ]
    for name in resolve(SHIPPED_EXPERIMENTS)():
        experiment = parse(name, check_device=False, check_files=False)
        if experiment.models == ["default"]:
            continue
        planned = dry_run(experiment, out="OUT")
        launch = planned["launch"]
        lines += [
            "",
            f"## {name}",
            "",
            f"{planned['cells']} cells, {launch['units']} training units, {launch['gpu_hours']:.1f} training "
            "GPU-hours.",
            "",
            "| model | strategy | GPUs | launcher × processes | nodes | GPU-hours (all seeds) | command (first seed) |",
            "|---|---|---|---|---|---|---|",
        ]
        for unit in planned["units"]:
            hours = "—" if unit["gpu_hours"] is None else f"{unit['gpu_hours']:.2f}"
            command = (
                unit["commands"][0] if unit["runnable"] else f"cannot run as configured: {unit['why_not']}"
            )
            lines.append(
                f"| {unit['model']} | {unit['strategy']} | {unit['estimated_devices'] or '—'} | {unit['launcher']} × "
                f"{unit['world_size']} | {unit['nodes']} | {hours} | `{command}` |"
            )
        lines += ["", "```bash", *launch["slurm"], "```"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# README.md "Scaling up": the same launch plans, short (written by `python scripts/docs_reference.py --readme`)
# --------------------------------------------------------------------------------------------------

README_BEGIN = "<!-- scaling:begin -->"
README_END = "<!-- scaling:end -->"


def _needs(unit: dict[str, Any]) -> str:
    """What one unit of a (model, strategy) row needs, in words."""
    gpus = unit["estimated_devices"]
    if unit["launcher"] == "accelerate" and unit["nodes"] > 1:
        return f"{gpus} GPUs: FSDP, {unit['nodes']} nodes × 8"
    if unit["launcher"] == "accelerate":
        return f"{gpus} GPUs: FSDP, one node"
    return f"{gpus} GPU{'s' if gpus != 1 else ''}, one process" + (" (`device_map`)" if gpus > 1 else "")


def render_readme_scaling() -> str:
    """The README block: per shipped full-scale experiment, each kind of unit with what it needs and the command
    of its first seed (on several nodes the same command runs on each), then its SLURM arrays and collect job."""
    parse, dry_run = resolve(EXPERIMENT_LOADER), resolve(DRY_RUN)
    table = [
        "| experiment (units, training GPU-hours) | model: strategies | each unit needs "
        "| one unit (seed 0; on every node) |",
        "|---|---|---|---|",
    ]
    slurm = ["# each experiment's arrays, then (sbatch --dependency=afterok:JOBIDS) its --collect job"]
    for name in resolve(SHIPPED_EXPERIMENTS)():
        experiment = parse(name, check_device=False, check_files=False)
        if experiment.models == ["default"]:
            continue
        planned = dry_run(experiment, out="OUT")
        rows: dict[tuple, list[dict[str, Any]]] = {}
        for unit in planned["units"]:
            key = (unit["model"], _needs(unit) if unit["runnable"] else f"cannot run: {unit['why_not']}")
            rows.setdefault(key, []).append(unit)
        title = f"`{name}` ({planned['launch']['units']}, {planned['launch']['gpu_hours']:.1f})"
        for (model, needs), units in rows.items():
            command = f"`{units[0]['commands'][0]}`" if units[0]["runnable"] else "—"
            strategies = ", ".join(u["strategy"] for u in units)
            table.append(f"| {title} | {model.split('/')[-1]}: {strategies} | {needs} | {command} |")
            title = ""
        slurm += [line for line in planned["launch"]["slurm"] if not line.startswith("#")]
    note = "<!-- written by `python scripts/docs_reference.py --readme` from the dry runs: do not edit -->"
    return "\n".join([README_BEGIN, note, "", *table, "", "```bash", *slurm, "```", "", README_END])


def write_readme(path: str = "README.md") -> None:
    """Replace the README's generated block with :func:`render_readme_scaling` (run after a plan changes)."""
    from pathlib import Path

    readme = Path(path)
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(README_BEGIN), text.index(README_END) + len(README_END)
    readme.write_text(text[:start] + render_readme_scaling() + text[end:], encoding="utf-8")


PAGES = {
    "reference/cli.md": render_cli,
    "reference/experiment.md": render_experiment,
    "reference/vocabulary.md": render_vocabulary,
    "reference/launch.md": render_launch,
    "reference/api.md": render_api,
}
"""Generated page → its renderer."""


def on_files(files, config):
    """MkDocs hook: add the generated pages to the build."""
    from mkdocs.structure.files import File

    for path, render in PAGES.items():
        existing = files.get_file_from_path(path)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, path, content=render()))
    return files


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--readme"]:
        sys.exit(
            "usage: python scripts/docs_reference.py --readme  (rewrites README.md's generated Scaling up block)"
        )
    write_readme()
