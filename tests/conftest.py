"""Shared fixtures: tiny random Llama / Qwen2 models with a small BPE tokenizer, built once per session.

Nothing here downloads: the tokenizer is trained on a fixed word list with the ``tokenizers`` library, and
the models are random ``LlamaConfig`` / ``Qwen2Config`` networks saved as local HF directories.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

TOY_PAIRS = [
    ("mbwa", "dog"),
    ("paka", "cat"),
    ("maji", "water"),
    ("moto", "fire"),
    ("nyumba", "house"),
    ("kitabu", "book"),
    ("mti", "tree"),
    ("jua", "sun"),
    ("mwezi", "moon"),
    ("mtoto", "child"),
    ("mama", "mother"),
    ("baba", "father"),
    ("chakula", "food"),
    ("ndege", "bird"),
    ("samaki", "fish"),
    ("bahari", "sea"),
    ("bahari", "ocean"),
    ("mlima", "mountain"),
    ("kiti", "chair"),
    ("kiti", "seat"),
    ("meza", "table"),
    ("gari", "car"),
    ("njia", "road"),
    ("asante sana", "thank you very much"),
]
EVALUATION_KEYS = {
    "group",
    "layer",
    "n",
    "mean_pre",
    "mean_post",
    "change",
    "change_pct",
    "t",
    "p_ttest",
    "p_wilcoxon",
    "ci95_low",
    "ci95_high",
    "cohens_d",
    "mismatched_pre",
    "mismatched_post",
    "p_at_1_pre",
    "p_at_1_post",
}
"""The fields every ``evaluation`` entry of results.json carries (the documented interface)."""
EXTRA_WORDS = (
    "the a of and to in is it you that he was for on are with as his they be at one have this".split()
)


def _train_tokenizer(directory: Path, *, llama_style: bool) -> None:
    """A byte-level BPE of ~400 tokens; Llama style adds BOS, Qwen2 style adds nothing (no BOS)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [w for pair in TOY_PAIRS for w in pair] + EXTRA_WORDS
    specials = ["<s>", "</s>", "<pad>"] if llama_style else ["<|endoftext|>", "<|im_start|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus * 3, trainer)
    if llama_style:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
        )
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
        )
    else:  # Qwen2-like: no BOS, eos doubles as pad
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    fast.save_pretrained(directory)


def _build_model(directory: Path, family: str, vocab_size: int, layers: int = 4) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    common = dict(
        vocab_size=vocab_size,
        # Shapes real models have (multiples of 64, head_dim 64): bitsandbytes' AVX512-BF16 CPU kernels
        # pack NF4 weights in 64-wide blocks and reject smaller dimensions.
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    model.save_pretrained(directory)


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory) -> dict[str, Path]:
    """``{"llama": dir, "qwen2": dir}``: saved tiny random models with their tokenizers (4 blocks)."""
    root = tmp_path_factory.mktemp("tiny-models")
    dirs = {}
    for family, llama_style in (("llama", True), ("qwen2", False)):
        directory = root / family
        _train_tokenizer(directory, llama_style=llama_style)
        vocab = len(json.loads((directory / "tokenizer.json").read_text())["model"]["vocab"])
        _build_model(directory, family, vocab_size=vocab + 8)
        dirs[family] = directory
    return dirs


@pytest.fixture(scope="session")
def tiny_llama_dir(tiny_model_dirs) -> Path:
    return tiny_model_dirs["llama"]


@pytest.fixture(params=["llama", "qwen2"])
def tiny_dir(request, tiny_model_dirs) -> Path:
    """Each tiny model family in turn."""
    return tiny_model_dirs[request.param]


@pytest.fixture
def toy_lexicon_file(tmp_path) -> Path:
    """The toy lexicon as a published-format JSON list."""
    path = tmp_path / "toy.json"
    path.write_text(json.dumps([{"swahili": s, "english": e} for s, e in TOY_PAIRS]))
    return path


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same random state."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def _isolated_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tli-cache")


@pytest.fixture(autouse=True)
def _tli_cache(monkeypatch, request):
    """Unit tests never touch the user's cache; slow tests share the real one (GGUF conversion)."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setenv("TLI_CACHE_DIR", str(request.getfixturevalue("_isolated_cache")))


def steps_by_hand(n_pairs: int, batch_size: int, epochs: int) -> int:
    """Optimiser steps of a TLI training run: ⌈n / b⌉ batches an epoch, one fewer when a lone last pair joins
    the previous batch (n mod b = 1, n > b), one step per batch."""
    batches = -(-n_pairs // batch_size) - (1 if n_pairs % batch_size == 1 and n_pairs > batch_size else 0)
    return epochs * batches


def holm_by_hand(p: list[float]) -> list[float]:
    """Holm's step-down adjustment written out independently of tli.stats: with the m known p-values sorted
    ascending, ``p~_(i) = min(1, max_{j <= i} (m − j + 1) · p_(j))``; nan stays nan and is not counted."""
    known = sorted((value, i) for i, value in enumerate(p) if not math.isnan(value))
    out = [math.nan] * len(p)
    running = 0.0
    for rank, (value, i) in enumerate(known):
        running = max(running, (len(known) - rank) * value)
        out[i] = min(1.0, running)
    return out


def _adjusted_by_hand(p: list[float], correction: str) -> list[float]:
    from scipy.stats import false_discovery_control

    if correction == "none":
        return list(p)
    if correction == "holm":
        return holm_by_hand(p)
    assert correction == "bh", correction
    return [float(x) for x in false_discovery_control(np.asarray(p, dtype=float), method="bh")]


def _verdict_by_hand(claim: dict, p_adjusted: float, alpha: float) -> str:
    """The verdict rules of tli.claims, restated from its docstring."""
    if claim["kind"] == "equivalence":
        if p_adjusted < alpha:
            return "supported"
        low, high, margin = claim.get("ci90_low"), claim.get("ci90_high"), claim.get("margin")
        if None in (low, high, margin):
            return "inconclusive"
        return "contradicted" if low > margin or high < -margin else "inconclusive"
    if claim["kind"] == "non-inferiority":
        if p_adjusted < alpha:
            return "supported"
        margin = claim.get("margin")
        return "contradicted" if margin is not None and claim["ci95_high"] < -margin else "inconclusive"
    if not p_adjusted < alpha:
        return "inconclusive"
    up, down = claim["ci95_low"] > 0, claim["ci95_high"] < 0
    if (up and claim["expect"] == "increase") or (down and claim["expect"] == "decrease"):
        return "supported"
    return "contradicted" if up or down else "inconclusive"


def assert_verdicts_follow_from_the_numbers(
    claims: list[dict], *, correction: str = "holm", alpha: float = 0.05
) -> list[str]:
    """Every claim's ``p_adjusted`` is the family's adjustment of the raw ``p`` (Holm by hand, BH by scipy)
    and its ``verdict`` is the one its adjusted p and interval imply; returns the verdicts."""
    assert claims, "no claims to check"
    adjusted = _adjusted_by_hand([float(c["p"]) for c in claims], correction)
    for claim, p_adjusted in zip(claims, adjusted, strict=True):
        assert claim["p_adjusted"] == pytest.approx(p_adjusted, rel=1e-9, abs=1e-15, nan_ok=True), claim[
            "claim"
        ]
        assert claim["verdict"] == _verdict_by_hand(claim, p_adjusted, alpha), claim["claim"]
    return [c["verdict"] for c in claims]
