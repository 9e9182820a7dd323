"""`tli run` end to end on a tiny model, and `tli train` / `tli probe` through the CLI."""

import json
import re

import numpy as np
import pytest
from conftest import EVALUATION_KEYS, assert_verdicts_follow_from_the_numbers, steps_by_hand

from tli.cli import main


def test_cli_run_writes_the_whole_study(tiny_llama_dir, toy_lexicon_file, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--model",
            str(tiny_llama_dir),
            "--lexicon",
            str(toy_lexicon_file),
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--warmup-steps",
            "2",
            "--lr",
            "5e-3",
            "--n-boot",
            "500",
            "--seeds",
            "0",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "target layer" in printed and "TLI raises" in printed
    record = json.loads((out / "results.json").read_text())
    # the scan's default criterion: the best centred gap among the selectable (early) layers
    low, high = record["scan"]["selectable_layers"]
    early = [row for row in record["scan"]["layers"] if low <= row["layer"] <= high]
    assert (low, high) == (1, 2) and record["criterion"] == "centered_gap"
    assert (
        record["target_layer"]
        == record["selected_layer"]
        == max(early, key=lambda r: r["centered_gap"])["layer"]
    )
    assert record["final_layer"] == 4
    assert all(EVALUATION_KEYS <= set(e) for e in record["evaluation"])
    assert {(e["group"], e["layer_role"]) for e in record["evaluation"]} >= {
        ("trained", "target"),
        ("trained", "final"),
    }
    assert record["statistics"]["correction"] == "holm" and record["statistics"]["alpha"] == 0.05
    assert_verdicts_follow_from_the_numbers(record["claims"], correction="holm", alpha=0.05)
    assert set(record["timing"]) >= {"load_seconds", "scan_seconds", "train_seconds", "evaluate_seconds"}
    for path in (
        "report.md",
        "scan/results.json",
        "scan/layers.png",
        "train/adapter/adapter_config.json",
        "train/loss.png",
        "train/metrics.jsonl",
        "evaluate/pairs.csv",
        "evaluate/before_after.png",
    ):
        assert (out / path).is_file(), path
    for part in ("scan", "train", "evaluate"):  # every result file carries its provenance
        sub = json.loads((out / part / "results.json").read_text())
        assert len(sub["model"]["fingerprint"]["sha256"]) == 64 and sub["lexicon"]["sha256"]
        assert sub["versions"]["torch"] and "seed" in sub
    report = (out / "report.md").read_text()
    assert (
        "## 1. Scan" in report and "## 3. Evaluation" in report and "](evaluate/before_after.png)" in report
    )


def test_cli_train_then_probe(tiny_llama_dir, toy_lexicon_file, tmp_path, capsys):
    code = main(
        [
            "train",
            "--model",
            str(tiny_llama_dir),
            "--lexicon",
            str(toy_lexicon_file),
            "--target-layer",
            "1",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--out",
            str(tmp_path / "t"),
        ]
    )
    assert code == 0 and "adapter:" in capsys.readouterr().out
    code = main(
        [
            "probe",
            "--adapter",
            str(tmp_path / "t" / "adapter"),
            "--lexicon",
            str(toy_lexicon_file),
            "--n-pairs",
            "3",
            "--max-new-tokens",
            "2",
            "--out",
            str(tmp_path / "p"),
        ]
    )
    assert code == 0
    record = json.loads((tmp_path / "p" / "results.json").read_text())
    rows = record["probe"]
    assert record["n"] == len(rows) == 3 and len({r["source"] for r in rows}) == 3
    for key in ("base_correct", "adapted_correct", "base_exact", "adapted_exact"):
        assert record[key] == sum(r[key] for r in rows), key
    # probe.md states this run's figures: the decoding, one table row per probed word, the summary counts.
    text = (tmp_path / "p" / "probe.md").read_text()
    assert "- decoding: greedy, max 2 new tokens, seed 0\n" in text and "\n- 3 words; " in text
    mark = {True: "✓", False: "✗"}

    def cell(text):  # Markdown-escaped; an empty answer is shown as such
        return text.replace("\\", "\\\\").replace("|", "\\|") if text else "_(empty)_"

    table = [line for line in text.splitlines() if line.startswith("| ")][1:]  # after the header row
    assert table == [
        "| "
        + " | ".join(
            [cell(r["source"]), cell(r["target"]), cell(r["base"]), cell(r["adapted"])]
            + [mark[r[k]] for k in ("base_correct", "adapted_correct", "base_exact", "adapted_exact")]
        )
        + " |"
        for r in rows
    ]
    summary = (
        f"base: {record['base_correct']}/3 correct ({record['base_exact']} exact), "
        f"adapted: {record['adapted_correct']}/3 correct ({record['adapted_exact']} exact)"
    )
    assert text.rstrip().endswith(summary)


def test_cli_train_bad_input(tiny_llama_dir, toy_lexicon_file, tmp_path, capsys):
    base = ["train", "--model", str(tiny_llama_dir), "--lexicon", str(toy_lexicon_file)]
    assert main([*base, "--target-layer", "7", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "beyond the model" in err
    assert main([*base, "--lora-layers", "a,b", "--out", str(tmp_path / "y")]) == 2
    assert "--lora-layers" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_evaluate_after_run_reuses_the_run_lexicon(tiny_llama_dir, toy_lexicon_file, tmp_path):
    from tli.evaluate import evaluate
    from tli.pipeline import run

    results = run(
        str(tiny_llama_dir),
        str(toy_lexicon_file),
        out=tmp_path / "r",
        epochs=1,
        batch_size=4,
        n_boot=200,
        seeds=[0],
        progress=False,
    )
    again = evaluate(tmp_path / "r" / "train" / "adapter", n_boot=200)  # no --model, no --lexicon
    in_run = json.loads((tmp_path / "r" / "evaluate" / "results.json").read_text())
    assert again["lexicon"]["sha256"] == in_run["lexicon"]["sha256"]  # the split recorded with the adapter
    assert (
        again["split"]["origin"] == "adapter"
        and again["split"]["n_control"] == results["lexicon"]["n_control"]
    )
    assert again["model"]["fingerprint"] == results["model"]["fingerprint"]
    first = {(e["group"], e["layer"]): e["mean_post"] for e in results["evaluation"]}
    assert {(e["group"], e["layer"]): e["mean_post"] for e in again["evaluation"]} == pytest.approx(first)


def test_unwritable_out_is_found_before_training(tiny_llama_dir, toy_lexicon_file, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_llama_dir),
                "--lexicon",
                str(toy_lexicon_file),
                "--out",
                str(blocker / "run"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "is not a directory" in err and str(blocker) in err


def test_cli_run_with_a_fixed_target_layer(tiny_llama_dir, toy_lexicon_file, tmp_path, capsys):
    out = tmp_path / "fixed"
    args = ["run", "--model", str(tiny_llama_dir), "--lexicon", str(toy_lexicon_file), "--target-layer", "3"]
    assert (
        main(
            [
                *args,
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--n-boot",
                "200",
                "--seeds",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "given by --target-layer" in capsys.readouterr().out
    record = json.loads((out / "results.json").read_text())
    assert record["target_layer"] == 3 and record["target_layer_given"]
    assert {e["layer"] for e in record["evaluation"] if e["layer_role"] == "target"} == {3}


def test_run_with_several_seeds_reports_mean_sd_and_claims_across_seeds(
    tiny_llama_dir, toy_lexicon_file, tmp_path
):
    from tli.pipeline import run

    out = tmp_path / "seeds"
    results = run(
        str(tiny_llama_dir),
        str(toy_lexicon_file),
        out=out,
        epochs=1,
        batch_size=4,
        lr=5e-3,
        warmup_steps=1,
        n_boot=200,
        seeds=[0, 1],
        progress=False,
    )
    assert results["seeds"] == [0, 1] and len(results["per_seed"]) == 2 and len(results["train"]) == 2
    for seed in (0, 1):
        assert (out / "train" / f"seed-{seed}" / "adapter" / "adapter_config.json").is_file()
        assert (out / "evaluate" / f"seed-{seed}" / "pairs.csv").is_file()
    assert (out / "evaluate" / "results.json").is_file()
    # each seed's verdicts follow from its own Holm-adjusted p-values, the across-seed ones from the combined p
    for seed in results["per_seed"]:
        assert_verdicts_follow_from_the_numbers(seed["claims"], correction="holm", alpha=0.05)
    assert_verdicts_follow_from_the_numbers(results["claims"], correction="holm", alpha=0.05)
    for claim in results["claims"]:
        per_seed = [next(c for c in s["claims"] if c["claim"] == claim["claim"]) for s in results["per_seed"]]
        assert claim["n_seeds"] == 2 and claim["verdicts"] == [c["verdict"] for c in per_seed]
        effects = [c["effect"] for c in per_seed]
        assert claim["effects_per_seed"] == pytest.approx(effects)
        assert min(effects) - 1e-12 <= claim["effect"] <= max(effects) + 1e-12  # random-effects weighted mean
        assert claim["holds_across_seeds"] == (per_seed[0]["verdict"] == per_seed[1]["verdict"])
        if {c["verdict"] for c in per_seed} == {"supported", "contradicted"}:
            # two seeds significant in opposite directions: the t_1 interval spans both, so it covers 0
            assert claim["ci95_low"] < 0 < claim["ci95_high"] and claim["verdict"] == "inconclusive"
            assert claim["note"].startswith("seeds disagree")
    entry = results["evaluation"][0]
    assert "mean_post_sd" in entry and entry["mean_pre_sd"] == pytest.approx(
        0.0, abs=1e-6
    )  # base is the same
    report = (out / "report.md").read_text()
    assert "Per seed" in report and "across-seed 95 % CI" in report and "mean ± sd over" in report
    # BLI over seeds: each figure the mean of the seeds', its sd, each interval the envelope of theirs.
    seeds_bli = [
        json.loads((out / "evaluate" / f"seed-{s}" / "results.json").read_text())["bli"] for s in (0, 1)
    ]
    assert results["bli"] and len(results["bli"]) == len(seeds_bli[0])
    for row, *versions in zip(results["bli"], *seeds_bli, strict=True):
        assert row["n_seeds"] == 2 and row["layer"] == versions[0]["layer"]
        for system, figures in row["systems"].items():
            values = [v["systems"][system]["mrr"] for v in versions]
            assert figures["mrr"] == pytest.approx(np.mean(values))
            assert figures["mrr_sd"] == pytest.approx(np.std(values, ddof=1))
            assert figures["mrr_ci_low"] == min(v["systems"][system]["mrr_ci_low"] for v in versions)
            assert figures["p_at_1_ci_high"] == max(v["systems"][system]["p_at_1_ci_high"] for v in versions)
        assert row["systems"]["base"]["mrr_sd"] == pytest.approx(
            0.0, abs=1e-9
        )  # the base model is one network
    assert "## Retrieval of the unseen control words (BLI)" in report.replace("### ", "## ")
    assert "P@1, mean ± sd over 2 seeds" in report and "Procrustes map" in report
    # Every plot of the run is linked, per seed, and every link resolves.
    plots = report.split("## 4. Plots", 1)[1]
    links = re.findall(r"\]\(([^)]+\.png)\)", plots)
    for name in ("before_after.png", "layers_before_after.png", "projection_pca.png", "projection_tsne.png"):
        assert {f"evaluate/seed-{s}/{name}" for s in (0, 1)} <= set(links), name
    assert {"scan/layers.png", "train/seed-0/loss.png", "train/seed-1/loss.png"} <= set(links)
    assert all((out / link).is_file() for link in links)
    summary = (out / "evaluate" / "report.md").read_text()
    assert all((out / "evaluate" / link).is_file() for link in re.findall(r"\]\(([^)]+\.png)\)", summary))
    assert "seed-1/projection_tsne.png" in summary


def test_run_reuses_the_scan_embeddings_of_the_base_model(
    tiny_llama_dir, toy_lexicon_file, tmp_path, monkeypatch
):
    """The trained pairs are embedded once by the base model (scan), not again in the evaluation."""
    import tli.embed as embed_module
    from tli.pipeline import run

    batches = []
    original = embed_module.embed_all_layers

    def recording(words, *args, **kwargs):
        batches.append(set(words))
        return original(words, *args, **kwargs)

    monkeypatch.setattr(embed_module, "embed_all_layers", recording)
    run(
        str(tiny_llama_dir),
        str(toy_lexicon_file),
        out=tmp_path / "r",
        epochs=1,
        batch_size=4,
        n_boot=200,
        seeds=[0],
        progress=False,
    )
    scanned = batches[0] | batches[1]  # the scan: trained sources, trained targets
    adapted = batches[-2] | batches[-1]  # the adapted side of the evaluation: every string
    base = set().union(*batches[2:-2])  # the base side of the evaluation: only what the scan did not embed
    assert base and not base & scanned
    assert adapted == base | (adapted & scanned)


def test_nf4_run_and_standalone_evaluate_give_the_same_numbers(tiny_llama_dir, toy_lexicon_file, tmp_path):
    from tli.evaluate import evaluate
    from tli.pipeline import run

    results = run(
        str(tiny_llama_dir),
        str(toy_lexicon_file),
        out=tmp_path / "r",
        quantization="nf4",
        epochs=1,
        batch_size=4,
        n_boot=200,
        seeds=[0],
        target_layer=2,
        progress=False,
    )
    again = evaluate(tmp_path / "r" / "train" / "adapter", n_boot=200)
    for before, after in zip(results["evaluation"], again["evaluation"], strict=True):
        for key in ("mean_pre", "mean_post", "centered_gap_pre", "centered_gap_post", "mrr_pre", "mrr_post"):
            assert after[key] == pytest.approx(before[key], abs=1e-6), key


def test_run_can_log_to_mlflow(tiny_llama_dir, toy_lexicon_file, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from tli.pipeline import run

    results = run(
        str(tiny_llama_dir),
        str(toy_lexicon_file),
        out=tmp_path / "r",
        epochs=1,
        batch_size=4,
        n_boot=200,
        seeds=[0],
        track="mlflow",
        progress=False,
    )
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'r' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name.startswith("tli-run-")]
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.data.params["epochs"] == "1"
    assert logged.data.metrics["target_layer"] == results["target_layer"]
    assert any(k.endswith(".effect") for k in logged.data.metrics)
    assert {a.path for a in client.list_artifacts(logged.info.run_id)} >= {"report.md", "results.json"}


def test_cli_export_embeddings_writes_npy_words_and_word2vec(
    tiny_llama_dir, toy_lexicon_file, tmp_path, capsys
):
    import numpy as np

    out = tmp_path / "emb"
    args = [
        "export-embeddings",
        "--model",
        str(tiny_llama_dir),
        "--lexicon",
        str(toy_lexicon_file),
        "--layer",
        "2,4",
    ]
    assert main([*args, "--out", str(out)]) == 0
    vectors = np.load(out / "sw.layer2.npy")
    words = (out / "sw.layer2.words.txt").read_text().splitlines()
    assert vectors.shape == (len(words), 128) and "asante sana" in words
    header, *rows = (out / "en.layer4.vec").read_text().splitlines()
    assert header.split() == [str(len(rows)), "128"] and rows[0].split()[0] == "dog"
    assert main([*args, "--layer", "9", "--out", str(tmp_path / "bad")]) == 2
    assert "beyond the model" in capsys.readouterr().err


def test_cli_merge_writes_a_plain_model(tiny_llama_dir, toy_lexicon_file, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    args = [
        "train",
        "--model",
        str(tiny_llama_dir),
        "--lexicon",
        str(toy_lexicon_file),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path / "t"),
    ]
    assert main(args) == 0
    assert main(["merge", "--adapter", str(tmp_path / "t" / "adapter"), "--out", str(tmp_path / "m")]) == 0
    assert "merged model" in capsys.readouterr().out
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "m").config.num_hidden_layers == 4


def test_an_unfinished_run_offers_resume_and_overwrite(tiny_llama_dir, toy_lexicon_file, tmp_path):
    from tli.errors import ConfigError
    from tli.pipeline import run

    out = tmp_path / "r"
    options = {"epochs": 1, "batch_size": 4, "n_boot": 200, "seeds": [0], "progress": False}
    run(str(tiny_llama_dir), str(toy_lexicon_file), out=out, **options)
    (out / "complete").unlink()  # as if killed after training
    (out / "results.json").unlink()
    with pytest.raises(
        ConfigError, match="unfinished run: pass --resume to continue it, --overwrite to start"
    ):
        run(str(tiny_llama_dir), str(toy_lexicon_file), out=out, **options)
    stale = out / "train" / "checkpoints" / "epoch-1" / "stale-marker"
    stale.write_text("from the first run")
    results = run(str(tiny_llama_dir), str(toy_lexicon_file), out=out, overwrite=True, **options)
    assert not stale.exists() and (out / "complete").is_file()  # training started again from scratch
    trained = results["train"][0]
    assert trained["timing"]["steps"] == steps_by_hand(trained["n_train_pairs"], batch_size=4, epochs=1)
