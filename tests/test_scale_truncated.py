"""Layer-truncated loading for TLI: training at layer L reads the embeddings and blocks 0..L-1 only.

A random 48-block model saved in several safetensors shards: training at layer 2 peaks below 25 % of the
memory that loading the whole model takes, and gives the same adapter as training on the fully loaded model.

transformers 5 maps safetensors weights lazily: a loaded model's pages come into memory when a forward first
reads them. "Loading the whole model" is therefore measured as loading it and running every block once — what
a scan, a full-depth step, or moving it to a GPU does; the peak resident memory (``VmHWM``) is counted from a
baseline taken after every library is imported, in a fresh process.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import TOY_PAIRS, _train_tokenizer

from tli.errors import TliError
from tli.models import NotLoadedHead, load_model

DEEP = dict(
    hidden_size=256, intermediate_size=1024, num_attention_heads=4, num_key_value_heads=1, head_dim=64
)
"""48 narrow blocks of real-model shapes (head_dim 64): 3.7 MiB each in float32, 176 MiB in all."""
TRAIN = dict(
    epochs=1, batch_size=4, lr=5e-3, warmup_steps=1, lora_dropout=0.0, validation_fraction=0, progress=False
)


def build_deep_model(directory, blocks: int = 48, **shape):
    from transformers import LlamaConfig, LlamaForCausalLM

    _train_tokenizer(directory, llama_style=True)
    vocab = len(json.loads((directory / "tokenizer.json").read_text())["model"]["vocab"])
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab + 8,
        num_hidden_layers=blocks,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        **{**DEEP, **shape},
    )
    LlamaForCausalLM(config).save_pretrained(directory, max_shard_size="20MB")
    return directory


@pytest.fixture(scope="module")
def deep_dir(tmp_path_factory):
    return build_deep_model(tmp_path_factory.mktemp("deep48"))


@pytest.fixture
def lexicon_file(tmp_path):
    path = tmp_path / "lex.json"
    path.write_text(json.dumps([{"source": s, "target": t} for s, t in TOY_PAIRS]))
    return path


def test_the_deep_model_is_sharded(deep_dir):
    index = json.loads((deep_dir / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 8
    assert json.loads((deep_dir / "config.json").read_text())["num_hidden_layers"] == 48


def test_truncated_loading_holds_the_embeddings_and_the_blocks_before_the_layer(deep_dir):
    part = load_model(deep_dir, up_to_layer=2)
    assert part.num_layers == 2 and part.extra["full_num_layers"] == 48
    assert isinstance(part.model.lm_head, NotLoadedHead)
    parameters = sum(p.numel() for p in part.model.parameters())
    block = sum(p.numel() for p in part.model.model.layers[0].parameters())
    assert (
        parameters == part.model.model.embed_tokens.weight.numel() + 2 * block
    )  # no norm weight, no lm_head
    with pytest.raises(TliError, match="hidden states, not logits"):
        part.model(input_ids=torch.tensor([[1, 2]]))


def test_truncated_hidden_states_equal_the_full_models(deep_dir):
    from tli.embed import embed_all_layers

    words = ["mbwa", "asante sana", "dog"]
    full = load_model(deep_dir)
    reference = embed_all_layers(words, full.model, full.tokenizer, progress=False)
    for layer in (1, 2):
        part = load_model(deep_dir, up_to_layer=layer)
        got = embed_all_layers(words, part.model, part.tokenizer, progress=False)
        torch.testing.assert_close(got, reference[: layer + 1], atol=1e-5, rtol=0)
    assert load_model(deep_dir, up_to_layer=48).num_layers == 48  # the last index needs the whole model


def test_training_at_layer_2_gives_the_adapter_of_the_fully_loaded_model(deep_dir, lexicon_file, tmp_path):
    from safetensors.torch import load_file

    from tli.config import TrainConfig
    from tli.lexicon import split_for_study
    from tli.train import run_training, train

    truncated = train(str(deep_dir), str(lexicon_file), out=tmp_path / "truncated", target_layer=2, **TRAIN)
    study = split_for_study(str(lexicon_file))
    options = {k: v for k, v in TRAIN.items() if k != "progress"}
    config = TrainConfig(model=str(deep_dir), lexicon=str(lexicon_file), target_layer=2, **options)
    full = load_model(deep_dir, purpose="train")
    assert full.num_layers == 48
    reference = run_training(full, study.trained, config, tmp_path / "full", progress=False)
    assert truncated.epoch_losses == pytest.approx(reference.epoch_losses, abs=1e-6)
    a = load_file(str(tmp_path / "truncated" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "full" / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and len(a) == 2 * 2 * 2  # q/v × A/B × blocks 0-1
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)


PEAK = textwrap.dedent(
    """
    import importlib, json, sys
    from pathlib import Path

    import matplotlib.pyplot, peft, torch, transformers  # imported before the baseline: not model memory
    import tli.report, tli.train
    try:
        import torch.utils.tensorboard
    except ImportError:
        pass

    def kib(key):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])

    mode, model, lexicon, out = sys.argv[1:5]
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark restarts from here
    baseline = kib("VmRSS")
    if mode == "whole":  # load the whole model and run every block once (as any full-depth use does)
        from tli.embed import embed_all_layers
        from tli.models import load_model
        loaded = load_model(model, purpose="train")
        embed_all_layers(["mbwa"], loaded.model, loaded.tokenizer, progress=False)
    else:
        importlib.import_module("tli.train").train(
            model, lexicon, out=out, target_layer=2, epochs=1, batch_size=4, warmup_steps=1,
            validation_fraction=0, progress=False,
        )
    print(json.dumps({"peak_mib": (kib("VmHWM") - baseline) / 1024}))
    """
)


def _peak_mib(mode: str, model, lexicon, out) -> float:
    result = subprocess.run(
        [sys.executable, "-c", PEAK, mode, str(model), str(lexicon), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_mib"]


@pytest.mark.slow  # two fresh processes load 176 MiB of weights: ~20 s on 2 cores
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_training_at_layer_2_peaks_below_a_quarter_of_loading_the_whole_model(
    deep_dir, lexicon_file, tmp_path
):
    whole = _peak_mib("whole", deep_dir, lexicon_file, tmp_path / "unused")
    trained = _peak_mib("train", deep_dir, lexicon_file, tmp_path / "run")
    assert whole > 150  # the 176 MiB of weights, at least
    assert trained < 0.25 * whole, (trained, whole)
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
