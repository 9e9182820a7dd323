"""The options of the study's commands: ``tli scan`` (:class:`ScanConfig`), ``tli train``
(:class:`TrainConfig`), ``tli evaluate`` (:class:`EvaluateConfig`) and ``tli run`` (:class:`RunConfig`, which
builds the scan's and each seed's training config from its own fields)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from tli.config.fields import Problems, _flag, _int_list, _split_commas, option
from tli.config.options import (
    EmbedOptions,
    LayerChoiceOptions,
    LexiconOptions,
    ModelOptions,
    OutputOptions,
    StatisticsOptions,
    ThreadOptions,
    TrainingOptions,
)
from tli.errors import TliError
from tli.pooling import RECIPE_FIELDS
from tli.runs import read_scan_choice


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
