"""TLI training on tiny models: learning, truncation, resume, PEFT format, QLoRA, bad input."""

import importlib
import json

import pytest
import torch
from conftest import steps_by_hand

from tli.embed import EmbedConfig, embed_all_layers, encode_words, forward_pooled, pad_batch, pooled_at_layer
from tli.errors import ConfigError, ModelLoadError, TliError
from tli.lexicon import read_lexicon
from tli.losses import LOSSES
from tli.models import load_model
from tli.train import train

train_module = importlib.import_module("tli.train")  # the package (tli.train is the function)
api_module = importlib.import_module("tli.train.api")  # where train() looks up load_model
loop_module = importlib.import_module("tli.train.loop")  # where the loop looks up validate and loss_warnings
FAST = {"batch_size": 4, "warmup_steps": 2, "lr": 5e-3, "progress": False}


def _matched_at(loaded, lexicon, layer):
    """Mean cosine of the pairs at one layer (every-layer embedding, then one layer picked)."""
    config = EmbedConfig(pooling="mean-no-special")
    src = embed_all_layers(lexicon.sources, loaded.model, loaded.tokenizer, config, progress=False)[layer]
    tgt = embed_all_layers(lexicon.targets, loaded.model, loaded.tokenizer, config, progress=False)[layer]
    return float((src * tgt).sum(-1).mean())


def test_training_lowers_loss_and_raises_target_layer_similarity(tiny_dir, toy_lexicon_file, tmp_path):
    lexicon = read_lexicon(toy_lexicon_file)
    trained, _ = lexicon.trained_and_control()
    base = load_model(tiny_dir)
    before = _matched_at(base, trained, 2)
    result = train(str(tiny_dir), str(toy_lexicon_file), out=tmp_path / "run", epochs=4, **FAST)
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    adapted = load_model(tiny_dir, adapter=result.adapter)
    assert _matched_at(adapted, trained, 2) > before + 0.05
    record = json.loads((tmp_path / "run" / "results.json").read_text())
    steps = steps_by_hand(result.n_train_pairs, batch_size=4, epochs=4)
    assert record["timing"]["steps"] == result.timing["steps"] == steps
    assert {"load_seconds", "train_seconds", "steps"} <= set(record["timing"])
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert sum("loss" in json.loads(line) for line in lines) == result.timing["steps"]
    assert (tmp_path / "run" / "loss.png").is_file()


def test_adapter_is_peft_format_on_blocks_before_target_only(tiny_llama_dir, toy_lexicon_file, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = train(
        str(tiny_llama_dir), str(toy_lexicon_file), out=tmp_path / "r", epochs=1, target_layer=2, **FAST
    )
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)  # full depth, plain transformers
    peft_model = PeftModel.from_pretrained(base, result.adapter)
    lora_names = {n for n, _ in peft_model.named_modules() if n.endswith("lora_A")}
    blocks = {int(n.split(".layers.")[1].split(".")[0]) for n in lora_names}
    projections = {n.split(".")[-2] for n in lora_names}
    assert blocks == {0, 1} and projections == {"q_proj", "v_proj"}
    config = json.loads((tmp_path / "r" / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 16 and config["lora_alpha"] == 32 and config["lora_dropout"] == 0.05


def test_truncated_forward_equals_full_forward_at_target_layer(tiny_llama_dir):
    full = load_model(tiny_llama_dir)
    part = load_model(tiny_llama_dir, up_to_layer=2)
    assert part.num_layers == 2  # blocks 0 and 1 only: hidden_states[2] needs no more (issue 9)
    items = encode_words(["mbwa", "asante sana", "dog"], full.tokenizer, EmbedConfig("mean-no-special"))
    ids, attention, weights = pad_batch(items, full.tokenizer.pad_token_id, torch.device("cpu"))
    with torch.no_grad():
        reference = forward_pooled(full.model, ids, attention, weights)[2]
        early = pooled_at_layer(full.model, ids, attention, weights, 2)
        loaded_part = pooled_at_layer(part.model, ids, attention, weights, 2)
    torch.testing.assert_close(early, reference, atol=1e-5, rtol=0)
    torch.testing.assert_close(loaded_part, reference, atol=1e-5, rtol=0)


def test_training_step_never_runs_later_blocks_or_lm_head(
    tiny_llama_dir, toy_lexicon_file, tmp_path, monkeypatch
):
    calls = []
    original = api_module.load_model

    def spy_load(*args, **kwargs):
        loaded = original(*args, **kwargs)
        layers = loaded.model.model.layers
        for i, block in enumerate(layers):
            block.register_forward_hook(lambda *_, i=i: calls.append(i))
        loaded.model.lm_head.register_forward_hook(lambda *_: calls.append("lm_head"))
        return loaded

    monkeypatch.setattr(api_module, "load_model", spy_load)
    train(str(tiny_llama_dir), str(toy_lexicon_file), out=tmp_path / "r", epochs=1, target_layer=2, **FAST)
    assert calls and set(calls) == {0, 1}


def _adapter_tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def test_resume_after_interruption_gives_the_same_adapter(
    tiny_llama_dir, toy_lexicon_file, tmp_path, monkeypatch
):
    options = {"epochs": 2, "lora_dropout": 0.1, **FAST}
    uninterrupted = train(str(tiny_llama_dir), str(toy_lexicon_file), out=tmp_path / "a", **options)

    real_loss = LOSSES["triplet"]
    calls = {"n": 0}

    class Interrupt(real_loss):
        def forward(self, *args):
            calls["n"] += 1
            if calls["n"] == 8:  # in the middle of epoch 2 (5 batches per epoch)
                raise KeyboardInterrupt
            return super().forward(*args)

    monkeypatch.setitem(LOSSES, "triplet", Interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(str(tiny_llama_dir), str(toy_lexicon_file), out=tmp_path / "b", **options)
    assert not (tmp_path / "b" / "adapter").exists() and (tmp_path / "b" / "checkpoints" / "epoch-1").is_dir()
    monkeypatch.setitem(LOSSES, "triplet", real_loss)
    resumed = train(str(tiny_llama_dir), str(toy_lexicon_file), out=tmp_path / "b", resume=True, **options)

    a = _adapter_tensors(tmp_path / "a" / "adapter")
    b = _adapter_tensors(tmp_path / "b" / "adapter")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
    assert resumed.timing["steps"] == uninterrupted.timing["steps"]
    logged = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == list(range(1, uninterrupted.timing["steps"] + 1))


def test_non_finite_loss_stops_with_the_step(tiny_llama_dir, toy_lexicon_file, tmp_path, monkeypatch):
    class NaNLoss(torch.nn.Module):
        def __init__(self, *_):
            super().__init__()

        def forward(self, anchors, positives, mask):
            return (anchors * float("nan")).sum()

    monkeypatch.setitem(LOSSES, "triplet", NaNLoss)
    with pytest.raises(TliError, match=r"loss is nan at epoch 1, step 1"):
        train(str(tiny_llama_dir), str(toy_lexicon_file), out=tmp_path / "r", epochs=1, **FAST)


def test_qlora_nf4_trains_on_cpu(tiny_llama_dir, toy_lexicon_file, tmp_path):
    result = train(
        str(tiny_llama_dir), str(toy_lexicon_file), out=tmp_path / "q", epochs=2, quantization="nf4", **FAST
    )
    assert all(torch.isfinite(torch.tensor(result.epoch_losses)))
    assert (tmp_path / "q" / "adapter" / "adapter_model.safetensors").is_file()
    record = json.loads((tmp_path / "q" / "results.json").read_text())
    assert record["model"]["quantization"] == "nf4"


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"target_layer": 9}, ConfigError, "beyond the model"),
        ({"target_layer": 0}, ConfigError, "--target-layer must be >= 1"),
        ({"batch_size": 1}, ConfigError, ">= 2 pairs per batch"),
        ({"loss": "mse"}, ConfigError, "--loss"),
        ({"target_modules": ["nope_proj"]}, ConfigError, "--target-modules"),
    ],
)
def test_bad_training_options(tiny_llama_dir, toy_lexicon_file, tmp_path, options, error, match):
    with pytest.raises(error, match=match):
        train(str(tiny_llama_dir), str(toy_lexicon_file), out=tmp_path / "r", epochs=1, **{**FAST, **options})
    assert not (tmp_path / "r" / "adapter").exists()


def test_lexicon_too_small_for_negatives(tiny_llama_dir, tmp_path):
    lex = tmp_path / "two.csv"
    lex.write_text("source,target,group\nmbwa,dog,trained\npaka,cat,control\n")
    with pytest.raises(TliError, match="needs >= 2 pairs"):
        train(str(tiny_llama_dir), str(lex), out=tmp_path / "r", epochs=1, **FAST)


def test_existing_run_needs_resume(tiny_llama_dir, toy_lexicon_file, tmp_path):
    train(str(tiny_llama_dir), str(toy_lexicon_file), out=tmp_path / "r", epochs=1, **FAST)
    with pytest.raises(ConfigError, match="--resume"):
        train(str(tiny_llama_dir), str(toy_lexicon_file), out=tmp_path / "r", epochs=1, **FAST)


def test_evaluate_rejects_adapter_of_another_base(tiny_model_dirs, toy_lexicon_file, tmp_path):
    from tli.evaluate import evaluate

    result = train(str(tiny_model_dirs["llama"]), str(toy_lexicon_file), out=tmp_path / "r", epochs=1, **FAST)
    with pytest.raises(ModelLoadError, match="trained on base model") as info:
        evaluate(result.adapter, model=str(tiny_model_dirs["qwen2"]), out=tmp_path / "e")
    assert str(tiny_model_dirs["llama"]) in str(info.value) and str(tiny_model_dirs["qwen2"]) in str(
        info.value
    )
    assert not (tmp_path / "e").exists()


def test_validation_pairs_are_held_out_leak_free_and_scored_each_epoch(
    tiny_llama_dir, toy_lexicon_file, tmp_path
):
    from tli.adapter import read_recorded_split
    from tli.lexicon import word_tokens

    result = train(
        str(tiny_llama_dir),
        str(toy_lexicon_file),
        out=tmp_path / "v",
        epochs=3,
        validation_fraction=0.25,
        **FAST,
    )
    assert [v["epoch"] for v in result.validation] == [1, 2, 3]
    assert all(0 < v["mrr"] <= 1 and v["loss"] >= 0 for v in result.validation)
    assert result.best_epoch == min(result.validation, key=lambda v: (v["loss"], -v["epoch"]))["epoch"]
    split = read_recorded_split(tmp_path / "v" / "adapter")
    assert split.validation and result.n_validation_pairs == len(split.validation)
    trained_words = {w for s, t in split.trained for w in word_tokens(s) + word_tokens(t)}
    assert not {w for s, t in split.validation for w in word_tokens(s) + word_tokens(t)} & trained_words
    logged = [json.loads(x) for x in (tmp_path / "v" / "metrics.jsonl").read_text().splitlines()]
    assert [r["validation_mrr"] for r in logged if "validation_mrr" in r] == [
        v["mrr"] for v in result.validation
    ]


def test_early_stopping_keeps_the_best_epoch(tiny_llama_dir, toy_lexicon_file, tmp_path, monkeypatch):
    scripted = iter([0.50, 0.40, 0.45, 0.47, 0.30])  # best at epoch 2; patience 2 stops after epoch 4

    def fake_validate(*_args, **_kwargs):
        return {"loss": next(scripted), "mrr": 0.5}

    monkeypatch.setattr(loop_module, "validate", fake_validate)
    result = train(
        str(tiny_llama_dir),
        str(toy_lexicon_file),
        out=tmp_path / "e",
        epochs=5,
        validation_fraction=0.25,
        early_stopping_patience=2,
        **FAST,
    )
    assert result.best_epoch == 2 and result.stopped_early and len(result.epoch_losses) == 4
    best = _adapter_tensors(tmp_path / "e" / "checkpoints" / "epoch-2")
    final = _adapter_tensors(tmp_path / "e" / "adapter")
    for key in best:
        torch.testing.assert_close(final[key], best[key], atol=0, rtol=0)


def test_several_seeds_train_one_adapter_each(tiny_llama_dir, toy_lexicon_file, tmp_path):
    results = train(
        str(tiny_llama_dir), str(toy_lexicon_file), out=tmp_path / "s", epochs=1, seeds=[0, 1], **FAST
    )
    assert [r.seed for r in results] == [0, 1]
    a, b = (_adapter_tensors(tmp_path / "s" / f"seed-{k}" / "adapter") for k in (0, 1))
    assert any(not torch.equal(a[key], b[key]) for key in a)  # different initialisation and order
    summary = json.loads((tmp_path / "s" / "results.json").read_text())
    assert summary["seeds"] == [0, 1] and len(summary["adapters"]) == 2


def test_adapter_names_a_portable_base_and_records_its_split(tiny_llama_dir, toy_lexicon_file, tmp_path):
    result = train(str(tiny_llama_dir), str(toy_lexicon_file), out=tmp_path / "p", epochs=1, **FAST)
    config = json.loads((tmp_path / "p" / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(
        tiny_llama_dir.resolve()
    )  # the user's model, no cache path
    meta = json.loads((tmp_path / "p" / "adapter" / "tli_adapter.json").read_text())
    assert (meta["embed"]["bos_by"], meta["embed"]["bos_token"]) == ("tokenizer", "<s>")  # Llama adds its <s>
    split = json.loads((tmp_path / "p" / "adapter" / "tli_split.json").read_text())
    assert {"trained", "validation", "control"} <= set(split)
    audit = split["record"]["audit"]  # tli's seeded split: no control pair shares a word with a trained one
    assert (audit["n_leaking"], audit["n_duplicates"], audit["leak_free"]) == (0, 0, True)
    assert audit["leaks"] == {"source": 0, "target": 0, "word": 0}
    assert audit["n_control"] == len(split["control"])
    assert audit["n_trained"] == len(split["trained"]) + len(split["validation"] or [])
    assert result.n_train_pairs == len(split["trained"])


def test_merged_export_equals_the_adapted_model(tiny_llama_dir, toy_lexicon_file, tmp_path):
    from transformers import AutoModelForCausalLM

    from tli.adapter import merge_adapter

    result = train(str(tiny_llama_dir), str(toy_lexicon_file), out=tmp_path / "m", epochs=1, **FAST)
    merged_dir = merge_adapter(result.adapter, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    adapted = load_model(tiny_llama_dir, adapter=result.adapter)
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapted.model(ids).logits, atol=1e-4, rtol=0)
    with pytest.raises(ConfigError, match="not empty"):
        merge_adapter(result.adapter, tmp_path / "merged")


@pytest.mark.parametrize(
    "loss, losses, expected",
    [
        ("triplet", [0.9, 0.401], "settled at 0.4010, the margin"),
        ("triplet", [0.9, 0.30], None),
        ("infonce", [2.0, 1.38], "chance level ln(4) = 1.3863"),
        ("infonce", [2.0, 0.9], None),
    ],
)
def test_loss_warnings_name_collapse_and_chance(loss, losses, expected):
    from tli.config import TrainConfig

    warnings = train_module.loss_warnings(TrainConfig(loss=loss, batch_size=4), losses)
    assert (expected in warnings[0]) if expected else warnings == []


def test_progress_is_logged_when_output_is_not_a_terminal(monkeypatch, caplog):
    import logging

    from tli import progress as progress_module

    monkeypatch.setattr(progress_module, "LOG_EVERY_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="tli.progress"):
        with progress_module.Progress(4, "TLI training", enabled=None) as bar:  # pytest's stderr is no TTY
            for _ in range(4):
                bar.update(1, loss=0.5)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("TLI training: 1/4 steps (25%), loss 0.5") and "ETA" in lines[0]
    assert lines[-1].startswith("TLI training: 4/4 steps (100%)")


def _count(text: str, needle: str) -> int:
    return text.count(needle)


def test_cli_train_warns_once_about_warmup_and_the_loss(
    tiny_llama_dir, toy_lexicon_file, tmp_path, capsys, monkeypatch
):
    from tli.cli import main

    collapse = "the triplet loss settled at 0.4001, the margin (0.4)"
    monkeypatch.setattr(loop_module, "loss_warnings", lambda config, losses: [collapse])
    args = ["train", "--model", str(tiny_llama_dir), "--lexicon", str(toy_lexicon_file), "--epochs", "1"]
    assert main([*args, "--batch-size", "4", "--validation-fraction", "0", "--out", str(tmp_path / "t")]) == 0
    err = capsys.readouterr().err
    assert _count(err, collapse) == 1
    assert _count(err, "--warmup-steps 50 is not shorter than the run's") == 1
    record = json.loads((tmp_path / "t" / "results.json").read_text())
    assert record["warmup_steps"] == 0 and any("--warmup-steps 50" in w for w in record["warnings"])
    # The learning rate is no longer capped at steps/50 of --lr: the first step runs near the full rate.
    rates = [
        json.loads(line)["lr"] for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()[:1]
    ]
    steps = record["timing"]["steps"]
    assert rates[0] == pytest.approx(2e-4 * (steps - 1) / steps)


def test_overwrite_restarts_a_finished_training_run(tiny_llama_dir, toy_lexicon_file, tmp_path):
    out = tmp_path / "r"
    train(str(tiny_llama_dir), str(toy_lexicon_file), out=out, epochs=2, **FAST)
    with pytest.raises(ConfigError, match="finished training run: pass --resume .*--overwrite"):
        train(str(tiny_llama_dir), str(toy_lexicon_file), out=out, epochs=1, **FAST)
    result = train(str(tiny_llama_dir), str(toy_lexicon_file), out=out, epochs=1, overwrite=True, **FAST)
    assert len(result.epoch_losses) == 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch-1"]


def test_train_from_scan_takes_its_layer_and_recipe_and_warns_where_they_differ(
    tiny_llama_dir, toy_lexicon_file, tmp_path, capsys
):
    from tli.cli import main
    from tli.scan import scan

    result = scan(
        str(tiny_llama_dir), str(toy_lexicon_file), pooling="mean", select_by="gap", out=tmp_path / "s"
    )
    base = ["train", "--model", str(tiny_llama_dir), "--lexicon", str(toy_lexicon_file), "--epochs", "1"]
    base += ["--batch-size", "4", "--warmup-steps", "0", "--from-scan", str(tmp_path / "s")]
    assert main([*base, "--out", str(tmp_path / "t")]) == 0
    meta = json.loads((tmp_path / "t" / "adapter" / "tli_adapter.json").read_text())
    assert meta["target_layer"] == result.selected_layer and meta["embed"]["pooling"] == "mean"
    assert "differs" not in capsys.readouterr().err
    # An explicit recipe that differs from the scan's wins, with one warning, kept in results.json.
    assert main([*base, "--pooling", "last", "--out", str(tmp_path / "t2")]) == 0
    err = capsys.readouterr().err
    assert _count(err, "--pooling 'last' differs from the scan it cites") == 1
    record = json.loads((tmp_path / "t2" / "results.json").read_text())
    assert any("--pooling 'last' differs" in w for w in record["warnings"])
    meta = json.loads((tmp_path / "t2" / "adapter" / "tli_adapter.json").read_text())
    assert meta["embed"]["pooling"] == "last" and meta["config"]["from_scan"] == str(tmp_path / "s")
    # A directory that is no scan is one clear error.
    assert main([*base[:-1], str(tmp_path / "t"), "--out", str(tmp_path / "t3")]) == 2
    assert "no selected layer" in capsys.readouterr().err
