"""The option groups several commands share, one ``@dataclass`` mixin per concern: the model and how it is
loaded (:class:`ModelOptions`), the pooling recipe (:class:`EmbedOptions`), the lexicon and its split
(:class:`LexiconOptions`), the layer choice, the statistics, LoRA and TLI training, threads and the output
directory; with the named choices they validate against (:data:`CRITERIA`, :data:`LOSS_NAMES`, …).

Each mixin checks its own fields in a ``_check_…`` method that a command's ``__post_init__`` calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tli.architecture import QUANTIZATIONS
from tli.config.fields import Problems, _flag, _int_list, _split_commas, option
from tli.errors import ConfigError
from tli.placement import DEVICE_MAP_STRATEGIES, parse_max_memory
from tli.pooling import DEFAULT_POOLING, RECIPE_FIELDS, PoolingRecipe, recipe_problems

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
