"""Embedding extraction: batched == one word at a time, pooling positions, no lm_head."""

import pytest
import torch

from tli.embed import EmbedConfig, embed_all_layers, encode_words
from tli.errors import ConfigError, TliError
from tli.models import load_model
from tli.pooling import POOLINGS

WORDS = ["mbwa", "asante sana", "thank you very much", "dog", "xyzzy plugh qwv", "bahari", "sea"]


def _one_word_reference(loaded, word, config):
    """Unbatched, unpadded forward of a single word, pooled over the same positions."""
    encoded = encode_words([word], loaded.tokenizer, config)[0]
    ids = torch.tensor([encoded.input_ids])
    with torch.no_grad():
        hidden = loaded.model.model(input_ids=ids, output_hidden_states=True).hidden_states
    stacked = torch.stack(hidden)[:, 0]  # (layers, T, H)
    pooled = stacked[:, encoded.pool_positions].mean(dim=1)
    return torch.nn.functional.normalize(pooled, dim=-1)


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("template", [None, 'The word "{word}" means: "'])
def test_batched_equals_one_word_at_a_time(tiny_dir, pooling, template):
    loaded = load_model(tiny_dir)
    config = EmbedConfig(pooling=pooling, template=template, batch_size=3)
    batched = embed_all_layers(WORDS, loaded.model, loaded.tokenizer, config, progress=False)
    assert batched.shape == (loaded.num_layers + 1, len(WORDS), 128)
    for i, word in enumerate(WORDS):
        reference = _one_word_reference(loaded, word, config)
        torch.testing.assert_close(batched[:, i], reference, atol=1e-4, rtol=0)


def test_pool_positions_with_tokenizer_bos(tiny_llama_dir):
    loaded = load_model(tiny_llama_dir)
    tok = loaded.tokenizer
    mean = encode_words(["asante sana"], tok, EmbedConfig(pooling="mean"))[0]
    assert mean.input_ids[0] == tok.bos_token_id  # the tokenizer adds BOS itself: nothing prepended
    assert mean.input_ids.count(tok.bos_token_id) == 1
    n = len(mean.input_ids)
    assert mean.pool_positions == list(range(n))
    no_special = encode_words(["asante sana"], tok, EmbedConfig(pooling="mean-no-special"))[0]
    assert no_special.pool_positions == list(range(1, n))
    last = encode_words(["asante sana"], tok, EmbedConfig(pooling="last"))[0]
    assert last.pool_positions == [n - 1]


def test_auto_bos_uses_end_of_text_when_tokenizer_has_no_bos(tiny_model_dirs):
    loaded = load_model(tiny_model_dirs["qwen2"])
    tok = loaded.tokenizer
    assert tok.bos_token_id is None
    auto = encode_words(["dog"], tok, EmbedConfig(pooling="mean-no-special"))[0]
    assert auto.input_ids[0] == tok.eos_token_id
    assert 0 not in auto.pool_positions and auto.pool_positions
    never = encode_words(["dog"], tok, EmbedConfig(pooling="mean", add_bos="never"))[0]
    assert never.input_ids == tok("dog")["input_ids"]


def test_single_token_word_without_bos_cannot_exclude_first_token(tiny_model_dirs):
    loaded = load_model(tiny_model_dirs["qwen2"])
    single = next(w for w in WORDS if len(loaded.tokenizer(w)["input_ids"]) == 1)
    with pytest.raises(TliError, match="no token left"):
        encode_words([single], loaded.tokenizer, EmbedConfig("mean-no-special", add_bos="never"))


def test_never_computes_lm_head(tiny_llama_dir):
    loaded = load_model(tiny_llama_dir)

    def forbid(*_):
        raise AssertionError("lm_head was called")

    loaded.model.lm_head.register_forward_hook(forbid)
    embed_all_layers(["mbwa", "dog"], loaded.model, loaded.tokenizer, progress=False)


def test_empty_string_is_a_clear_error(tiny_llama_dir):
    loaded = load_model(tiny_llama_dir)
    with pytest.raises(TliError, match="tokenizes to no token"):
        encode_words([""], loaded.tokenizer, EmbedConfig())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pooling": "max"}, "--pooling"),
        ({"template": "no slot"}, "{word}"),
        ({"batch_size": 0}, "--batch-size"),
        ({"add_bos": "maybe"}, "--add-bos"),
    ],
)
def test_bad_embed_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        EmbedConfig(**kwargs)


def _smollm2_like_tokenizer(tiny_model_dirs):
    """The Qwen2-style tiny tokenizer (no BOS added) with SmolLM2-Instruct's special-token roles: its
    ``bos_token`` is the chat-role token ``<|im_start|>``, and ``<|endoftext|>`` separates documents."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dirs["qwen2"])
    tok.bos_token = "<|im_start|>"
    tok.eos_token = "<|im_end|>" if "<|im_end|>" in tok.get_vocab() else tok.eos_token
    return tok


def test_auto_bos_is_the_document_separator_not_the_chat_role_token(tiny_model_dirs):
    from tli.embed import bos_record

    tok = _smollm2_like_tokenizer(tiny_model_dirs)
    separator = tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok.bos_token_id != separator
    encoded = encode_words(["mbwa"], tok, EmbedConfig(pooling="mean-no-special"))[0]
    assert encoded.input_ids[0] == separator and 0 not in encoded.pool_positions
    assert bos_record(tok, EmbedConfig()) == {
        "bos_token": "<|endoftext|>",
        "bos_token_id": separator,
        "bos_by": "tli",
    }
    chosen = encode_words(["mbwa"], tok, EmbedConfig(bos_token="<|im_start|>"))[0]
    assert chosen.input_ids[0] == tok.bos_token_id
    with pytest.raises(ConfigError, match="not in this tokenizer's vocabulary"):
        encode_words(["mbwa"], tok, EmbedConfig(bos_token="<nope>"))


def test_a_tokenizer_that_adds_its_own_bos_is_left_alone(tiny_llama_dir):
    from tli.embed import bos_record

    loaded = load_model(tiny_llama_dir)
    record = bos_record(loaded.tokenizer, EmbedConfig())
    assert record == {
        "bos_token": "<s>",
        "bos_token_id": loaded.tokenizer.bos_token_id,
        "bos_by": "tokenizer",
    }
    assert bos_record(loaded.tokenizer, EmbedConfig(add_bos="never"))["bos_by"] == "none"


def test_embedding_cache_computes_each_string_once(tiny_llama_dir, monkeypatch):
    import tli.embed as embed_module

    loaded = load_model(tiny_llama_dir)
    calls = []
    original = embed_module.embed_all_layers
    monkeypatch.setattr(
        embed_module, "embed_all_layers", lambda w, *a, **k: calls.append(list(w)) or original(w, *a, **k)
    )
    cache: dict = {}
    first = embed_module.embed_strings(
        ["mbwa", "dog"], loaded.model, loaded.tokenizer, EmbedConfig(), cache=cache
    )
    again = embed_module.embed_strings(
        ["dog", "paka", "mbwa"], loaded.model, loaded.tokenizer, EmbedConfig(), cache=cache
    )
    assert calls == [["mbwa", "dog"], ["paka"]]
    torch.testing.assert_close(again[:, 0], first[:, 1], atol=0, rtol=0)
    reference = original(["paka"], loaded.model, loaded.tokenizer, EmbedConfig(), progress=False)
    torch.testing.assert_close(again[:, 1], reference[:, 0], atol=1e-5, rtol=0)
