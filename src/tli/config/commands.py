"""The options of the other commands — ``tli probe``, ``stats``, ``export-embeddings``, ``merge``, ``plan``,
``compare``, ``verify`` and ``ablate`` — and :data:`COMMANDS`, every command's options class by name."""

from __future__ import annotations

from dataclasses import dataclass

from tli.config.fields import Problems, _flag, _int_list, _split_commas, option
from tli.config.options import (
    DTYPE_NAMES,
    EmbedOptions,
    ModelOptions,
    OutputOptions,
    StatisticsOptions,
    ThreadOptions,
)
from tli.config.study import EvaluateConfig, RunConfig, ScanConfig, TrainConfig
from tli.objectives import ABLATION_DEFAULTS, VARIANTS

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
    json: bool = option(False, "with --dry-run or --list-cells: print JSON")
    list_cells: bool = option(
        False,
        "list the training units (model/strategy/seed-k) with the GPUs, launcher, command and GPU-hours each "
        "needs; run nothing",
    )
    only: list[str] | None = option(
        None,
        "run only these training units (ids from --list-cells, or patterns such as '*/full/*') into --out: "
        "one job of a cluster run (with --list-cells: list only them)",
    )
    shard: str | None = option(
        None, "run shard i/N of the training units (every N-th from the i-th) into --out: one array task"
    )
    collect: bool = option(
        False,
        "after the --only / --shard jobs: write the comparisons, claims and report from their cells "
        "(refuses, naming them, while units are unfinished)",
    )
    track: str | None = option(None, "mlflow | tensorboard: also log parameters, metrics and artefacts there")
    tracking_uri: str | None = option(
        None, "MLflow tracking URI (default: a SQLite store in the run directory)"
    )

    def __post_init__(self) -> None:
        problems = Problems()
        if self.track is not None:
            problems.choice("track", self.track, ("mlflow", "tensorboard"))
        jobs = (self.only, self.shard, self.collect)
        problems.check(
            sum(bool(v) for v in jobs) <= 1,
            "--only, --shard and --collect are different jobs: give one of them",
        )
        problems.check(
            not (any(jobs) and not self.out and not self.list_cells),
            "--only, --shard and --collect need --out (the run every job shares)",
        )
        problems.check(not (self.dry_run and self.list_cells), "--dry-run and --list-cells: give one of them")
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
