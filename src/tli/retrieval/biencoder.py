"""Dense retriever training: a sentence-transformers bi-encoder with the multiple-negatives ranking loss.

The encoder is any local encoder directory (an mDPR, mBERT or XLM-R checkpoint; a saved
sentence-transformers model keeps its own pooling) or a causal LM tli loads, with a pooling layer on top
(``mean``, ``lasttoken``, ``cls``). Queries and passages share the encoder (a tied bi-encoder), optionally
with a prefix per side (``query: `` / ``passage: ``, as E5).

Loss (``sentence_transformers.losses.MultipleNegativesRankingLoss``; Henderson et al. 2017, the DPR loss of
Karpukhin et al. 2020): for a batch of ``B`` (query ``q_i``, positive ``p_i``, optional hard negatives
``n_i``) the candidates of ``q_i`` are every positive and every hard negative of the batch, and

``L = −(1/B) Σ_i log( exp(s·cos(q_i, p_i)) / Σ_{c ∈ candidates} exp(s·cos(q_i, c)) )``, ``s = 20``.

Batches never hold the same text twice (``BatchSamplers.NO_DUPLICATES``): a duplicate would be a false
negative. Hard negatives are mined with BM25 (:func:`mine_hard_negatives`): the best-scoring passages of the
training pool that are not the pair's positive. Every condition of a comparison is trained for the same
number of steps with the same seed, batch size and schedule; only the pairs differ.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tli.errors import ConfigError, ModelLoadError
from tli.progress import Progress
from tli.resources import Measured
from tli.retrieval.bm25 import BM25Index
from tli.retrieval.libraries import sentence_transformers_parts

log = logging.getLogger(__name__)

POOLINGS = ("mean", "lasttoken", "cls", "max")
CONDITIONS = ("zero-shot", "direct-transfer", "synthetic", "mix")
"""The compared dense-retriever conditions: no training; English pairs only; tli's synthetic pairs in the
target language; English and synthetic pairs together."""


@dataclass(frozen=True)
class TrainingPair:
    """One (query, positive passage) training example.

    Attributes:
        query: Query text.
        passage: Its relevant passage.
        language: Language of the passage (BM25 mining uses its tokenisation).
        source: Where it came from (``english``, ``synthetic:doc2query``, ...).
        negatives: Hard negative passages (filled by :func:`mine_hard_negatives`).
    """

    query: str
    passage: str
    language: str
    source: str = ""
    negatives: tuple[str, ...] = ()


@dataclass(kw_only=True)
class BiEncoderOptions:
    """How the dense retriever is built and trained (YAML ``retrieval.dense_retriever``)."""

    encoder: str = "model"
    """``model``: each of the experiment's models (a causal LM) with ``pooling``; or a local encoder
    directory (mDPR / mBERT / XLM-R, or a saved sentence-transformers model)."""
    pooling: str = "mean"
    """Pooling over the encoder's last hidden states: mean | lasttoken | cls | max (a saved
    sentence-transformers model keeps its own)."""
    max_seq_length: int = 256
    """Tokens per query or passage (longer ones are cut)."""
    encoder_layers: int | None = None
    """Use only the first N blocks of the encoder (None: all). An LLM's early blocks carry its lexical
    alignment, and a shallower encoder trains in a fraction of the time."""
    query_prefix: str = ""
    """Text put before every query (e.g. ``query: ``)."""
    passage_prefix: str = ""
    """Text put before every passage (e.g. ``passage: ``)."""
    steps: int = 100
    """Optimiser steps of every trained condition (the same for all)."""
    batch_size: int = 16
    """(query, positive) pairs per step; each query's in-batch negatives are the other positives."""
    lr: float = 2e-5
    """AdamW learning rate (linear decay after warm-up)."""
    warmup_steps: int = 10
    hard_negatives: int = 0
    """BM25-mined hard negatives per pair (0: in-batch negatives only)."""
    scale: float = 20.0
    """Inverse temperature ``s`` of the loss."""
    encode_batch_size: int = 32
    """Texts per forward pass when encoding for retrieval."""

    def __post_init__(self) -> None:
        problems = []
        if self.pooling not in POOLINGS:
            problems.append(f"pooling {self.pooling!r} is not one of {', '.join(POOLINGS)}")
        if self.encoder_layers is not None and (
            isinstance(self.encoder_layers, bool)
            or not isinstance(self.encoder_layers, int)
            or self.encoder_layers < 1
        ):
            problems.append(
                f"encoder_layers must be a whole number >= 1 or null, got {self.encoder_layers!r}"
            )
        for name, low in (
            ("max_seq_length", 8),
            ("steps", 1),
            ("batch_size", 2),
            ("warmup_steps", 0),
            ("hard_negatives", 0),
            ("encode_batch_size", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                problems.append(f"{name} must be a whole number >= {low}, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            problems.append(f"lr must be > 0, got {self.lr!r}")
        if not (isinstance(self.scale, (int, float)) and self.scale > 0):
            problems.append(f"scale must be > 0, got {self.scale!r}")
        if problems:
            raise ConfigError("retrieval.dense_retriever: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_sentence_transformers_dir(path: Path) -> bool:
    return (path / "modules.json").is_file()


def build_biencoder(
    location: str, *, pooling: str, max_seq_length: int, device: str = "cpu", layers: int | None = None
) -> Any:
    """A sentence-transformers model from a local directory (or a hub id when online).

    A saved sentence-transformers model is loaded as saved; any other Hugging Face encoder or causal LM
    directory gets a ``Transformer`` module (its first ``layers`` blocks only, when given) and a
    ``Pooling(pooling)`` module. A tokenizer without a pad token gets its EOS (or UNK) token as pad, as
    causal LMs need.

    Raises:
        ModelLoadError: the directory cannot be loaded.
    """
    models, _, _ = sentence_transformers_parts()
    import transformers
    from sentence_transformers import SentenceTransformer

    path = Path(location).expanduser()
    verbosity = transformers.logging.get_verbosity()
    # A causal LM read as an encoder reports its unused lm_head (and skipped blocks) key by key.
    transformers.logging.set_verbosity_error()
    try:
        if _is_sentence_transformers_dir(path):
            model = SentenceTransformer(str(path), device=device)
            model.max_seq_length = max_seq_length
        else:
            config = {"num_hidden_layers": layers} if layers is not None else None
            transformer = models.Transformer(str(path), max_seq_length=max_seq_length, config_kwargs=config)
            dimension = (
                getattr(transformer, "get_embedding_dimension", None)
                or transformer.get_word_embedding_dimension
            )
            pool = models.Pooling(dimension(), pooling_mode=pooling)
            model = SentenceTransformer(modules=[transformer, pool], device=device)
    except Exception as exc:  # loading raises many types (OSError, ValueError, safetensors errors)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load dense-retriever encoder {location!r}: {first}") from exc
    finally:
        transformers.logging.set_verbosity(verbosity)
    tokenizer = model.tokenizer
    if getattr(tokenizer, "pad_token", None) is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return model


def trainable_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def mine_hard_negatives(pairs: Sequence[TrainingPair], n: int) -> list[TrainingPair]:
    """Each pair with its ``n`` best BM25 passages (from the pairs' own passage pool, same language) that are
    not its positive; a pair whose pool has fewer candidates gets fewer.
    """
    if n == 0:
        return list(pairs)
    out = list(pairs)
    for language in sorted({p.language for p in pairs}):
        members = [i for i, p in enumerate(pairs) if p.language == language]
        pool = list(dict.fromkeys(pairs[i].passage for i in members))
        if len(pool) < 2:
            continue
        index = BM25Index(pool, language)
        top, _ = index.search([pairs[i].query for i in members], min(len(pool), n + 1))
        for row, i in enumerate(members):
            negatives = [pool[j] for j in top.indices[row] if j >= 0 and pool[j] != pairs[i].passage][:n]
            out[i] = TrainingPair(
                pairs[i].query, pairs[i].passage, language, pairs[i].source, tuple(negatives)
            )
    return out


@dataclass
class TrainStats:
    """What training a bi-encoder did (for the cost table)."""

    steps: int
    examples: int
    losses: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    trainable_parameters: int = 0
    tokens_seen: int = 0

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["loss_first"] = self.losses[0] if self.losses else None
        record["loss_last"] = self.losses[-1] if self.losses else None
        return record


def _mean_tokens(model: Any, texts: Sequence[str], limit: int) -> float:
    sample = list(texts)[:512]
    if not sample:
        return 0.0
    lengths = [min(limit, len(ids)) for ids in model.tokenizer(sample, add_special_tokens=True)["input_ids"]]
    return float(np.mean(lengths))


def _training_columns(pairs: Sequence[TrainingPair], options: BiEncoderOptions) -> dict[str, list[str]]:
    """The trainer's columns: ``anchor`` (queries), ``positive`` and ``negative_<j>`` (passages), prefixed."""
    columns: dict[str, list[str]] = {
        "anchor": [options.query_prefix + p.query for p in pairs],
        "positive": [options.passage_prefix + p.passage for p in pairs],
    }
    n_negatives = min((len(p.negatives) for p in pairs), default=0) if options.hard_negatives else 0
    for j in range(n_negatives):  # every row needs the same columns; pairs with fewer negatives cap them
        columns[f"negative_{j + 1}"] = [options.passage_prefix + p.negatives[j] for p in pairs]
    return columns


def train_biencoder(
    model: Any,
    pairs: Sequence[TrainingPair],
    options: BiEncoderOptions,
    *,
    seed: int,
    output_dir: str | Path,
    progress: bool | None = None,
    desc: str = "dense retriever",
) -> TrainStats:
    """Fine-tune ``model`` in place on ``pairs`` with the multiple-negatives ranking loss.

    ``options.steps`` optimiser steps of ``options.batch_size`` pairs (the pairs are cycled as needed),
    AdamW with ``options.lr`` and a linear schedule after ``options.warmup_steps``; data order and
    initialisation follow ``seed``.

    Raises:
        ConfigError: no training pairs.
    """
    from datasets import Dataset

    _, losses, training_args = sentence_transformers_parts()
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    MultipleNegativesRankingLoss, BatchSamplers = (
        losses.MultipleNegativesRankingLoss,
        training_args.BatchSamplers,
    )

    if not pairs:
        raise ConfigError("dense-retriever training has no (query, passage) pairs")
    pairs = mine_hard_negatives(pairs, options.hard_negatives)
    columns = _training_columns(pairs, options)

    device = str(model.device)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        max_steps=options.steps,
        per_device_train_batch_size=min(options.batch_size, len(pairs)),
        learning_rate=options.lr,
        warmup_steps=options.warmup_steps,
        lr_scheduler_type="linear",
        seed=seed,
        data_seed=seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to=[],
        logging_steps=1,
        use_cpu=not device.startswith("cuda"),
        bf16=device.startswith("cuda") and torch.cuda.is_bf16_supported(),
        disable_tqdm=True,  # progress is reported by tli.progress.Progress (bar or log lines)
        dataloader_drop_last=False,
    )

    class Trainer(SentenceTransformerTrainer):
        def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
            """No model-card tracking: tli records provenance itself, and the card's widget sampling draws
            from the global ``random`` state."""

    from transformers import PrinterCallback

    loss = MultipleNegativesRankingLoss(model, scale=options.scale)
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict(columns), loss=loss)
    trainer.remove_callback(PrinterCallback)  # losses go to train.json, not stdout
    start = time.perf_counter()
    with Progress(options.steps, desc, enabled=False if progress is False else (progress or None)) as bar:
        trainer.add_callback(_StepProgress(bar))
        output = trainer.train()
    seconds = time.perf_counter() - start
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h and "train_loss" not in h]
    if losses and not all(math.isfinite(x) for x in losses):
        raise ConfigError("dense-retriever training loss is not finite: lower retrieval.dense_retriever.lr")
    per_example = sum(_mean_tokens(model, columns[c], options.max_seq_length) for c in columns)
    return TrainStats(
        steps=int(output.global_step),
        examples=len(pairs),
        losses=losses,
        train_seconds=seconds,
        trainable_parameters=trainable_parameters(model),
        tokens_seen=int(round(per_example * options.batch_size * int(output.global_step))),
    )


def load_biencoder(directory: str | Path, options: BiEncoderOptions, *, device: str) -> Any:
    """A bi-encoder trained and saved earlier (``model.save(directory)``), built as :func:`fit_biencoder`
    builds one."""
    return build_biencoder(
        str(directory), pooling=options.pooling, max_seq_length=options.max_seq_length, device=device
    )


def fit_biencoder(
    location: str,
    options: BiEncoderOptions,
    pairs: Sequence[TrainingPair] | None,
    *,
    seed: int | None,
    output_dir: Path,
    device: str,
    progress: bool | None = None,
    desc: str = "dense retriever",
) -> tuple[Any, TrainStats | None, dict[str, Any]]:
    """Build the bi-encoder from ``location`` and train it on ``pairs`` (``None``: no training, zero-shot).

    Returns:
        The model, its :class:`TrainStats` (None untrained) and its cost: ``trainable_parameters``,
        ``train_seconds``, ``peak_memory_mb`` and ``peak_memory_kind`` (CUDA, else the process RSS),
        ``tokens_seen``, ``steps``, ``loss_first``, ``loss_last``, ``examples``, ``encoder_parameters``.
    """
    with Measured() as measured:
        model = build_biencoder(
            location,
            pooling=options.pooling,
            max_seq_length=options.max_seq_length,
            device=device,
            layers=options.encoder_layers,
        )
        stats = None
        if pairs is not None:
            stats = train_biencoder(
                model, pairs, options, seed=int(seed), output_dir=output_dir, progress=progress, desc=desc
            )
    record = stats.to_dict() if stats else {}
    cost = {
        "trainable_parameters": stats.trainable_parameters if stats else 0,
        "train_seconds": stats.train_seconds if stats else 0.0,
        "peak_memory_mb": measured.peak_cuda_mb or measured.peak_rss_mb,
        "peak_memory_kind": "cuda" if measured.peak_cuda_mb else f"process RSS ({measured.rss_peak_scope})",
        "tokens_seen": stats.tokens_seen if stats else 0,
        "steps": stats.steps if stats else 0,
        "loss_first": record.get("loss_first"),
        "loss_last": record.get("loss_last"),
        "examples": stats.examples if stats else 0,
        "encoder_parameters": trainable_parameters(model),
    }
    return model, stats, cost


def _step_progress_class():
    from transformers import TrainerCallback

    class StepProgress(TrainerCallback):
        """Reports each optimiser step (and the last loss) to a :class:`tli.progress.Progress`."""

        def __init__(self, bar: Any) -> None:
            self.bar, self.loss = bar, None

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])

        def on_step_end(self, args, state, control, **kwargs):
            self.bar.update(1, **({"loss": self.loss} if self.loss is not None else {}))

    return StepProgress


def _StepProgress(bar: Any) -> Any:  # noqa: N802 - a class built on first use (transformers is heavy)
    return _step_progress_class()(bar)


class SentenceEncoder:
    """A sentence-transformers model as a retrieval :class:`~tli.retrieval.encode.Encoder` (one layer, 0).

    Args:
        model: The SentenceTransformer.
        options: Prefixes and encoding batch size.
        fingerprint: :func:`~tli.retrieval.encode.model_state_fingerprint` of the model's weights.
    """

    layers = (0,)

    def __init__(self, model: Any, options: BiEncoderOptions, fingerprint: str) -> None:
        self.model, self.options, self.state = model, options, fingerprint
        self.truncated: dict[str, int] = {}

    def fingerprint(self) -> dict[str, Any]:
        return {
            "encoder": "sentence-transformers",
            "model": self.state,
            "max_seq_length": self.model.max_seq_length,
            "query_prefix": self.options.query_prefix,
            "passage_prefix": self.options.passage_prefix,
        }

    def encode(self, texts: Sequence[str], role: str, *, progress: bool | None = None) -> np.ndarray:
        prefix = self.options.query_prefix if role == "query" else self.options.passage_prefix
        vectors = self.model.encode(
            [prefix + t for t in texts],
            batch_size=self.options.encode_batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=bool(progress),
        )
        return np.asarray(vectors, dtype=np.float32)[None]  # (1, n, H)
