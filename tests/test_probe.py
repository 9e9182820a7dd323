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
    echo_mask,
    generate_answers,
    is_correct,
    is_exact,
    probe,
    probe_table,
    sample_sources,
    write_probe_run,
)
from tli.words import folded_words as words

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


PROMPT = ProbeConfig().prompt


@pytest.mark.parametrize(
    ("answer", "targets", "expected"),
    [
        ("dog", {"dog"}, True),
        ("Dog.", {"dog"}, True),
        ('"DOG"', {"dog"}, True),
        ("“dog”", {"dog"}, True),
        ("dog, the animal", {"dog"}, True),
        ("the dog", {"dog"}, True),
        ("  ocean  ", {"sea", "ocean"}, True),
        ("Thank you very much!", {"thank you very much"}, True),
        ("“Thank   you, very much”", {"thank you very much"}, True),  # punctuation inside a phrase ignored
        ("The Swahili word 'mbwa' means 'dog' in English.", {"dog"}, True),
        ("It means DOG (a pet).", {"dog"}, True),
        ("Sea or ocean", {"sea", "ocean"}, True),
        ("Ubwa: « CAFÉ »", {"café"}, True),
        ("cafe\u0301", {"café"}, True),  # decomposed é (NFD) equals the composed one
        ("dogs", {"dog"}, False),
        ("The Swahili word 'mbwa' means 'dogs'.", {"dog"}, False),
        ("hotdog", {"dog"}, False),
        ("thank you", {"thank you very much"}, False),  # a multiword sense must appear whole
        ("thank you so very much", {"thank you very much"}, False),
        ("cat", {"dog"}, False),
        ("", {"dog"}, False),
        ("...", {"dog"}, False),
        ("dog", set(), False),
        ("dog", {"", "  "}, False),
    ],
)
def test_is_correct(answer, targets, expected):
    assert is_correct(answer, targets) is expected


@pytest.mark.parametrize(
    ("answer", "source", "targets", "expected"),
    [
        # The prompt names "word"; restating it is not the translation of neno (= word).
        ('Translate the Swahili word "neno" into English.', "neno", {"word"}, False),
        ("The Swahili word 'neno' means 'term'.", "neno", {"word"}, False),
        ("The Swahili word 'neno' means 'word' in English.", "neno", {"word"}, True),
        ("Answer with one word: two", "moja", {"one"}, False),
        ("The answer is one.", "moja", {"one"}, True),
        ("mbwa", "mbwa", {"dog"}, False),
        # A multiword source echoed: "sana" is also an (invented) sense, but only inside the echo.
        ("asante sana means thanks", "asante sana", {"sana"}, False),
        # A loanword spelled like its sense: the echo cannot be told from the answer, so it counts.
        ("redio", "redio", {"redio", "radio"}, True),
        ("The Swahili word 'redio' means 'radio'.", "redio", {"redio", "radio"}, True),
    ],
)
def test_is_correct_ignores_echoes(answer, source, targets, expected):
    prompt = PROMPT.format(source=source)
    assert is_correct(answer, targets, source=source, prompt=prompt) is expected


def test_words_and_echo_mask():
    assert words("The 'Dog's' bowl—mbwa!") == ["the", "dog", "s", "bowl", "mbwa"]
    assert words("हिन्दी शब्द") == ["हिन्दी", "शब्द"]  # vowel signs (marks) stay inside the word
    assert words("STRASSE") == words("straße")  # case folding
    prompt = words('Translate the Swahili word "mbwa" into English.')
    answer = words("The Swahili word mbwa is dog, mbwa")
    assert echo_mask(answer, ["mbwa"], prompt) == [
        True,
        True,
        True,
        True,
        False,
        False,
        True,
    ]  # "the swahili"
    assert echo_mask(answer, ["mbwa"], prompt, mask_source=False)[-1] is False


@pytest.mark.parametrize(
    ("answer", "targets", "expected"),
    [
        ("dog", {"dog"}, True),
        ('"Dog."', {"dog"}, True),
        ("  Thank  you very much! ", {"thank you very much"}, True),
        ("ocean", {"sea", "ocean"}, True),
        ("the dog", {"dog"}, False),
        ("The Swahili word 'mbwa' means 'dog'.", {"dog"}, False),
        ("dogs", {"dog"}, False),
        ("", {"dog"}, False),
        ("", {""}, False),
    ],
)
def test_is_exact(answer, targets, expected):
    assert is_exact(answer, targets) is expected


def test_default_leaves_room_for_a_sentence(tiny_llama_dir):
    """24 new tokens by default, and that is what generation is asked for."""
    assert ProbeConfig().max_new_tokens == 24
    tokenizer = load_model(tiny_llama_dir).tokenizer
    model = _ScriptedModel(tokenizer("dog", add_special_tokens=False)["input_ids"])
    assert generate_answers(model, tokenizer, ["mbwa\nEnglish:"], ProbeConfig()) == ["dog"]
    assert model.calls[0]["max_new_tokens"] == 24 and model.calls[0]["do_sample"] is False


class _ScriptedModel:
    """Stands in for a causal LM: ``generate`` appends the same token ids to every prompt."""

    def __init__(self, new_ids):
        import torch

        self.device = torch.device("cpu")
        self.new_ids = torch.tensor(new_ids)

        self.calls = []

    def generate(self, input_ids, attention_mask, **kwargs):
        import torch

        self.calls.append(kwargs)
        return torch.cat([input_ids, self.new_ids.expand(input_ids.shape[0], -1)], dim=1)


def test_answers_keep_only_the_first_line(tiny_dir):
    tokenizer = load_model(tiny_dir).tokenizer
    new_ids = tokenizer("\n dog\nthe cat", add_special_tokens=False)["input_ids"]
    answers = generate_answers(_ScriptedModel(new_ids), tokenizer, ["mbwa\nEnglish:", "paka"], ProbeConfig())
    assert answers == ["dog", "dog"]


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


def _greedy_by_hand(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """One prompt, no padding: append the arg-max token until EOS or the budget, keep the first line."""
    import torch

    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    new = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = int(model(input_ids=ids).logits[0, -1].argmax())
            if token == tokenizer.eos_token_id:
                break
            new.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    text = tokenizer.decode(new, skip_special_tokens=True).strip()
    return text.splitlines()[0].strip() if text else ""


def test_random_adapter_changes_answers(adapted, lexicon, tiny_llama_dir):
    """Each row's base answer is greedy decoding of the model without adapter, its adapted answer that of the
    adapted model (each prompt decoded alone by hand), and the random adapter changes some of them."""
    config = ProbeConfig(n_pairs=100, max_new_tokens=3)
    rows = probe(adapted, lexicon, config)
    prompts, _ = build_prompts(adapted.tokenizer, [r.source for r in rows], config)
    base = load_model(tiny_llama_dir).model
    assert [r.base for r in rows] == [_greedy_by_hand(base, adapted.tokenizer, p, 3) for p in prompts]
    assert [r.adapted for r in rows] == [
        _greedy_by_hand(adapted.model, adapted.tokenizer, p, 3) for p in prompts
    ]
    assert [r.base for r in rows] != [r.adapted for r in rows]


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


def test_probe_uses_chat_template_and_scores_sentences(adapted, lexicon, monkeypatch):
    import tli.probe

    calls = []

    def scripted(model, tokenizer, prompts, config, *, add_special_tokens=True):
        calls.append((prompts, add_special_tokens))
        if len(calls) == 1:  # base: the strict rule and the lenient rule agree on a one-word answer
            return ["Dog." if "mbwa" in p else "banana" for p in prompts]
        return ["The Swahili word 'mbwa' means 'dog' in English." if "mbwa" in p else "mbwa" for p in prompts]

    monkeypatch.setattr(tli.probe, "generate_answers", scripted)
    tokenizer = adapted.tokenizer
    tokenizer.chat_template = "{% for m in messages %}<s>user: {{ m['content'] }}\n{% endfor %}assistant:"
    try:
        rows = probe(adapted, lexicon, ProbeConfig(n_pairs=100))
    finally:
        tokenizer.chat_template = None
    assert [c[1] for c in calls] == [False, False]  # templated text already holds its BOS
    assert all(p.startswith("<s>user: Translate") and p.endswith("assistant:") for p in calls[0][0])
    by_source = {r.source: r for r in rows}
    dog = by_source["mbwa"]
    assert (dog.base_correct, dog.base_exact, dog.adapted_correct, dog.adapted_exact) == (
        True,
        True,
        True,
        False,
    )
    assert dog.adapted == "The Swahili word 'mbwa' means 'dog' in English."  # raw answer kept
    assert not any(r.adapted_correct or r.base_correct for s, r in by_source.items() if s != "mbwa")


def test_write_probe_run(adapted, lexicon, tmp_path):
    config = ProbeConfig(**FAST)
    rows = probe(adapted, lexicon, config)
    rows.append(ProbeRow("a|b", "x", "", "it is x", False, True, False, False))
    rows.append(ProbeRow("c", "y", "y", "", False, False, True, False))
    out = write_probe_run(tmp_path / "run", rows, config, adapted, lexicon)
    record = json.loads((out / "results.json").read_text())
    assert record["n"] == 8 and len(record["probe"]) == 8
    assert record["adapted_correct"] == sum(r.adapted_correct for r in rows)
    assert record["base_exact"] == sum(r.base_exact for r in rows) >= 1
    assert record["probe"][-2]["adapted"] == "it is x" and record["probe"][-2]["adapted_exact"] is False
    assert set(record["scoring"]) == {"correct", "exact"}
    assert record["config"]["n_pairs"] == 6 and record["model"]["adapter"]
    assert record["lexicon"]["fingerprint"] == lexicon.fingerprint()
    text = (out / "probe.md").read_text()
    assert "| source | expected | base | adapted | base ✓ | adapted ✓ | base exact | adapted exact |" in text
    assert "| a\\|b | x | _(empty)_ | it is x | ✗ | ✓ | ✗ | ✗ |" in text
    assert "a\\|b" in text and "_(empty)_" in text
    k, e = sum(r.base_correct for r in rows), record["base_exact"]
    m, f = record["adapted_correct"], record["adapted_exact"]
    assert f"base: {k}/8 correct ({e} exact), adapted: {m}/8 correct ({f} exact)" in text
    assert sum(line.startswith("|") for line in probe_table(rows).splitlines()) == 10  # header, rule, 8 rows


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
