"""Model loading: local dirs, quantization, pad tokens, fingerprints, clear errors."""

import os
import subprocess
import sys

import pytest
import torch

from tli.embed import EmbedConfig, embed_all_layers
from tli.errors import ConfigError, ModelLoadError
from tli.models import backbone, ensure_pad_token, load_model


def test_local_dir_loads_with_provenance(tiny_llama_dir):
    loaded = load_model(tiny_llama_dir)
    assert loaded.source == "local" and loaded.num_layers == 4
    assert loaded.dtype == torch.float32 and loaded.device.type == "cpu"
    assert loaded.fingerprint["kind"] == "content" and len(loaded.fingerprint["sha256"]) == 64
    assert load_model(tiny_llama_dir).fingerprint == loaded.fingerprint
    described = loaded.describe()
    assert described["architecture"] == "LlamaForCausalLM" and described["hidden_size"] == 128


def test_pad_token_added_without_growing_vocabulary(tiny_model_dirs):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=str(tiny_model_dirs["qwen2"] / "tokenizer.json"))
    tok.eos_token = "<|endoftext|>"
    assert tok.pad_token is None
    size = len(tok)
    ensure_pad_token(tok)
    assert tok.pad_token == tok.eos_token and len(tok) == size


def test_loading_first_blocks_only_gives_the_same_hidden_state(tiny_llama_dir):
    """``num_hidden_layers=L+1`` skips later blocks; ``hidden_states[L]`` is unchanged."""
    full = load_model(tiny_llama_dir)
    part = load_model(tiny_llama_dir, num_hidden_layers=3)
    assert part.num_layers == 3
    words = ["mbwa", "asante sana"]
    a = embed_all_layers(words, full.model, full.tokenizer, progress=False)
    b = embed_all_layers(words, part.model, part.tokenizer, progress=False)
    torch.testing.assert_close(a[:3], b[:3], atol=1e-5, rtol=0)


@pytest.mark.parametrize("quantization", ["nf4", "int8"])
def test_bitsandbytes_quantization_on_cpu(tiny_llama_dir, quantization):
    loaded = load_model(tiny_llama_dir, quantization=quantization)
    assert loaded.quantization == quantization
    linear = type(backbone(loaded.model).layers[0].self_attn.q_proj).__name__
    assert linear == {"nf4": "Linear4bit", "int8": "Linear8bitLt"}[quantization]
    emb = embed_all_layers(["mbwa", "dog"], loaded.model, loaded.tokenizer, EmbedConfig(), progress=False)
    assert torch.isfinite(emb).all()
    # Quantised embeddings stay close to full precision (4-bit + bf16 on a 128-wide random model: > 0.8).
    full = load_model(tiny_llama_dir)
    ref = embed_all_layers(["mbwa", "dog"], full.model, full.tokenizer, EmbedConfig(), progress=False)
    assert torch.nn.functional.cosine_similarity(emb[-1], ref[-1], dim=-1).min() > 0.8


def test_bad_options_are_config_errors(tiny_llama_dir):
    with pytest.raises(ConfigError, match="--dtype"):
        load_model(tiny_llama_dir, dtype="float8")
    with pytest.raises(ConfigError, match="--quantization"):
        load_model(tiny_llama_dir, quantization="fp3")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            load_model(tiny_llama_dir, device="cuda")


def test_bad_paths_are_model_load_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "missing.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF but not really")
    with pytest.raises(ModelLoadError, match="cannot read GGUF file"):
        load_model(junk)
    text = tmp_path / "weights.txt"
    text.write_text("x")
    with pytest.raises(ModelLoadError, match="not a .gguf file"):
        load_model(text)


def test_adapter_dir_must_be_peft(tiny_llama_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="adapter_config.json"):
        load_model(tiny_llama_dir, adapter=tmp_path)


def test_hub_id_offline_is_one_clear_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TLI_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tli",
            "scan",
            "--model",
            "someorg/somemodel",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "someorg/somemodel" in lines[0] and "offline" in lines[0]
    assert not (tmp_path / "o").exists()


def _nf4_modules(loaded):
    from bitsandbytes.nn import Linear4bit

    return [m for m in loaded.model.modules() if isinstance(m, Linear4bit)]


@pytest.mark.parametrize("kernel", ["portable", "packed"])
def test_nf4_embeddings_on_both_cpu_kernels(tiny_llama_dir, kernel):
    """tli uses bitsandbytes' portable kernel (it has a backward); the packed AVX512-BF16 kernel, where the CPU
    has it, must give the same embeddings within NF4's precision."""
    from bitsandbytes.functional import has_avx512bf16

    if kernel == "packed" and not has_avx512bf16():
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes has only the portable kernel here")
    loaded = load_model(tiny_llama_dir, quantization="nf4")
    modules = _nf4_modules(loaded)
    assert modules and all(
        not getattr(m, "support_avx512bf16_for_cpu", False) for m in modules
    )  # tli's choice
    if kernel == "packed":
        for module in modules:
            module.support_avx512bf16_for_cpu = True
    words = ["mbwa", "dog", "asante sana"]
    emb = embed_all_layers(words, loaded.model, loaded.tokenizer, EmbedConfig(), progress=False)
    if kernel == "packed":
        assert all(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in modules)
    full = load_model(tiny_llama_dir)
    ref = embed_all_layers(words, full.model, full.tokenizer, EmbedConfig(), progress=False)
    assert torch.isfinite(emb).all()
    assert torch.nn.functional.cosine_similarity(emb[-1], ref[-1], dim=-1).min() > 0.9


def test_nf4_training_gradients_reach_early_lora_after_inference(tiny_llama_dir):
    """After an inference pass (tli run's scan), a backward through NF4 layers must still reach LoRA in block 0."""
    from tli.config import TrainConfig
    from tli.embed import encode_words, pad_batch, pooled_at_layer
    from tli.train import add_lora

    loaded = load_model(tiny_llama_dir, quantization="nf4")
    embed_all_layers(
        ["mbwa", "dog"], loaded.model, loaded.tokenizer, EmbedConfig(), progress=False
    )  # inference
    model = add_lora(loaded.model, TrainConfig(quantization="nf4", target_layer=3), 4)
    model.train()
    items = encode_words(["mbwa", "dog"], loaded.tokenizer, EmbedConfig(pooling="mean-no-special"))
    ids, attention, weights = pad_batch(items, loaded.tokenizer.pad_token_id, torch.device("cpu"))
    pooled_at_layer(model, ids, attention, weights, 3).pow(2).sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if "lora_B" in n and ".layers.0." in n}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())


def test_nf4_keeps_non_quantised_parameters_in_float32(tiny_llama_dir):
    loaded = load_model(tiny_llama_dir, quantization="nf4")
    assert backbone(loaded.model).norm.weight.dtype == torch.float32
    assert backbone(loaded.model).embed_tokens.weight.dtype == torch.float32
    assert all(m.compute_dtype == torch.float32 for m in _nf4_modules(loaded))  # embeddings in fp32
    trained = load_model(tiny_llama_dir, quantization="nf4", purpose="train")
    assert all(
        m.compute_dtype == torch.bfloat16 for m in _nf4_modules(trained)
    )  # the published QLoRA compute


def test_auto_dtype_is_float32_for_embeddings_everywhere():
    from tli.models import resolve_dtype

    assert resolve_dtype("auto", torch.device("cuda"), "embed") == torch.float32
    assert resolve_dtype("auto", torch.device("cuda"), "train") == torch.bfloat16
    assert resolve_dtype("auto", torch.device("cpu"), "train") == torch.float32


def test_loading_the_first_blocks_prints_no_load_report(tiny_llama_dir, capfd):
    import logging

    logging.getLogger("transformers.modeling_utils").setLevel(logging.WARNING)
    load_model(tiny_llama_dir, up_to_layer=1)
    assert "LOAD REPORT" not in capfd.readouterr().err


def test_no_bitsandbytes_kernel_warning_without_quantisation(tiny_llama_dir):
    code = (
        "import tli; from tli.models import load_model; import sys; "
        f"load_model({str(tiny_llama_dir)!r}); import peft"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "gemm_4bit_forward" not in result.stderr
