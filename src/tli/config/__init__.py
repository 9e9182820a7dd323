"""Options of every ``tli`` command, defined once.

Each command's options are one ``@dataclass`` (``ScanConfig``, ``TrainConfig``, …) built from small
per-concern mixins (``ModelOptions``, ``EmbedOptions``, ``LexiconOptions``). The same class is

- the Python API's configuration (``tli.scan(..., pooling="last")`` builds a ``ScanConfig``),
- the command line: :func:`build_parser` generates ``tli scan --help`` from the fields with transformers'
  ``HfArgumentParser`` (chosen because transformers is already a dependency and its users know it from
  ``TrainingArguments``: no new package, field ``help`` metadata becomes ``--help``), and
- the YAML config files (:func:`load_options_file`): keys are field names, flags override them.

Every class validates *all* of its fields in ``__post_init__`` and raises one :class:`ConfigError` that
lists every problem, before any model is loaded. This package imports nothing heavy, so ``tli --help`` is fast.

The package, bottom up: :mod:`~tli.config.fields` (:func:`option`, :class:`Problems`),
:mod:`~tli.config.options` (the shared option groups and named choices), :mod:`~tli.config.study` (scan,
train, evaluate, run), :mod:`~tli.config.commands` (the other commands and :data:`COMMANDS`),
:mod:`~tli.config.files` (YAML option files) and :mod:`~tli.config.parsing` (the argument parsers).
"""

from __future__ import annotations

from tli.config.commands import (
    CHAT_TEMPLATE_MODES,
    COMMANDS,
    DEFAULT_PROBE_PROMPT,
    AblateConfig,
    CompareConfig,
    ExportConfig,
    MergeConfig,
    PlanConfig,
    ProbeConfig,
    StatsConfig,
    VerifyConfig,
)
from tli.config.fields import Problems, option
from tli.config.files import load_options_file, options_for, shipped_configs
from tli.config.options import (
    CORRECTIONS,
    CRITERIA,
    DEFAULT_CONTROL_FRACTION,
    DTYPE_NAMES,
    LOSS_NAMES,
    REGULARIZER_NAMES,
    EmbedOptions,
    LayerChoiceOptions,
    LexiconOptions,
    LoraOptions,
    ModelOptions,
    OutputOptions,
    StatisticsOptions,
    ThreadOptions,
    TrainingOptions,
)
from tli.config.parsing import HelpFormatter, build_parser, format_default, parse_command
from tli.config.study import (
    DEFAULT_TARGET_LAYER,
    EvaluateConfig,
    RunConfig,
    ScanConfig,
    TrainConfig,
    TrainRunOptions,
)

__all__ = [
    "CHAT_TEMPLATE_MODES",
    "COMMANDS",
    "CORRECTIONS",
    "CRITERIA",
    "DEFAULT_CONTROL_FRACTION",
    "DEFAULT_PROBE_PROMPT",
    "DEFAULT_TARGET_LAYER",
    "DTYPE_NAMES",
    "LOSS_NAMES",
    "REGULARIZER_NAMES",
    "AblateConfig",
    "CompareConfig",
    "EmbedOptions",
    "EvaluateConfig",
    "ExportConfig",
    "HelpFormatter",
    "LayerChoiceOptions",
    "LexiconOptions",
    "LoraOptions",
    "MergeConfig",
    "ModelOptions",
    "OutputOptions",
    "PlanConfig",
    "ProbeConfig",
    "Problems",
    "RunConfig",
    "ScanConfig",
    "StatisticsOptions",
    "StatsConfig",
    "ThreadOptions",
    "TrainConfig",
    "TrainRunOptions",
    "TrainingOptions",
    "VerifyConfig",
    "build_parser",
    "format_default",
    "load_options_file",
    "option",
    "options_for",
    "parse_command",
    "shipped_configs",
]
