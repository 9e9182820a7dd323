"""Big-model inference with ``--device-map``: a model spread over devices and offloaded to disk gives the
single-device figures; a map that does not fit says how much is missing.

This machine has one device (the CPU), so "spread" means Accelerate's offloading: ``--max-memory cpu=…`` keeps
the embedding and the first blocks resident and sends the rest to ``disk`` (their weights sit on ``meta`` and
are read back block by block, exactly what a GPU map does with its CPU-offloaded tail).
"""

import json

import pytest
import torch

from tli.cli import main
from tli.errors import ConfigError
from tli.models import input_device, load_model

SPREAD = {"device_map": "auto", "max_memory": "cpu=1500KB"}
"""The tiny model is 2.65 MiB in float32: the embedding and block 0 stay resident, the rest goes to disk."""
SPREAD_ADAPTED = {"device_map": "auto", "max_memory": "cpu=2MB"}
"""Blocks 0-1 (a TLI adapter at layer 2 adapts them) resident, blocks 2-3, the norm and lm_head on disk."""
FIGURES = ("matched_mean", "mismatched_mean", "gap", "centered_gap", "p_at_1", "mrr", "csls_p_at_1")


def _spread(tiny_llama_dir, tmp_path, **kwargs):
    return load_model(tiny_llama_dir, **SPREAD, offload_folder=tmp_path / "offload", **kwargs)


def test_the_model_is_really_spread_over_cpu_and_disk(tiny_llama_dir, tmp_path):
    loaded = _spread(tiny_llama_dir, tmp_path)
    placement = loaded.model.hf_device_map
    assert placement["model.embed_tokens"] == "cpu" and placement["model.layers.0"] == "cpu"
    assert placement["model.layers.3"] == "disk" and placement["lm_head"] == "disk"
    assert loaded.model.model.layers[3].self_attn.q_proj.weight.is_meta  # not in memory until it runs
    assert input_device(loaded.model) == torch.device("cpu") and loaded.device == torch.device("cpu")
    assert loaded.extra["device_map"]["disk"] >= 4
    assert loaded.describe()["device"] == "cpu"


def test_scan_spread_over_cpu_and_disk_gives_the_single_device_figures(
    tiny_llama_dir, toy_lexicon_file, tmp_path
):
    from tli.scan import scan

    single = scan(str(tiny_llama_dir), str(toy_lexicon_file), progress=False)
    spread = scan(
        str(tiny_llama_dir),
        str(toy_lexicon_file),
        **SPREAD,
        offload_folder=str(tmp_path / "offload"),
        out=tmp_path / "run",
    )
    for a, b in zip(spread.layers, single.layers, strict=True):
        for key in FIGURES:
            assert a[key] == pytest.approx(b[key], abs=1e-4), (a["layer"], key)
    record = json.loads((tmp_path / "run" / "results.json").read_text())
    assert record["config"]["device_map"] == "auto" and record["config"]["max_memory"] == "cpu=1500KB"


def test_truncated_loading_with_a_device_map_keeps_the_hidden_states(tiny_llama_dir, tmp_path):
    from tli.embed import embed_all_layers

    words = ["mbwa", "asante sana", "dog"]
    full = load_model(tiny_llama_dir)
    part = load_model(
        tiny_llama_dir,
        up_to_layer=3,
        device_map="auto",
        max_memory="cpu=900KB",
        offload_folder=tmp_path / "o",
    )
    assert "disk" in part.model.model.hf_device_map.values() or "disk" in part.extra["device_map"]
    reference = embed_all_layers(words, full.model, full.tokenizer, progress=False)
    got = embed_all_layers(words, part.model, part.tokenizer, progress=False)
    torch.testing.assert_close(got, reference[:4], atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dirs, tmp_path_factory):
    from conftest import TOY_PAIRS

    from tli.train import train

    root = tmp_path_factory.mktemp("spread-adapter")
    lexicon = root / "lex.json"
    lexicon.write_text(json.dumps([{"source": s, "target": t} for s, t in TOY_PAIRS]))
    result = train(
        str(tiny_model_dirs["llama"]),
        str(lexicon),
        out=root / "train",
        epochs=1,
        batch_size=4,
        lr=5e-3,
        warmup_steps=1,
        validation_fraction=0,
        progress=False,
    )
    return result.adapter


def test_evaluate_spread_over_cpu_and_disk_gives_the_single_device_figures(adapter_dir, tmp_path):
    from tli.evaluate import evaluate

    options = {"n_boot": 200}
    single = evaluate(adapter_dir, **options)
    spread = evaluate(adapter_dir, **options, **SPREAD_ADAPTED, offload_folder=str(tmp_path / "offload"))
    keys = (
        "mean_pre",
        "mean_post",
        "centered_gap_pre",
        "centered_gap_post",
        "mrr_pre",
        "mrr_post",
        "p_at_1_post",
    )
    assert len(spread["evaluation"]) == len(single["evaluation"]) == 4  # 2 groups × (target, final layer)
    assert {(e["group"], e["layer_role"]) for e in single["evaluation"]} == {
        (group, role) for group in ("trained", "control") for role in ("target", "final")
    }
    for a, b in zip(spread["evaluation"], single["evaluation"], strict=True):
        assert (a["group"], a["layer"]) == (b["group"], b["layer"])
        for key in keys:
            assert a[key] == pytest.approx(b[key], abs=1e-4), (a["group"], a["layer"], key)


def test_probe_spread_over_cpu_and_disk_gives_the_single_device_answers(adapter_dir, tmp_path):
    from tli.adapter import load_adapted, load_adapted_for, read_adapter_meta
    from tli.config import ProbeConfig
    from tli.lexicon import resolve_lexicon
    from tli.probe import probe

    meta = read_adapter_meta(adapter_dir)
    lexicon = resolve_lexicon(meta["config"]["lexicon"])
    config = ProbeConfig(adapter=adapter_dir, n_pairs=4, max_new_tokens=6, use_chat_template="no")
    single = probe(load_adapted(adapter_dir, meta), lexicon, config)
    spread_config = ProbeConfig(
        adapter=adapter_dir,
        n_pairs=4,
        max_new_tokens=6,
        use_chat_template="no",
        **SPREAD_ADAPTED,
        offload_folder=str(tmp_path / "offload"),
    )
    spread = probe(load_adapted_for(adapter_dir, spread_config, meta), lexicon, spread_config)
    assert [(r.base, r.adapted) for r in spread] == [(r.base, r.adapted) for r in single]


def test_an_adapter_in_offloaded_blocks_is_refused_with_what_to_do(adapter_dir, tmp_path):
    from tli.adapter import load_adapted_for, read_adapter_meta
    from tli.config import EvaluateConfig

    config = EvaluateConfig(
        adapter=[adapter_dir], **SPREAD, offload_folder=str(tmp_path / "o")
    )  # block 1 on disk
    with pytest.raises(ConfigError, match=r"LoRA weights in block\(s\) 1, which --device-map offloaded"):
        load_adapted_for(adapter_dir, config, read_adapter_meta(adapter_dir))


def test_a_map_that_does_not_fit_says_how_much_is_missing(tiny_llama_dir):
    with pytest.raises(ConfigError) as error:
        load_model(tiny_llama_dir, **SPREAD)
    message = str(error.value)
    assert "does not fit" in message and "needs 2.65 MiB" in message and "hold 1.43 MiB" in message
    assert "1.89 MiB of weights" in message and "missing" in message and "--offload-folder" in message


def test_the_cli_says_it_in_one_line_and_exits_non_zero(tiny_llama_dir, toy_lexicon_file, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["scan", "--model", str(tiny_llama_dir), "--lexicon", str(toy_lexicon_file), "--out", str(out)]
    code = main([*args, "--device-map", "auto", "--max-memory", "cpu=1500KB"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "does not fit" in err[0] and "missing" in err[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"device": "cpu", "device_map": "auto"}, "choose one"),
        ({"max_memory": "cpu=1GB"}, "--max-memory needs --device-map"),
        ({"offload_folder": "x"}, "--offload-folder needs --device-map"),
        ({"device_map": "auto", "max_memory": "cpu:1GB"}, "is not DEVICE=SIZE"),
        ({"device_map": "everywhere"}, "--device-map 'everywhere' is not one of"),
    ],
)
def test_bad_placement_options_are_config_errors(options, message):
    from tli.config import ScanConfig

    with pytest.raises(ConfigError, match=message):
        ScanConfig(**options)


def test_a_gpu_this_machine_lacks_is_named(tiny_llama_dir):
    if torch.cuda.device_count() > 3:
        pytest.skip("this machine has GPU 3")
    with pytest.raises(ConfigError, match="names GPU 3, but this machine has"):
        load_model(tiny_llama_dir, device_map="auto", max_memory="3=10GiB,cpu=1GiB")


def test_a_json_device_map_is_used_as_written(tiny_llama_dir, tmp_path):
    from tli.embed import embed_all_layers

    mapping = {
        "model.embed_tokens": "cpu",
        "model.layers": "disk",
        "model.norm": "cpu",
        "model.rotary_emb": "cpu",
    }
    path = tmp_path / "map.json"
    path.write_text(json.dumps({**mapping, "lm_head": "cpu"}))
    with pytest.raises(ConfigError, match="does not fit"):  # disk without an offload folder
        load_model(tiny_llama_dir, device_map=str(path))
    loaded = load_model(tiny_llama_dir, device_map=str(path), offload_folder=tmp_path / "o")
    assert loaded.model.model.layers[0].mlp.up_proj.weight.is_meta
    full = load_model(tiny_llama_dir)
    words = ["mbwa", "dog"]
    torch.testing.assert_close(
        embed_all_layers(words, loaded.model, loaded.tokenizer, progress=False),
        embed_all_layers(words, full.model, full.tokenizer, progress=False),
        atol=1e-5,
        rtol=0,
    )


def test_a_device_map_under_a_multi_process_launcher_is_refused(tiny_llama_dir, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="shard with FSDP"):
        load_model(tiny_llama_dir, device_map="auto")


def test_training_refuses_a_map_that_offloads_blocks(tiny_llama_dir, tmp_path):
    with pytest.raises(ConfigError, match="training with --device-map needs every block in device memory"):
        load_model(tiny_llama_dir, purpose="train", **SPREAD, offload_folder=tmp_path / "o")
    loaded = load_model(tiny_llama_dir, purpose="train", up_to_layer=2, device_map="auto")  # fits: trainable
    assert loaded.num_layers == 2 and not any(p.is_meta for p in loaded.model.parameters())
