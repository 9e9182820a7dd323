"""Options of every ``tli`` command, defined once.

Each command's options are one ``@dataclass`` (``ScanConfig``, ``TrainConfig``, …) built from small
per-concern mixins (``ModelOptions``, ``EmbedOptions``, ``LexiconOptions``). The same class is

- the Python API's configuration (``tli.scan(..., pooling="last")`` builds a ``ScanConfig``),
- the command line: :func:`build_parser` generates ``tli scan --help`` from the fields with transformers'
  ``HfArgumentParser`` (chosen because transformers is already a dependency and its users know it from
  ``TrainingArguments``: no new package, field ``help`` metadata becomes ``--help``), and
- the YAML config files (:func:`load_options_file`): keys are field names, flags override them.

Every class validates *all* of its fields in ``__post_init__`` and raises one :class:`ConfigError` that
lists every problem, before any model is loaded. This module imports nothing heavy, so ``tli --help`` is fast.

In-function import: ``transformers``' ``HfArgumentParser``, only when a command line is parsed.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import math
import re
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from tli.architecture import QUANTIZATIONS
from tli.errors import ConfigError, TliError
from tli.limits import read_yaml
from tli.objectives import ABLATION_DEFAULTS, VARIANTS
from tli.placement import DEVICE_MAP_STRATEGIES, parse_max_memory
from tli.pooling import DEFAULT_POOLING, RECIPE_FIELDS, PoolingRecipe, recipe_problems
from tli.runs import read_scan_choice

DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")
CRITERIA = {
    "centered_gap": "centered_gap",
    "gap": "gap",
    "cosine": "matched_mean",
    "p_at_1": "p_at_1",
    "csls": "csls_p_at_1",
    "mrr": "mrr",
}
"""``--select-by`` criterion → the per-layer figure of the scan it maximises (ties broken by MRR, then centred
gap; :func:`tli.scan.select_layer`)."""
LOSS_NAMES = ("triplet", "infonce", "infonce-lexicon")
REGULARIZER_NAMES = ("uniformity", "preservation", "centred")
CORRECTIONS = ("holm", "bh", "none")
DEFAULT_CONTROL_FRACTION = 63 / 686
"""The published proportion of unseen control pairs (63 of 686)."""


def option(default: Any = dataclasses.MISSING, help: str = "", **metadata: Any) -> Any:
    """A dataclass field whose ``help`` becomes the command line's ``--help`` text."""
    if isinstance(default, list):
        value = list(default)
        return field(default_factory=lambda: list(value), metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


class Problems:
    """Collects every invalid option of a config, then raises once (all problems in one message)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.items.append(message)

    def choice(self, name: str, value: Any, choices: Iterable[Any]) -> None:
        choices = tuple(choices)
        self.check(
            value in choices, f"--{_flag(name)} {value!r} is not one of {', '.join(map(str, choices))}"
        )

    def at_least(self, name: str, value: Any, low: float) -> None:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        self.check(number and value >= low, f"--{_flag(name)} must be >= {low}, got {value!r}")

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError("; ".join(self.items))


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _split_commas(values: list[Any] | None) -> list[Any] | None:
    """``["q_proj,v_proj"]`` → ``["q_proj", "v_proj"]``: list options accept commas as well as spaces."""
    if values is None:
        return None
    out: list[Any] = []
    for value in values:
        if isinstance(value, str):
            out.extend(part.strip() for part in value.split(",") if part.strip())
        else:
            out.append(value)
    return out


def _int_list(name: str, values: list[Any] | None, problems: Problems) -> list[int] | None:
    values = _split_commas(values)
    if values is None:
        return None
    try:
        return [int(v) for v in values]
    except (TypeError, ValueError):
        problems.items.append(f"--{_flag(name)} {values!r}: expected whole numbers, e.g. 0,1")
        return None


# ---------------------------------------------------------------------------------------------------
# Concerns shared by several commands


@dataclass(kw_only=True)
class ModelOptions:
    """Which model, and how it is loaded."""

    model: str | None = option(
        None,
        "local HF directory, hub id (online only) or .gguf file (default: embedded SmolLM2-135M-Instruct)",
    )
    dtype: str = option(
        "auto",
        "auto | float32 | bfloat16 | float16; auto = float32 for embeddings on every device "
        "(measured gaps are near bf16 resolution), bf16 for training on CUDA",
    )
    device: str = option("auto", "auto (CUDA when present) | cpu | cuda[:N]")
    quantization: str | None = option(
        "none", "none | nf4 (bitsandbytes 4-bit NF4; bf16 compute in training) | int8"
    )
    trust_remote_code: bool = option(False, "allow model code from the model's repository")
    device_map: str | None = option(
        None,
        "spread one model over GPUs / CPU (Accelerate): auto | balanced | balanced_low_0 | sequential | "
        "a JSON file {module: device}; --device must then stay auto",
    )
    max_memory: str | None = option(
        None,
        "memory per device for --device-map, e.g. 0=70GiB,1=70GiB,cpu=200GiB (devices not named are unused)",
    )
    offload_folder: str | None = option(
        None, "let --device-map offload what does not fit to disk (safetensors are read in place; slow)"
    )

    def load_options(self) -> dict[str, Any]:
        """These options as keyword arguments of :func:`tli.models.load_model` (everything but the model)."""
        return {
            "dtype": self.dtype,
            "device": self.device,
            "quantization": self.quantization or "none",
            "trust_remote_code": self.trust_remote_code,
            "device_map": self.device_map,
            "max_memory": self.max_memory,
            "offload_folder": self.offload_folder,
        }

    def _check_model(self, problems: Problems) -> None:
        problems.choice("dtype", self.dtype, DTYPE_NAMES)
        if self.quantization is not None:
            problems.choice("quantization", self.quantization, QUANTIZATIONS)
        problems.check(bool(str(self.device).strip()), "--device must not be empty (auto, cpu, cuda, cuda:1)")
        self._check_placement(problems)

    def _check_placement(self, problems: Problems) -> None:
        if self.device_map is not None:
            problems.check(
                self.device_map in DEVICE_MAP_STRATEGIES or Path(self.device_map).suffix == ".json",
                f"--device-map {self.device_map!r} is not one of {', '.join(DEVICE_MAP_STRATEGIES)} "
                "nor a .json file of {module: device}",
            )
            problems.check(
                self.device in ("auto", None),
                f"--device {self.device} and --device-map {self.device_map}: choose one",
            )
        for name in ("max_memory", "offload_folder"):
            problems.check(
                getattr(self, name) is None or self.device_map is not None,
                f"--{_flag(name)} needs --device-map (e.g. --device-map auto)",
            )
        if self.max_memory is not None and not isinstance(self.max_memory, dict):  # YAML may give a mapping
            try:
                parse_max_memory(self.max_memory)
            except ConfigError as exc:
                problems.items.append(str(exc))


@dataclass(kw_only=True)
class EmbedOptions:
    """How a word becomes a vector (the pooling recipe)."""

    pooling: str = option(
        DEFAULT_POOLING,
        "mean-no-special (special tokens and position 0 left out, as the published evaluation) | mean (every "
        "token, the start token too, as the published pilot scan) | last",
    )
    center: bool = option(False, "subtract each language's mean embedding per layer before the cosine")
    template: str | None = option(
        None, "prompt with a {word} slot, e.g. 'The word \"{word}\" means' (with last)"
    )
    add_bos: str = option(
        "auto",
        "auto | always | never: start each word with the document separator (<|endoftext|>, else BOS, "
        "else EOS) when the tokenizer adds no start token itself",
    )
    bos_token: str | None = option(None, "prepend this token instead of the document separator")

    def _check_embed(self, problems: Problems) -> None:
        problems.items.extend(recipe_problems(self.pooling, self.add_bos, self.template))

    def recipe(self) -> PoolingRecipe:
        """The :class:`~tli.pooling.PoolingRecipe` of these options (the fields of :data:`RECIPE_FIELDS`)."""
        return PoolingRecipe(**{name: getattr(self, name) for name in RECIPE_FIELDS})


@dataclass(kw_only=True)
class LexiconOptions:
    """Which word pairs, and how they split into trained and control pairs."""

    lexicon: str | None = option(
        None, "word pairs: JSON / CSV / TSV / MUSE file (default: the shipped sw-en lexicon)"
    )
    test_lexicon: str | None = option(
        None, "a separate test dictionary (MUSE style) used as the control group; leaking pairs are dropped"
    )
    control_fraction: float = option(
        DEFAULT_CONTROL_FRACTION,
        "share of pairs held out as controls when the lexicon stores no split "
        "(default: 63/686 ≈ 0.092, the published proportion)",
    )
    split_seed: int = option(0, "seed of the leak-free trained/control split")

    def _check_lexicon(self, problems: Problems) -> None:
        problems.check(
            isinstance(self.control_fraction, (int, float)) and 0 < self.control_fraction < 1,
            f"--control-fraction must be in (0, 1), got {self.control_fraction!r}",
        )


@dataclass(kw_only=True)
class LayerChoiceOptions:
    """How the scan chooses the TLI target layer."""

    select_by: str = option(
        "centered_gap",
        "centered_gap (default: scale-free) | gap (raw) | cosine (published) | p_at_1 | csls | mrr",
    )
    min_layer: int = option(1, "lowest selectable layer (layer 0 is the embedding table)")
    max_layer: int | None = option(
        None, "highest selectable layer (default: max_layer_fraction of the depth)"
    )
    max_layer_fraction: float = option(
        0.5, "default highest selectable layer as a fraction of depth: TLI is an early-layer method"
    )

    def _check_layers(self, problems: Problems) -> None:
        problems.choice("select_by", self.select_by, CRITERIA)
        problems.at_least("min_layer", self.min_layer, 0)
        if self.max_layer is not None:
            problems.at_least("max_layer", self.max_layer, max(self.min_layer, 0))
        problems.check(
            isinstance(self.max_layer_fraction, (int, float)) and 0 < self.max_layer_fraction <= 1,
            f"--max-layer-fraction must be in (0, 1], got {self.max_layer_fraction!r}",
        )

    def layer_range(self, num_layers: int) -> tuple[int, int]:
        """``(low, high)`` selectable hidden-state indices of a model with ``num_layers`` blocks."""
        high = (
            self.max_layer if self.max_layer is not None else math.floor(self.max_layer_fraction * num_layers)
        )
        high = min(max(high, self.min_layer), num_layers)
        if self.min_layer > num_layers:
            raise ConfigError(f"--min-layer {self.min_layer} is beyond the last layer ({num_layers})")
        return self.min_layer, high


@dataclass(kw_only=True)
class StatisticsOptions:
    """How claims are judged."""

    n_boot: int = option(10_000, "bootstrap resamples for confidence intervals")
    alpha: float = option(0.05, "significance level of every verdict (after correction)")
    correction: str = option("holm", "holm | bh | none: multiple-comparison correction over a run's claims")
    equivalence_margin: float = option(
        0.2,
        "TOST margin for 'control gains as much as trained', as a fraction of the trained pairs' mean change",
    )

    def _check_statistics(self, problems: Problems) -> None:
        problems.at_least("n_boot", self.n_boot, 100)
        problems.check(0 < self.alpha < 1, f"--alpha must be in (0, 1), got {self.alpha!r}")
        problems.choice("correction", self.correction, CORRECTIONS)
        problems.check(
            self.equivalence_margin > 0, f"--equivalence-margin must be > 0, got {self.equivalence_margin}"
        )


@dataclass(kw_only=True)
class LoraOptions:
    """The LoRA adapter (published: q_proj, v_proj; r 16, alpha 32, dropout 0.05)."""

    lora_r: int = option(16, "LoRA rank (higher: more capacity and memory)")
    lora_alpha: int = option(32, "LoRA alpha (scale alpha/r)")
    lora_dropout: float = option(0.05, "LoRA dropout")
    target_modules: list[str] = option(
        ["q_proj", "v_proj"], "linear layers that get LoRA (comma or space separated)"
    )
    lora_layers: list[int] | None = option(None, "blocks that get LoRA (default: 0..target_layer-1)")

    def _check_lora(self, problems: Problems) -> None:
        problems.at_least("lora_r", self.lora_r, 1)
        problems.check(
            0 <= self.lora_dropout < 1, f"--lora-dropout must be in [0, 1), got {self.lora_dropout}"
        )
        self.target_modules = _split_commas(self.target_modules) or []
        problems.check(bool(self.target_modules), "--target-modules must name at least one linear layer")
        self.lora_layers = _int_list("lora_layers", self.lora_layers, problems)


@dataclass(kw_only=True)
class TrainingOptions(LoraOptions):
    """TLI training (defaults: the published setting)."""

    loss: str = option(
        "triplet",
        "triplet (published: hardest in-batch negative) | infonce (symmetric, in-batch) | infonce-lexicon "
        "(negatives: every trained target)",
    )
    regularizers: list[str] | None = option(
        None,
        "added to the loss: uniformity, preservation (out-of-lexicon words stay put), centred (see tli.losses)",
    )
    uniformity_weight: float = option(1.0, "weight of the uniformity regulariser")
    preservation_weight: float = option(1.0, "weight of the preservation regulariser")
    margin: float = option(0.4, "triplet margin")
    temperature: float = option(0.05, "InfoNCE temperature")
    epochs: int = option(5, "epochs")
    batch_size: int = option(8, "pairs per batch (in-batch negatives come from the other pairs)")
    grad_accum: int = option(1, "batches per optimiser step")
    lr: float = option(2e-4, "AdamW learning rate")
    warmup_steps: int = option(50, "linear warm-up steps, then linear decay")
    weight_decay: float = option(0.0, "AdamW weight decay")
    validation_fraction: float = option(
        0.1, "share of the trained pairs held out (leak-free) to score each epoch; 0 = none (published)"
    )
    early_stopping_patience: int | None = option(
        None, "stop after this many epochs without a better validation loss; keep the best epoch's adapter"
    )
    resume: bool = option(False, "continue from the last complete epoch checkpoint in --out")

    def _check_training(self, problems: Problems) -> None:
        self._check_lora(problems)
        problems.choice("loss", self.loss, LOSS_NAMES)
        self.regularizers = _split_commas(self.regularizers)
        for name in self.regularizers or []:
            problems.choice("regularizers", name, REGULARIZER_NAMES)
        problems.check(
            isinstance(self.batch_size, int) and self.batch_size >= 2,
            f"--batch-size {self.batch_size}: contrastive losses need >= 2 pairs per batch (the others are negatives)",
        )
        for name in ("epochs", "grad_accum"):
            problems.at_least(name, getattr(self, name), 1)
        problems.check(self.lr > 0, f"--lr must be > 0, got {self.lr}")
        problems.at_least("warmup_steps", self.warmup_steps, 0)
        problems.check(self.margin > 0, f"--margin must be > 0, got {self.margin}")
        problems.check(self.temperature > 0, f"--temperature must be > 0, got {self.temperature}")
        problems.check(
            0 <= self.validation_fraction < 1,
            f"--validation-fraction must be in [0, 1), got {self.validation_fraction}",
        )
        if self.early_stopping_patience is not None:
            problems.at_least("early_stopping_patience", self.early_stopping_patience, 1)
            problems.check(
                self.validation_fraction > 0,
                "--early-stopping-patience needs a validation split (--validation-fraction > 0)",
            )


@dataclass(kw_only=True)
class ThreadOptions:
    """How many CPU threads torch may use."""

    threads: int | None = option(
        None,
        "torch CPU threads (default: the CPUs this process may use — the affinity mask and cgroup CPU quota, or "
        "OMP_NUM_THREADS when set); recorded in results.json",
    )

    def _check_threads(self, problems: Problems) -> None:
        if self.threads is not None:
            problems.at_least("threads", self.threads, 1)


@dataclass(kw_only=True)
class OutputOptions:
    """Where results go."""

    out: str | None = option(None, "run directory (default runs/<command>-<time>)")
    overwrite: bool = option(False, "replace a complete run already in --out (default: refuse)")


# ---------------------------------------------------------------------------------------------------
# Commands


@dataclass(kw_only=True)
class ScanConfig(
    ThreadOptions, OutputOptions, LayerChoiceOptions, LexiconOptions, EmbedOptions, ModelOptions
):
    """``tli scan``: layer-by-layer alignment with mismatched-pair and retrieval controls."""

    batch_size: int = option(32, "words per forward pass")
    seed: int = option(0, "recorded for provenance (the scan itself is deterministic)")
    stream: bool = option(
        False,
        "read the safetensors checkpoint one decoder block at a time (memory: one block + the words' "
        "activations; Llama, Qwen2, Mistral, Gemma families)",
    )

    def __post_init__(self) -> None:
        problems = Problems()
        self._check_model(problems)
        self._check_threads(problems)
        self._check_embed(problems)
        self._check_lexicon(problems)
        self._check_layers(problems)
        problems.at_least("batch_size", self.batch_size, 1)
        if self.stream:
            problems.check(
                self.quantization in (None, "none"),
                "--stream reads the stored weights one block at a time: drop "
                f"--quantization {self.quantization}",
            )
            problems.check(
                self.device_map is None, "--stream and --device-map: choose one (streaming needs one device)"
            )
        problems.raise_if_any()


def _same_model(a: str | None, b: str | None) -> bool:
    """Whether two ``--model`` specs name the same model (None = the embedded default; paths resolved)."""
    if not a or not b:
        return not a and not b
    return a == b or Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


DEFAULT_TARGET_LAYER = 2
"""The published TLI target layer (``hidden_states[2]``)."""


@dataclass(kw_only=True)
class TrainRunOptions(
    ThreadOptions, OutputOptions, TrainingOptions, LexiconOptions, EmbedOptions, ModelOptions
):
    """What ``tli train`` and ``tli run`` share: the model, the recipe, the lexicon, training and the seeds."""

    target_layer: int | None = option(DEFAULT_TARGET_LAYER, "hidden-state index of the loss (published: 2)")
    seed: int = option(0, "shuffling, LoRA initialisation, dropout")
    seeds: list[int] | None = option(
        None, "several seeds: one adapter each, in OUT/seed-<k>/ (overrides --seed)"
    )

    def trainable_layers(self) -> list[int]:
        """Blocks that get LoRA: the given ones, or those whose output reaches the target layer."""
        return list(self.lora_layers) if self.lora_layers is not None else list(range(self.target_layer))

    def seed_list(self) -> list[int]:
        return list(self.seeds) if self.seeds else [self.seed]


@dataclass(kw_only=True)
class TrainConfig(TrainRunOptions):
    """``tli train``: TLI — LoRA with a contrastive loss on pooled target-layer embeddings."""

    target_layer: int | None = option(
        None, "hidden-state index of the loss (default: 2, as published; with --from-scan, the scan's choice)"
    )
    from_scan: str | None = option(
        None,
        "a tli scan (or tli run) directory: train at the layer it selected with its pooling recipe; options "
        "given here that differ from it win, with a warning",
    )

    def __post_init__(self) -> None:
        problems = Problems()
        self._check_model(problems)
        self._check_threads(problems)
        self._check_embed(problems)
        self._check_lexicon(problems)
        self._check_training(problems)
        self.seeds = _int_list("seeds", self.seeds, problems)
        self.scan_notes: list[str] = []
        """How this config differs from the scan it cites (``from_scan``): warnings, recorded with the results."""
        if self.from_scan is not None:
            self._take_from_scan(problems)
        elif self.target_layer is None:
            self.target_layer = DEFAULT_TARGET_LAYER
        if self.target_layer is not None:
            problems.at_least("target_layer", self.target_layer, 1)
        problems.raise_if_any()

    def _take_from_scan(self, problems: Problems) -> None:
        """The scan's selected layer and recipe where these options keep their defaults; a note where not."""
        try:
            scan = read_scan_choice(self.from_scan)
        except TliError as exc:
            problems.items.append(str(exc))
            return
        defaults = {f.name: f.default for f in dataclasses.fields(EmbedOptions)}
        for name in RECIPE_FIELDS:
            mine, theirs = getattr(self, name), scan["recipe"].get(name, defaults[name])
            if mine == defaults[name]:
                setattr(self, name, theirs)
            elif mine != theirs:
                self.scan_notes.append(
                    f"--{_flag(name)} {mine!r} differs from the scan it cites ({self.from_scan}: {theirs!r}): "
                    "the layer the scan chose was chosen for another recipe"
                )
        if self.target_layer is None:
            self.target_layer = scan["selected_layer"]
        elif self.target_layer != scan["selected_layer"]:
            self.scan_notes.append(
                f"--target-layer {self.target_layer} differs from the layer the scan selected "
                f"({scan['selected_layer']} in {self.from_scan})"
            )
        if not _same_model(self.model, scan["model"]):
            self.scan_notes.append(
                f"--model {self.model or 'default'} is not the model the scan measured "
                f"({scan['model'] or 'default'}): its layer choice may not carry over"
            )


@dataclass(kw_only=True)
class EvaluateConfig(ThreadOptions, OutputOptions, StatisticsOptions, LexiconOptions, ModelOptions):
    """``tli evaluate``: base vs adapted, trained vs control, target vs final layer, with statistics."""

    adapter: list[str] = option(
        help="adapter directory (RUN/adapter of tli train); several (one per seed), or a `tli train --seeds` run"
    )
    quantization: str | None = option(None, "none | nf4 | int8 (default: as in training)")
    batch_size: int = option(32, "words per forward pass")
    seed: int = option(0, "bootstrap seed")
    vocabulary: str | None = option(
        None,
        "BLI retrieval over a full target vocabulary: a word-list file, or 'tokenizer' for its whole words",
    )

    def __post_init__(self) -> None:
        problems = Problems()
        self._check_model(problems)
        self._check_threads(problems)
        self._check_lexicon(problems)
        self._check_statistics(problems)
        problems.at_least("batch_size", self.batch_size, 1)
        self.adapter = _split_commas(self.adapter) if isinstance(self.adapter, list) else [str(self.adapter)]
        problems.check(bool(self.adapter), "--adapter needs at least one adapter directory")
        problems.raise_if_any()


@dataclass(kw_only=True)
class RunConfig(StatisticsOptions, LayerChoiceOptions, TrainRunOptions):
    """``tli run``: scan → target layer → TLI training (one adapter per seed) → evaluation → report."""

    target_layer: int | None = option(None, "train at this layer instead of the scan's choice")
    seeds: list[int] | None = option([0, 1, 2], "training seeds: one adapter each; figures as mean ± sd")
    embed_batch_size: int = option(32, "words per forward pass in the scan and the evaluation")
    track: str | None = option(None, "mlflow | tensorboard: also log parameters, metrics and artefacts there")
    tracking_uri: str | None = option(
        None, "MLflow tracking URI (default: a SQLite store in the run directory)"
    )
    vocabulary: str | None = option(
        None, "BLI retrieval over a full target vocabulary: a word-list file, or 'tokenizer'"
    )

    def __post_init__(self) -> None:
        problems = Problems()
        self._check_model(problems)
        self._check_threads(problems)
        self._check_embed(problems)
        self._check_lexicon(problems)
        self._check_training(problems)
        self._check_layers(problems)
        self._check_statistics(problems)
        if self.target_layer is not None:
            problems.at_least("target_layer", self.target_layer, 1)
        problems.at_least("embed_batch_size", self.embed_batch_size, 1)
        if self.track is not None:
            problems.choice("track", self.track, ("mlflow", "tensorboard"))
        self.seeds = _int_list("seeds", self.seeds, problems)
        problems.raise_if_any()

    def train_config(self, target_layer: int, seed: int) -> TrainConfig:
        """The :class:`TrainConfig` of one seed's training at ``target_layer``."""
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name in names}
        return TrainConfig(**{**values, "target_layer": target_layer, "seed": seed, "seeds": None})

    def scan_config(self) -> ScanConfig:
        """The :class:`ScanConfig` of the run's scan (the training pooling recipe)."""
        names = {f.name for f in dataclasses.fields(ScanConfig)}
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name in names}
        return ScanConfig(**{**values, "batch_size": self.embed_batch_size})


DEFAULT_PROBE_PROMPT = 'Translate the Swahili word "{source}" into English. Answer with one word.'
CHAT_TEMPLATE_MODES = ("auto", "yes", "no")


@dataclass(kw_only=True)
class ProbeConfig(ThreadOptions, OutputOptions, ModelOptions):
    """``tli probe``: base and adapted model translate sampled lexicon words; a table of their answers."""

    adapter: str | None = option(None, "adapter directory (RUN/adapter of tli train)")
    quantization: str | None = option(None, "none | nf4 | int8 (default: as in training)")
    lexicon: str | None = option(None, "word pairs (default: the training lexicon)")
    n_pairs: int = option(20, "source words to probe (seeded sample; all if the lexicon has fewer)")
    prompt: str = option(DEFAULT_PROBE_PROMPT, "instruction with a {source} slot")
    max_new_tokens: int = option(24, "tokens to generate (only the first line is kept)")
    greedy: bool = option(True, "greedy decoding", negative_help="sample instead (the same as --sample)")
    sample: bool = option(False, "sample with --temperature instead of greedy decoding")
    temperature: float = option(0.7, "sampling temperature (with --sample)")
    use_chat_template: str = option(
        "auto", "auto (the tokenizer's chat template when it has one) | yes | no", aliases=["--chat-template"]
    )
    batch_size: int = option(16, "prompts per generate call (left padded)")
    seed: int = option(0, "seed of the word sample and of sampling")

    def __post_init__(self) -> None:
        problems = Problems()
        self._check_model(problems)
        self._check_threads(problems)
        if self.sample:
            self.greedy = False
        for name, low in (("n_pairs", 1), ("max_new_tokens", 1), ("batch_size", 1), ("seed", 0)):
            value = getattr(self, name)
            problems.check(
                isinstance(value, int) and not isinstance(value, bool) and value >= low,
                f"--{_flag(name)} must be a whole number >= {low}, got {value!r}",
            )
        try:
            ok = "{source}" in self.prompt and self.prompt.format(source="x") is not None
        except (KeyError, IndexError, ValueError):
            ok = False
        problems.check(
            ok,
            f"--prompt {self.prompt!r}: {{source}} marks the word; no other {{...}} fields "
            "(write {{ }} for literal braces)",
        )
        problems.check(
            isinstance(self.temperature, (int, float)) and 0 < self.temperature < float("inf"),
            f"--temperature must be a number > 0, got {self.temperature!r}",
        )
        problems.choice("chat_template", self.use_chat_template, CHAT_TEMPLATE_MODES)
        problems.raise_if_any()


@dataclass(kw_only=True)
class StatsConfig(StatisticsOptions):
    """``tli stats``: paired statistics for any per-pair CSV / JSON / JSONL file; with groups, the between-group
    and equivalence claims of ``tli evaluate``, corrected together."""

    file: str = option(
        help="per-pair file: .csv, .json (a list of rows, or {'per_pair': [...]}) or .jsonl", positional=True
    )
    pre: str = option("sim_pre", "column of the 'before' values")
    post: str = option("sim_post", "column of the 'after' values")
    group: str | None = option(
        None,
        "column(s) that split rows into groups, comma separated (default: 'group' when present; '' = none)",
    )
    cluster: str | None = option(
        None,
        "column of cluster labels, e.g. the source word (default: 'source' or 'swahili' when present; '' = none)",
    )
    seed: int = option(0, "bootstrap seed")
    json: bool = option(False, "print JSON instead of a Markdown table")

    def __post_init__(self) -> None:
        problems = Problems()
        self._check_statistics(problems)
        problems.raise_if_any()


@dataclass(kw_only=True)
class ExportConfig(ThreadOptions, OutputOptions, EmbedOptions, ModelOptions):
    """``tli export-embeddings``: one layer's embeddings as .npy and word2vec text, for other BLI tools."""

    layer: list[int] = option(help="hidden-state index(es) to export")
    lexicon: str | None = option(
        None, "word pairs whose source and target words are exported (default: shipped)"
    )
    words: str | None = option(None, "export these words (one per line) instead of a lexicon's")
    adapter: str | None = option(None, "export the adapted model's embeddings (RUN/adapter of tli train)")
    batch_size: int = option(32, "words per forward pass")

    def __post_init__(self) -> None:
        problems = Problems()
        self._check_model(problems)
        self._check_threads(problems)
        self._check_embed(problems)
        self.layer = _int_list("layer", self.layer, problems) or []
        problems.check(bool(self.layer), "--layer needs at least one hidden-state index")
        for layer in self.layer:
            problems.at_least("layer", layer, 0)
        problems.at_least("batch_size", self.batch_size, 1)
        problems.raise_if_any()


@dataclass(kw_only=True)
class MergeConfig(ThreadOptions):
    """``tli merge``: merge an adapter into its base model's full-precision weights (a plain HF model)."""

    adapter: str = option(help="adapter directory (RUN/adapter of tli train)")
    out: str = option(help="new directory for the merged model")
    dtype: str = option("float32", "float32 | bfloat16 | float16: dtype of the merged weights")

    def __post_init__(self) -> None:
        problems = Problems()
        problems.choice("dtype", self.dtype, DTYPE_NAMES[1:])
        self._check_threads(problems)
        problems.raise_if_any()


@dataclass(kw_only=True)
class PlanConfig:
    """``tli plan``: memory, GPUs and time per strategy, from the model config alone (nothing is loaded)."""

    model: str = option(
        help="model directory, config.json, or a known name (qwen2-72b, llama-3-70b, lugha-llama-8b-wura)"
    )
    batch_size: int = option(8, "sequences per device per step")
    seq_len: int = option(512, "tokens per sequence")
    steps: int | None = option(None, "training steps (for time estimates)")
    tokens: int | None = option(None, "training tokens in all (instead of --steps)")
    target_layer: int = option(2, "TLI target layer")
    lora_r: int = option(16, "LoRA rank")
    lora_targets: list[str] = option(["q_proj", "v_proj"], "linear layers with LoRA")
    gpu_memory_gb: float = option(80.0, "memory of one GPU (GiB)")
    gpu_tflops: float = option(989.0, "peak bf16 TFLOPS of one GPU (H100 SXM: 989)")
    mfu: float = option(0.35, "model FLOPs utilisation assumed for time estimates")
    device_map_devices: int | None = option(None, "GPUs a device_map spreads inference over")
    dtype: str = option("bfloat16", "bfloat16 | float16 | float32 weights")
    gradient_checkpointing: bool = option(True, "recompute activations in the backward")
    json: bool = option(False, "print JSON instead of a table")

    def __post_init__(self) -> None:
        self.lora_targets = _split_commas(self.lora_targets) or []


@dataclass(kw_only=True)
class CompareConfig(ThreadOptions):
    """``tli compare``: fine-tuning strategies × downstream tasks × models, with paired statistics."""

    experiment: str = option(
        help="experiment YAML, or a shipped experiment's name (demo, …)", positional=True
    )
    out: str | None = option(
        None, "run directory (default runs/compare-<name>-<time>); rerunning skips finished cells"
    )
    dry_run: bool = option(
        False,
        "validate the experiment and print its plan (cells, steps, memory) and the power of its families "
        "(smallest reachable adjusted p, minimum detectable effects); run nothing",
    )
    json: bool = option(False, "with --dry-run: print the plan as JSON")
    track: str | None = option(None, "mlflow | tensorboard: also log parameters, metrics and artefacts there")
    tracking_uri: str | None = option(
        None, "MLflow tracking URI (default: a SQLite store in the run directory)"
    )

    def __post_init__(self) -> None:
        problems = Problems()
        if self.track is not None:
            problems.choice("track", self.track, ("mlflow", "tensorboard"))
        self._check_threads(problems)
        problems.raise_if_any()


@dataclass(kw_only=True)
class VerifyConfig:
    """``tli verify``: re-derive a finished run's statistics and fingerprints, and say what differs."""

    run: str = option(help="a run directory tli wrote (scan, train, evaluate, run, compare)", positional=True)
    load_model: bool = option(
        True,
        "also check that each adapter loads on its recorded base model",
        negative_help="skip loading base models (e.g. a 70B base): re-derive statistics and fingerprints only",
    )
    json: bool = option(False, "print JSON")


@dataclass(kw_only=True)
class AblateConfig(ThreadOptions):
    """``tli ablate``: the objectives side by side, with corrected verdicts."""

    model: str | None = option(
        None, "model: a directory, hub id or .gguf file (default: embedded SmolLM2-135M)"
    )
    out: str = option("runs/ablate", "run directory; rerunning resumes (finished units are kept)")
    lexicon: str | None = option(
        None, "word pairs (default: the shipped Swahili–English lexicon, stored split)"
    )
    variants: list[str] | None = option(None, f"variants to run (default all: {', '.join(VARIANTS)})")
    seeds: list[int] | None = option(
        list(ABLATION_DEFAULTS["seeds"]), "training seeds (the same for every variant)"
    )
    target_layer: int = option(
        ABLATION_DEFAULTS["target_layer"], "hidden-state index of every variant's loss"
    )
    epochs: int = option(ABLATION_DEFAULTS["epochs"], "epochs of every variant")
    no_downstream: bool = option(False, "skip the Mr. TyDi, XQuAD and XNLI checks")
    downstream_seeds: int = option(
        ABLATION_DEFAULTS["downstream_seeds"],
        "score downstream the adapters of the first N seeds (each costs a pass)",
    )
    alpha: float = option(0.05, "significance level of the Holm-corrected family")
    report_only: bool = option(
        False, "train nothing: judge the variants already finished (every seed) in --out"
    )

    def __post_init__(self) -> None:
        problems = Problems()
        self._check_threads(problems)
        self.variants = _split_commas(self.variants)
        for name in self.variants or []:
            problems.choice("variants", name, VARIANTS)
        self.seeds = _int_list("seeds", self.seeds, problems)
        problems.check(bool(self.seeds), "--seeds must name at least one seed")
        problems.at_least("target_layer", self.target_layer, 1)
        problems.at_least("epochs", self.epochs, 1)
        problems.at_least("downstream_seeds", self.downstream_seeds, 1)
        problems.check(0 < self.alpha < 1, f"--alpha must be in (0, 1), got {self.alpha}")
        problems.raise_if_any()


# ---------------------------------------------------------------------------------------------------
# Command line and YAML


COMMANDS: dict[str, type] = {
    "scan": ScanConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "run": RunConfig,
    "stats": StatsConfig,
    "probe": ProbeConfig,
    "export-embeddings": ExportConfig,
    "merge": MergeConfig,
    "plan": PlanConfig,
    "compare": CompareConfig,
    "verify": VerifyConfig,
    "ablate": AblateConfig,
}
"""Every command's options class (CLI flags and YAML keys)."""


_BOOL_METAVAR = "BOOL"
"""Metavar of boolean flags, which take an optional ``true``/``false``; help and usage show the bare flag."""
_STATES_DEFAULT = re.compile(r"\(default[:\s]|\bdefault:")


def format_default(value: Any) -> str | None:
    """A default as ``--help`` shows it, or None when there is nothing worth showing (unset, off, empty).

    Floats get four significant digits (``63/686`` → ``0.09184``, not ``0.09183673469387756``); lists are
    comma separated, as the flags take them.
    """
    if value is None or value is False or value is argparse.SUPPRESS or value == []:
        return None
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` as the docs write it: dashed flags only (``--device-map``; ``--device_map`` still parses),
    boolean flags without their optional value, and each default once — appended only where the help text
    does not state it already, never for an unset (None) or off (False) value or a ``--no-…`` negation."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and not isinstance(action, argparse._StoreFalseAction):
            shown = format_default(action.default)
            if shown is not None and not _STATES_DEFAULT.search(text):
                text += f" (default: {shown.replace('%', '%%')})"
        return text

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings:
            return super()._format_action_invocation(action)
        flags = _shown_flags(action.option_strings)
        if action.nargs == 0 or action.metavar == _BOOL_METAVAR:
            return ", ".join(flags)
        args = self._format_args(action, self._get_default_metavar_for_optional(action))
        return ", ".join(f"{flag} {args}" for flag in flags)

    def _format_usage(self, usage, actions, groups, prefix) -> str:
        text = super()._format_usage(usage, actions, groups, prefix)
        return text.replace(f" [{_BOOL_METAVAR}]", "")


def _shown_flags(option_strings: list[str]) -> list[str]:
    """The flags ``--help`` shows: the dashed spellings (underscored aliases parse but are not listed)."""
    dashed = [s for s in option_strings if not (s.startswith("--") and "_" in s)]
    return dashed or list(option_strings)


def _hf_argument_parser():
    from transformers import HfArgumentParser

    class OptionParser(HfArgumentParser):
        """HfArgumentParser with positional fields (``metadata={"positional": True}``), dashed flags first
        (usage lines name ``--device-map``, as the docs do), and ``--no-…`` negations of boolean options that
        default to true with their own help (``metadata={"negative_help": …}``)."""

        @staticmethod
        def _parse_dataclass_field(parser, field):
            if field.metadata.get("positional"):
                kwargs = {"help": field.metadata.get("help", ""), "type": str}
                if field.default is not dataclasses.MISSING:
                    kwargs.update(nargs="?", default=field.default)
                parser.add_argument(field.name, **kwargs)
                return
            before = len(parser._actions)
            metadata = dict(field.metadata)
            negative = metadata.pop("negative_help", None)
            stripped = copy.copy(field)
            stripped.metadata = types.MappingProxyType(metadata)
            HfArgumentParser._parse_dataclass_field(parser, stripped)
            for action in parser._actions[before:]:
                action.option_strings.sort(key=lambda s: s.startswith("--") and "_" in s)  # dashed first
                if action.nargs == "+":  # lists: "0,1" and "0 1" both work; __post_init__ splits and converts
                    action.type = str
                if isinstance(action, argparse._StoreFalseAction):
                    action.help = negative or f"turn --{_flag(field.name)} off"
                elif action.nargs == "?" and action.const is True:
                    action.metavar = _BOOL_METAVAR

    return OptionParser


def build_parser(command: str) -> argparse.ArgumentParser:
    """The ``tli <command>`` argument parser, generated from the command's config class."""
    config_class = COMMANDS[command]
    parser = _hf_argument_parser()(
        config_class,
        prog=f"tli {command}",
        description=(config_class.__doc__ or "").strip().split("\n")[0].split(": ", 1)[-1],
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--config", default=None, help="YAML of these options (flags override it), or a shipped name"
    )
    return parser


def parse_command(command: str, argv: list[str]) -> Any:
    """Parse ``tli <command> ARGV`` into its config object (YAML from ``--config`` first, flags override)."""
    parser = build_parser(command)
    namespace, _ = parser.parse_known_args(argv)
    if namespace.config:
        parser.set_defaults(**options_for(command, load_options_file(namespace.config)))
    values = vars(parser.parse_args(argv))
    values.pop("config", None)
    names = {f.name for f in dataclasses.fields(COMMANDS[command])}
    return COMMANDS[command](**{k: v for k, v in values.items() if k in names})


def shipped_configs() -> dict[str, Path]:
    """Configs shipped with tli (``tli/configs/*.yaml``), by name."""
    return {
        p.name.removesuffix(".yaml"): Path(str(p))
        for p in files("tli.configs").iterdir()
        if p.name.endswith(".yaml")
    }


def load_options_file(spec: str) -> dict[str, Any]:
    """Options from a YAML file (or a shipped config's name); keys normalised to field names.

    Raises:
        ConfigError: no such file, invalid YAML (with its line), not a mapping, or a key no command knows.
    """
    path = Path(spec)
    if not path.is_file():
        path = shipped_configs().get(spec, path)
    if not path.is_file():
        raise ConfigError(
            f"--config {spec}: no such file or shipped config ({', '.join(sorted(shipped_configs()))})"
        )
    values = read_yaml(path, f"--config {path}") or {}
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected a mapping of option: value")
    options = {str(k).replace("-", "_"): v for k, v in values.items()}
    known = {f.name for cls in COMMANDS.values() for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"--config {path}: unknown option(s) {', '.join(unknown)} (no tli command has them)"
        )
    return {"__path__": str(path), **options}


def options_for(command: str, options: dict[str, Any]) -> dict[str, Any]:
    """The subset of a YAML file's options that ``command`` uses; the rest is named once on stderr.

    One file serves every command (``tli scan --config quick`` ignores ``epochs``), and says what it ignored.
    """
    path = options.get("__path__", "config")
    names = {f.name for f in dataclasses.fields(COMMANDS[command])}
    used = {k: v for k, v in options.items() if k in names}
    ignored = sorted(k for k in options if k not in names and k != "__path__")
    if ignored:
        logging.getLogger("tli.config").info(
            "tli %s: --config %s: not used by this command: %s", command, path, ", ".join(ignored)
        )
    return used


__all__ = [
    "COMMANDS",
    "EvaluateConfig",
    "RunConfig",
    "ScanConfig",
    "TrainConfig",
    "build_parser",
    "load_options_file",
    "parse_command",
    "shipped_configs",
]
