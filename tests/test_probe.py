"""Tests for ``tli probe``: scoring, sampling, batched generation, the adapter switch and the run files."""

from __future__ import annotations

import json

import pytest
from peft import LoraConfig, get_peft_model

from tli.errors import ConfigError, TliError
from tli.lexicon import read_lexicon
from tli.models import load_model
from tli.probe import (
    ProbeConfig,
    ProbeRow,
    build_prompts,
    generate_answers,
    is_correct,
    probe,
    probe_table,
    sample_sources,
    write_probe_run,
)

FAST = dict(max_new_tokens=3, n_pairs=6)


def _adapter(model_dir, path, *, zero: bool):
    """Save a LoRA adapter for the tiny model: random B (changes outputs) or B = 0 (identity)."""
    model = get_peft_model(
        load_model(model_dir).model,
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=zero),
    )
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def adapted(tiny_llama_dir, tmp_path_factory):
    path = _adapter(tiny_llama_dir, tmp_path_factory.mktemp("probe") / "adapter", zero=False)
    return load_model(tiny_llama_dir, adapter=path, device="cpu")


@pytest.fixture
def lexicon(toy_lexicon_file):
    return read_lexicon(toy_lexicon_file)


@pytest.mark.parametrize(
    ("answer", "targets", "expected"),
    [
        ("dog", {"dog"}, True),
        ("Dog.", {"dog"}, True),
        ('"DOG"', {"dog"}, True),
        ("“dog”", {"dog"}, True),
        ("dog, the animal", {"dog"}, True),
        ("  ocean  ", {"sea", "ocean"}, True),
        ("Thank you very much!", {"thank you very much"}, True),
        ("dogs", {"dog"}, False),
        ("the dog", {"dog"}, False),
        ("cat", {"dog"}, False),
        ("", {"dog"}, False),
        ("...", {"dog"}, False),
        ("dog", set(), False),
    ],
)
def test_is_correct(answer, targets, expected):
    assert is_correct(answer, targets) is expected


def test_sampling_is_seeded(lexicon):
    first = sample_sources(lexicon, 5, seed=3)
    assert first == sample_sources(lexicon, 5, seed=3)
    assert len(first) == len(set(first)) == 5
    assert {tuple(sample_sources(lexicon, 5, seed=s)) for s in range(5)} != {tuple(first)}
    everything = sample_sources(lexicon, 1000, seed=0)
    assert everything == list(dict.fromkeys(lexicon.sources))  # all sources, file order, no repeats


def test_probe_rows(adapted, lexicon):
    rows = probe(adapted, lexicon, ProbeConfig(**FAST))
    assert len(rows) == 6
    assert all(isinstance(r.base, str) and isinstance(r.adapted, str) for r in rows)
    assert len({r.source for r in rows}) == 6
    assert rows == probe(adapted, lexicon, ProbeConfig(**FAST))  # greedy is deterministic
    senses = {r.source: r.target for r in probe(adapted, lexicon, ProbeConfig(n_pairs=100, max_new_tokens=1))}
    assert senses["bahari"] == "sea / ocean"  # gold = every sense of the source word


def test_random_adapter_changes_answers(adapted, lexicon):
    rows = probe(adapted, lexicon, ProbeConfig(n_pairs=100, max_new_tokens=3))
    assert any(r.base != r.adapted for r in rows)


def test_sampled_generation_is_seeded(adapted, lexicon):
    config = ProbeConfig(greedy=False, temperature=1.5, seed=7, **FAST)
    assert probe(adapted, lexicon, config) == probe(adapted, lexicon, config)


def test_zero_adapter_matches_base(tiny_llama_dir, tmp_path, lexicon):
    loaded = load_model(tiny_llama_dir, adapter=_adapter(tiny_llama_dir, tmp_path / "a", zero=True))
    rows = probe(loaded, lexicon, ProbeConfig(n_pairs=10, max_new_tokens=4))
    assert [r.base for r in rows] == [r.adapted for r in rows]


def test_left_padding_matches_single_prompt(tiny_dir):
    loaded = load_model(tiny_dir)
    config, tokenizer = ProbeConfig(max_new_tokens=4), loaded.tokenizer
    short = "mbwa\nEnglish:"
    batch = [short, "the dog of the house is a big dog and the cat\nEnglish:", "kitabu cha mtoto\nEnglish:"]
    side = tokenizer.padding_side
    alone = generate_answers(loaded.model, tokenizer, [short], config)
    together = generate_answers(loaded.model, tokenizer, batch, config)
    assert together[0] == alone[0]
    assert (
        generate_answers(loaded.model, tokenizer, batch, ProbeConfig(max_new_tokens=4, batch_size=1))
        == together
    )
    assert tokenizer.padding_side == side  # restored


def test_chat_template(adapted):
    tokenizer = adapted.tokenizer
    plain, chat = build_prompts(tokenizer, ["mbwa"], ProbeConfig())
    assert not chat and plain[0].endswith('"mbwa" into English. Answer with one word.\nEnglish:')
    with pytest.raises(ConfigError, match="--chat-template"):
        build_prompts(tokenizer, ["mbwa"], ProbeConfig(use_chat_template="yes"))
    tokenizer.chat_template = "{% for m in messages %}<s>user: {{ m['content'] }}\n{% endfor %}assistant:"
    try:
        prompts, chat = build_prompts(tokenizer, ["mbwa"], ProbeConfig())
        assert chat and prompts[0] == f"<s>user: {ProbeConfig().prompt.format(source='mbwa')}\nassistant:"
        assert build_prompts(tokenizer, ["mbwa"], ProbeConfig(use_chat_template="no"))[1] is False
        answers = generate_answers(adapted.model, tokenizer, prompts, ProbeConfig(max_new_tokens=2))
        assert len(answers) == 1
    finally:
        tokenizer.chat_template = None


def test_write_probe_run(adapted, lexicon, tmp_path):
    config = ProbeConfig(**FAST)
    rows = probe(adapted, lexicon, config)
    rows.append(ProbeRow("a|b", "x", "", "x", False, True))
    out = write_probe_run(tmp_path / "run", rows, config, adapted, lexicon)
    record = json.loads((out / "results.json").read_text())
    assert record["n"] == 7 and len(record["probe"]) == 7
    assert record["adapted_correct"] == sum(r.adapted_correct for r in rows)
    assert record["config"]["n_pairs"] == 6 and record["model"]["adapter"]
    assert record["lexicon"]["fingerprint"] == lexicon.fingerprint()
    text = (out / "probe.md").read_text()
    assert "| source | expected | base | adapted | base ✓ | adapted ✓ |" in text
    assert "a\\|b" in text and "_(empty)_" in text
    k = sum(r.base_correct for r in rows)
    assert f"base: {k}/7 correct, adapted: {record['adapted_correct']}/7 correct" in text
    assert sum(line.startswith("|") for line in probe_table(rows).splitlines()) == 9  # header, rule, 7 rows


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"n_pairs": 0}, "--n-pairs"),
        ({"max_new_tokens": 0}, "--max-new-tokens"),
        ({"batch_size": -1}, "--batch-size"),
        ({"seed": -1}, "--seed"),
        ({"prompt": "Translate the word"}, "--prompt"),
        ({"prompt": "{source} in {lang}"}, "--prompt"),
        ({"temperature": 0.0}, "--temperature"),
        ({"use_chat_template": "maybe"}, "--chat-template"),
    ],
)
def test_bad_config(kwargs, option):
    with pytest.raises(ConfigError, match=option):
        ProbeConfig(**kwargs)


def test_needs_adapter(tiny_llama_dir, lexicon):
    with pytest.raises(TliError, match="--adapter"):
        probe(load_model(tiny_llama_dir), lexicon, ProbeConfig(**FAST))
