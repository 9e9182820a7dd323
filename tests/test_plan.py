"""tli.plan: parameter counts, memory formulas and devices from config.json alone.

Reference numbers come from transformers (``sum(p.numel())`` of models built from the same config), from
autograd (bytes of the tensors it saves, counted with ``saved_tensors_hooks``), from bitsandbytes (bytes
of NF4-quantised tensors), from the peak RSS of a real forward, or are worked out by hand in the test.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from tli.architecture import GIB, nf4_tensor_bytes, weight_bytes
from tli.errors import ConfigError
from tli.plan import (
    KNOWN_MODELS,
    STRATEGIES,
    block_activation_bytes,
    format_plan,
    head_activation_bytes,
    load_architecture,
    plan,
)

SMALL = dict(
    hidden_size=128, intermediate_size=352, num_hidden_layers=3, num_attention_heads=4, vocab_size=300
)


def _config(model_type: str, **overrides):
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **{**SMALL, **overrides})


def _saved_dir(tmp_path, config):
    config.save_pretrained(tmp_path)
    return tmp_path


CONFIGS = {
    "llama-gqa": ("llama", dict(num_key_value_heads=2)),
    "llama-tied-biases": ("llama", dict(tie_word_embeddings=True, attention_bias=True, mlp_bias=True)),
    "qwen2": ("qwen2", dict(num_key_value_heads=2, tie_word_embeddings=False)),
    "mistral-head-dim": ("mistral", dict(num_key_value_heads=1, head_dim=48)),
    "gemma": ("gemma", dict(num_key_value_heads=1, head_dim=64)),
    "gemma2": ("gemma2", dict(num_key_value_heads=2, head_dim=32)),
    "gemma3-text": ("gemma3_text", dict(num_key_value_heads=2, head_dim=32)),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_parameter_count_equals_transformers(name, tmp_path):
    from transformers import AutoModelForCausalLM

    model_type, overrides = CONFIGS[name]
    config = _config(model_type, **overrides)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    expected = sum(p.numel() for p in model.parameters())  # a tied lm_head is counted once
    assert load_architecture(_saved_dir(tmp_path, config)).parameters() == expected


def test_published_sizes():
    # By hand, Qwen2-72B: embeddings and lm_head 2·152064·8192 = 2,491,416,576; per block q 8192²+8192,
    # k and v 8192·1024+1024 each, o 8192², MLP 3·8192·29568, norms 2·8192 = 877,684,736; ×80 + 8192.
    assert load_architecture("qwen2-72b").parameters() == 72_706_203_648  # published ≈ 72.7 B
    # Llama-3-70B: 2·128256·8192 + 80·(2·8192² + 2·8192·1024 + 3·8192·28672 + 2·8192) + 8192.
    assert load_architecture("llama-3-70b").parameters() == 70_553_706_496  # published ≈ 70.6 B
    # Llama-3-8B (Lugha-Llama-8B-wura):
    # 2·128256·4096 + 32·(2·4096² + 2·4096·1024 + 3·4096·14336 + 8192) + 4096.
    assert load_architecture("lugha-llama-8b-wura").parameters() == 8_030_261_248  # published 8.03 B
    # SmolLM2-135M, tied: 49152·576 + 30·(2·576² + 2·576·192 + 3·576·1536 + 2·576) + 576.
    assert load_architecture("smollm2-135m").parameters() == 134_515_008


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weights_component_equals_numel_times_element_size(tiny_model_dirs, dtype):
    from transformers import AutoModelForCausalLM

    for directory in tiny_model_dirs.values():
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype)
        measured = sum(p.numel() * p.element_size() for p in model.parameters())
        arch = load_architecture(directory)
        assert weight_bytes(arch, dtype.itemsize) == measured
        dtype_name = str(dtype).removeprefix("torch.")
        inference = plan(directory, dtype=dtype_name, device="cpu").strategies["inference"]
        assert inference.components_gb["weights"] == round(measured / GIB, 3)


def _saved_tensor_bytes(model, ids, labels: bool) -> int:
    """Bytes of the distinct non-parameter tensors autograd saves during one forward."""
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids if labels else None, use_cache=False)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in seen.items() if ptr not in params)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_full_training_activations_equal_what_autograd_saves(family, dtype, tmp_path):
    from transformers import AutoModelForCausalLM

    config = _config(family, num_key_value_heads=2)
    model = AutoModelForCausalLM.from_config(config).to(dtype).train()
    batch, seq = 2, 24
    ids = torch.randint(0, config.vocab_size, (batch, seq))
    measured = _saved_tensor_bytes(model, ids, labels=True)
    arch = load_architecture(_saved_dir(tmp_path, config))
    e = dtype.itemsize
    n = batch * seq
    predicted = arch.num_layers * block_activation_bytes(arch, n, seq, e, trainable=True)
    predicted += head_activation_bytes(arch, n, seq, e, trainable=True)
    assert abs(measured - predicted) <= 4  # the scalar loss itself


@pytest.mark.parametrize("targets", [("q_proj", "v_proj"), ("k_proj", "o_proj", "down_proj")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lora_block_activations_equal_what_autograd_saves(targets, dtype, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    batch, seq = 2, 16
    ids = torch.randint(0, SMALL["vocab_size"], (batch, seq))
    saved = {}
    for layers in (2, 4):  # the first block's input needs no gradient: compare the blocks after it
        config = _config("llama", num_key_value_heads=2, num_hidden_layers=layers)
        model = AutoModelForCausalLM.from_config(config).to(dtype)
        lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=list(targets))
        saved[layers] = _saved_tensor_bytes(get_peft_model(model, lora).train(), ids, labels=False)
    arch = load_architecture(_saved_dir(tmp_path, config))
    predicted = block_activation_bytes(
        arch, batch * seq, seq, dtype.itemsize, trainable=False, lora_targets=targets, lora_r=8
    )
    assert (saved[4] - saved[2]) / 2 == predicted


@pytest.mark.parametrize("double_quant", [False, True])
def test_nf4_bytes_equal_bitsandbytes(double_quant):
    from bitsandbytes.functional import quantize_4bit

    for shape in [(256, 128), (352, 128), (128, 4096)]:
        weight = torch.randn(shape, dtype=torch.bfloat16)
        packed, state = quantize_4bit(
            weight, blocksize=64, quant_type="nf4", compress_statistics=double_quant
        )
        parts = [packed, state.absmax, state.code]
        if double_quant:
            parts += [state.offset, state.state2.absmax, state.state2.code]
        measured = sum(t.numel() * t.element_size() for t in parts)
        assert nf4_tensor_bytes(weight.numel(), double_quant) == measured
    # Per weight, by hand: 0.5 + 4/64 without, 0.5 + 1/64 + 4/(64·256) with double quantisation.
    big = 8192 * 8192
    assert nf4_tensor_bytes(big, False) / big == pytest.approx(0.5625, abs=1e-6)
    assert nf4_tensor_bytes(big, True) / big == pytest.approx(0.5 + 1 / 64 + 4 / (64 * 256), abs=2e-5)


def test_plan_dict_has_every_strategy_and_is_json():
    result = plan("llama-3-70b", steps=100)
    data = result.to_dict()
    assert {"model", "parameters", "strategies"} <= set(data)
    assert data["model"] == "llama-3-70b" and data["parameters"] == 70_553_706_496
    assert tuple(data["strategies"]) == STRATEGIES
    for entry in data["strategies"].values():
        assert {"memory_gb", "devices", "fits_one_gpu", "components_gb", "seconds"} <= set(entry)
    json.dumps(data)  # no tensors, paths or dataclasses left


def test_seventy_b_needs_several_gpus_for_full_but_one_for_qlora_and_tli():
    strategies = plan("llama-3-70b").strategies
    full = strategies["full"]
    # 16 B/param · 70.55 B params = 1051 GiB of weights, gradients and AdamW state alone.
    assert not full.fits_one_gpu and full.devices >= math.ceil(16 * 70.55e9 / GIB / 80)
    assert full.memory_gb <= 80 and full.split.startswith("FSDP")
    assert strategies["qlora"].fits_one_gpu and strategies["tli"].fits_one_gpu
    assert strategies["tli"].memory_gb < strategies["qlora"].memory_gb / 3
    assert strategies["inference"].devices == 2  # 131 GiB of bf16 weights


def test_more_memory_per_gpu_never_needs_more_gpus():
    small = plan("qwen2-72b", gpu_memory_gb=40).strategies
    large = plan("qwen2-72b", gpu_memory_gb=141).strategies
    for name in STRATEGIES:
        assert large[name].devices <= small[name].devices


def test_tli_loads_embeddings_lm_head_and_one_block_past_the_target(tmp_path):
    directory = _saved_dir(tmp_path, _config("llama", num_key_value_heads=2, num_hidden_layers=6))
    arch = load_architecture(directory)
    result = plan(directory, target_layer=2, tli_quantization="none", dtype="float32", device="cpu")
    # Embeddings, blocks 0..2 (block 2 so hidden_states[2] is not the final norm), final norm, lm_head.
    by_hand = (2 * 300 * 128 + 3 * arch.block_parameters() + 128) * 4
    assert result.strategies["tli"].components_gb["weights"] == round(by_hand / GIB, 3)


def test_time_is_flops_over_throughput():
    # Full fine-tuning with checkpointing: 8·N_c FLOPs per token, N_c = blocks + lm_head projection.
    n_c = 30 * 3_540_096 + 49152 * 576
    tokens = 10 * 8 * 512
    result = plan("smollm2-135m", steps=10, gpu_tflops=100, mfu=0.5).strategies["full"]
    assert result.devices == 1 and result.tokens == tokens
    assert result.seconds == pytest.approx(8 * n_c * tokens / (100e12 * 0.5))
    lora = plan("smollm2-135m", tokens=tokens, gradient_checkpointing=False).strategies["lora"]
    assert lora.flops == pytest.approx(4 * n_c * tokens)


def test_device_map_gives_the_per_device_share():
    one = plan("llama-3-70b").strategies["inference"]
    four = plan("llama-3-70b", device_map_devices=4).strategies["inference"]
    # 20 of 80 blocks + the embedding table (as large as lm_head) in bf16, + working set and overhead.
    assert four.memory_gb < one.memory_gb_one_device / 3.5
    assert four.split == "device_map over 4"


def test_known_names_and_aliases_resolve_offline():
    assert load_architecture("Qwen/Qwen2-72B").name == "qwen2-72b"
    assert load_architecture("default").hidden_size == 576
    assert set(KNOWN_MODELS) == {"qwen2-72b", "llama-3-70b", "lugha-llama-8b-wura", "smollm2-135m"}


def test_config_json_path_is_accepted(tmp_path):
    directory = _saved_dir(tmp_path, _config("qwen2", num_key_value_heads=2))
    assert load_architecture(directory / "config.json") == load_architecture(directory)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="llama-3-70b") as info:
        plan("gpt-5-secret")
    assert "\n" not in str(info.value)


def test_directory_without_config(tmp_path):
    with pytest.raises(ConfigError, match="no config.json"):
        plan(tmp_path)


def test_unsupported_family_names_the_supported_ones(tmp_path):
    gpt2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}
    (tmp_path / "config.json").write_text(json.dumps(gpt2))
    with pytest.raises(ConfigError, match="supported: llama, mistral, qwen2, gemma"):
        plan(tmp_path)


def test_target_layer_beyond_the_model():
    with pytest.raises(ConfigError, match="beyond the model.*0..30"):
        plan("smollm2-135m", target_layer=31)


def test_bad_options_are_reported_together():
    with pytest.raises(ConfigError) as info:
        plan("smollm2-135m", steps=10, tokens=100, batch_size=0, dtype="int3")
    message = str(info.value)
    assert "--batch-size" in message and "--dtype" in message and "not both" in message


def test_unknown_lora_target():
    with pytest.raises(ConfigError, match="choose from q_proj"):
        plan("smollm2-135m", lora_targets=("qkv",))


def test_format_plan_has_a_row_per_strategy():
    text = format_plan(plan("lugha-llama-8b-wura", steps=390))
    assert "8.03 B parameters" in text
    for name in STRATEGIES:
        assert f"| {name} |" in text


# Peak (VmHWM) minus baseline (VmRSS) of the child's own address space (ru_maxrss would carry pytest's
# peak across exec), after a tiny warm-up forward has mapped in the library code it runs.
_FORWARD_CHILD = """
import json, sys, torch
from transformers import LlamaConfig, LlamaForCausalLM

def status(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key + ":"))

def forward(fields, batch, seq):
    model = LlamaForCausalLM(LlamaConfig(**fields)).eval()
    with torch.inference_mode():
        model.model(input_ids=torch.randint(0, fields["vocab_size"], (batch, seq)), use_cache=False)

torch.manual_seed(0)
fields = json.loads(sys.argv[1])
forward({**fields, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1}, 2, 16)  # warm-up
base = status("VmRSS")
forward(fields, 16, 512)
print(status("VmHWM") - base)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_forward_estimate_within_15_percent_of_measured_rss(tmp_path):
    """A ~5 M-parameter Llama (fp32, 20 MB) and a forward of 16 × 512 tokens, in a fresh process; glibc
    returns freed blocks of 1 MiB or more to the OS, so RSS follows live tensors."""
    fields = dict(
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=4000,
        max_position_embeddings=1024,
    )
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}  # RSS follows live tensors
    out = subprocess.run(
        [sys.executable, "-c", _FORWARD_CHILD, json.dumps(fields)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=120,
    )
    measured = int(out.stdout.strip().splitlines()[-1])
    from transformers import LlamaConfig

    directory = _saved_dir(tmp_path, LlamaConfig(**fields))
    result = plan(directory, dtype="float32", device="cpu", scan_batch_size=16, word_tokens=512)
    assert result.parameters == 4_950_272
    estimate = result.strategies["inference"].memory_gb_one_device * GIB
    assert abs(estimate - measured) / measured < 0.15


def test_cli_plan_prints_a_table_and_json(capsys):
    import json

    from tli.cli import main

    assert main(["plan", "--model", "qwen2-72b"]) == 0
    assert "| qlora |" in capsys.readouterr().out
    assert main(["plan", "--model", "llama-3-70b", "--json", "--lora-targets", "q_proj,v_proj"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert set(record["strategies"]) >= {"full", "lora", "qlora", "tli", "scan-stream", "inference"}
    assert main(["plan", "--model", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "qwen2-72b" in err


@pytest.mark.slow
def test_a_gguf_file_plans_from_its_metadata():
    """The embedded SmolLM2 GGUF: 30 blocks of width 576, as its config says (tli compare --dry-run uses this)."""
    from tli.models import default_gguf_path
    from tli.plan import load_architecture

    arch = load_architecture(default_gguf_path())
    assert arch.num_layers == 30 and arch.hidden_size == 576
