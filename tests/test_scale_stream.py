"""Streaming scan (``tli scan --stream``): one decoder block in memory at a time, the in-memory scan's
figures.

Random models of each supported family (real-model shapes: hidden 128, head_dim 64), saved as several
safetensors shards; Mistral and Qwen2 with sliding-window blocks short enough that the window cuts the
multiword entries, so the per-block mask choice is exercised.
"""

import json

import pytest
import torch
from conftest import _train_tokenizer

from tli.cli import main
from tli.errors import ConfigError
from tli.scan import scan
from tli.stream import FAMILIES, embed_streamed, open_streamed

FIGURES = ("matched_mean", "mismatched_mean", "gap", "centered_gap", "p_at_1", "p_at_5", "mrr", "csls_p_at_1")


def _family_config(family: str, vocab_size: int):
    from transformers import GemmaConfig, LlamaConfig, MistralConfig, Qwen2Config

    common = dict(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    if family == "llama":
        return LlamaConfig(**common)
    if family == "mistral":
        return MistralConfig(**common, sliding_window=3)
    if family == "qwen2":  # blocks 0-1 full attention, 2-3 a sliding window of 3 tokens
        return Qwen2Config(**common, use_sliding_window=True, sliding_window=3, max_window_layers=2)
    return GemmaConfig(**common, hidden_activation="gelu_pytorch_tanh")


def build_family_model(directory, family: str, *, shard_size: str = "200KB"):
    """A saved random model of ``family`` with the conftest BPE tokenizer, in several safetensors shards."""
    from transformers import AutoModelForCausalLM

    _train_tokenizer(directory, llama_style=True)
    vocab = len(json.loads((directory / "tokenizer.json").read_text())["model"]["vocab"])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_family_config(family, vocab + 8))
    model.save_pretrained(directory, max_shard_size=shard_size)
    return directory


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_dir(request, tmp_path_factory):
    return build_family_model(tmp_path_factory.mktemp(f"stream-{request.param}"), request.param)


def test_family_models_are_sharded_and_cut_by_their_windows(family_dir):
    assert len(list(family_dir.glob("model-*.safetensors"))) > 2
    config = json.loads((family_dir / "config.json").read_text())
    if config["model_type"] == "qwen2":
        assert config["layer_types"] == ["full_attention"] * 2 + ["sliding_attention"] * 2


def test_streamed_embeddings_equal_the_in_memory_forward_for_every_pooling(family_dir):
    from tli.embed import EmbedConfig, embed_all_layers
    from tli.models import load_model

    words = ["mbwa", "asante sana", "thank you very much", "dog", "the cat of the house"]
    loaded = load_model(family_dir)
    streamed = open_streamed(family_dir)
    assert streamed.num_layers == 4 and streamed.prefix == "model."
    for pooling in ("mean", "mean-no-special", "last"):
        config = EmbedConfig(pooling=pooling, batch_size=2)
        reference = embed_all_layers(words, loaded.model, loaded.tokenizer, config, progress=False)
        got = embed_streamed(words, streamed, config, progress=False)
        assert got.shape == reference.shape == (5, len(words), 128)
        torch.testing.assert_close(got, reference, atol=1e-5, rtol=0)


def test_streaming_scan_gives_the_in_memory_figures(family_dir, toy_lexicon_file, tmp_path):
    in_memory = scan(str(family_dir), str(toy_lexicon_file), pooling="mean-no-special", progress=False)
    streamed = scan(
        str(family_dir), str(toy_lexicon_file), pooling="mean-no-special", stream=True, out=tmp_path / "s"
    )
    assert len(streamed.layers) == len(in_memory.layers) == 5
    for a, b in zip(streamed.layers, in_memory.layers, strict=True):
        for key in FIGURES:
            assert a[key] == pytest.approx(b[key], abs=1e-4), (a["layer"], key)
    assert streamed.selected_layer == in_memory.selected_layer
    record = json.loads((tmp_path / "s" / "results.json").read_text())
    assert "streamed one block at a time" in record["model"]["weights"]
    assert record["config"]["stream"] is True


def test_the_sliding_window_mask_changes_the_figures_it_should(tmp_path):
    """Mistral's window of 3 tokens cuts a 6-token phrase: streaming must apply it as the model does (the test
    above passes only if it does); here, without the window, every block's output differs."""
    from transformers import AutoConfig

    from tli.embed import EmbedConfig

    windowed = build_family_model(tmp_path / "w", "mistral")
    words = ["thank you very much", "the cat of the house"]
    config = EmbedConfig(pooling="mean", batch_size=2)
    with_window = embed_streamed(words, open_streamed(windowed), config, progress=False)
    unwindowed = open_streamed(windowed)
    unwindowed.config = AutoConfig.from_pretrained(windowed, sliding_window=None)
    without = embed_streamed(words, unwindowed, config, progress=False)
    assert (with_window[1:] - without[1:]).abs().amax(dim=(1, 2)).min() > 1e-3  # every block's output
    torch.testing.assert_close(with_window[0], without[0])  # the embeddings see no attention


def test_peak_memory_holds_one_block_not_the_model(tmp_path, monkeypatch):
    """Counting the weights alive at once during a streaming pass: never more than one block (+ final
    norm)."""
    import tli.stream as stream_module
    from tli.embed import EmbedConfig

    directory = build_family_model(tmp_path / "m", "llama")
    streamed = open_streamed(directory)
    seen, peak = [], [0]
    real_materialise = stream_module.materialise

    def counting_materialise(module, prefix, model):
        out = real_materialise(module, prefix, model)
        seen.append(module)
        alive = sum(p.numel() for m in seen for p in m.parameters() if not p.is_meta)
        peak[0] = max(peak[0], alive)
        return out

    monkeypatch.setattr(stream_module, "materialise", counting_materialise)
    embed_streamed(["mbwa", "dog"], streamed, EmbedConfig(), progress=False)
    block = 128 * 128 + 2 * 128 * 64 + 128 * 128 + 3 * 128 * 256 + 2 * 128  # attention, MLP, two norms
    assert len(seen) == 1 + 1 + 4  # embedding, final norm, four blocks
    assert peak[0] == max(streamed.config.vocab_size * 128, block + 128)
    assert all(p.is_meta for m in seen for p in m.parameters())  # everything released at the end


def test_unknown_family_is_one_line_naming_the_supported_ones(tmp_path, toy_lexicon_file, capsys):
    from transformers import GPT2Config, GPT2LMHeadModel

    directory = tmp_path / "gpt2"
    _train_tokenizer(directory, llama_style=True)
    GPT2LMHeadModel(
        GPT2Config(n_embd=128, n_layer=2, n_head=2, vocab_size=400, bos_token_id=0, eos_token_id=0)
    ).save_pretrained(directory)
    with pytest.raises(ConfigError, match="knows llama, qwen2, mistral, gemma"):
        open_streamed(directory)
    capsys.readouterr()
    out = tmp_path / "out"
    code = main(
        ["scan", "--model", str(directory), "--stream", "--lexicon", str(toy_lexicon_file), "--out", str(out)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "'gpt2'" in err[0] and "llama, qwen2, mistral, gemma" in err[0]


def test_stream_refuses_quantization_and_device_maps(tiny_llama_dir, toy_lexicon_file):
    with pytest.raises(ConfigError, match="--stream reads the stored weights"):
        scan(str(tiny_llama_dir), str(toy_lexicon_file), stream=True, quantization="nf4")
    with pytest.raises(ConfigError, match="--stream and --device-map"):
        scan(str(tiny_llama_dir), str(toy_lexicon_file), stream=True, device_map="auto")


def test_a_checkpoint_without_safetensors_is_refused(tmp_path):
    from transformers import AutoModelForCausalLM

    from tli.errors import ModelLoadError

    directory = build_family_model(tmp_path / "m", "llama")
    model = AutoModelForCausalLM.from_pretrained(directory)
    for path in directory.glob("model*.safetensors*"):
        path.unlink()
    torch.save(model.state_dict(), directory / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="reads safetensors checkpoints"):
        open_streamed(directory)
