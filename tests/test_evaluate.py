"""Evaluation: figures against independent computations and scipy; claims and files."""

import csv
import json

import numpy as np
import pytest
import torch
from conftest import EVALUATION_KEYS, assert_verdicts_follow_from_the_numbers
from scipy import stats as sps

from tli.cli import main
from tli.embed import EmbedConfig, embed_all_layers
from tli.evaluate import evaluate
from tli.lexicon import read_lexicon
from tli.models import load_model
from tli.train import train


@pytest.fixture(scope="module")
def trained_adapter(tiny_model_dirs, tmp_path_factory):
    """A 3-epoch adapter on the tiny Llama, target layer 2, toy lexicon with an explicit split."""
    from conftest import TOY_PAIRS

    root = tmp_path_factory.mktemp("evaluate")
    lexicon = root / "toy.csv"
    control = {"mbwa", "paka", "samaki", "kiti"}
    rows = [f"{s},{t},{'control' if s in control else 'trained'}" for s, t in TOY_PAIRS]
    lexicon.write_text("source,target,group\n" + "\n".join(rows) + "\n")
    result = train(
        str(tiny_model_dirs["llama"]),
        str(lexicon),
        out=root / "train",
        epochs=3,
        batch_size=4,
        warmup_steps=2,
        lr=5e-3,
        progress=False,
    )
    return result.adapter, lexicon, tiny_model_dirs["llama"]


def test_evaluation_entries_match_independent_computation(trained_adapter, tmp_path):
    adapter, lexicon_file, model_dir = trained_adapter
    results = evaluate(adapter, out=tmp_path / "ev", n_boot=2000)
    entries = results["evaluation"]
    assert {(e["group"], e["layer_role"]) for e in entries} == {
        ("trained", "target"),
        ("trained", "final"),
        ("control", "target"),
        ("control", "final"),
    }
    assert all(EVALUATION_KEYS <= set(e) for e in entries)
    # Independent: embed control pairs with the plain base model and with the adapter, at layers 2 and 4.
    lexicon = read_lexicon(lexicon_file).subset("control")
    config = EmbedConfig(pooling="mean-no-special")
    for state, field in (("base", "mean_pre"), ("adapted", "mean_post")):
        loaded = load_model(model_dir, adapter=adapter if state == "adapted" else None)
        src = embed_all_layers(lexicon.sources, loaded.model, loaded.tokenizer, config, progress=False)
        tgt = embed_all_layers(lexicon.targets, loaded.model, loaded.tokenizer, config, progress=False)
        for layer in (2, 4):
            entry = next(e for e in entries if e["group"] == "control" and e["layer"] == layer)
            expected = float((src[layer] * tgt[layer]).sum(-1).mean())
            assert entry[field] == pytest.approx(expected, abs=1e-5)


def test_statistics_agree_with_scipy_on_the_per_pair_csv(trained_adapter, tmp_path):
    adapter, _, _ = trained_adapter
    results = evaluate(adapter, out=tmp_path / "ev", n_boot=2000)
    rows = list(csv.DictReader((tmp_path / "ev" / "pairs.csv").open()))
    for entry in results["evaluation"]:
        mine = [r for r in rows if r["group"] == entry["group"] and int(r["layer"]) == entry["layer"]]
        pre = np.array([float(r["sim_pre"]) for r in mine])
        post = np.array([float(r["sim_post"]) for r in mine])
        assert entry["n"] == len(mine)
        t = sps.ttest_rel(post, pre)
        assert entry["t"] == pytest.approx(t.statistic) and entry["p_ttest"] == pytest.approx(t.pvalue)
        assert entry["p_wilcoxon"] == pytest.approx(sps.wilcoxon(post, pre).pvalue)
        diff = post - pre
        assert entry["cohens_d"] == pytest.approx(diff.mean() / diff.std(ddof=1))
        assert entry["ci95_low"] <= entry["change"] <= entry["ci95_high"]


def test_claims_and_files(trained_adapter, tmp_path):
    adapter, _, _ = trained_adapter
    results = evaluate(adapter, out=tmp_path / "ev", n_boot=2000)
    claims = results["claims"]
    # Per layer (target, final): 2 groups × 4 change claims + 2 metrics × (difference, equivalence).
    assert len(claims) == 2 * (2 * 4 + 2 * 2) == results["statistics"]["n_claims"]
    assert {c["kind"] for c in claims} == {"change", "difference", "equivalence"}
    # every p_adjusted is Holm's over the 24 claims (by hand) and every verdict follows from it and the CI
    assert results["statistics"]["correction"] == "holm" and results["statistics"]["alpha"] == 0.05
    assert_verdicts_follow_from_the_numbers(claims, correction="holm", alpha=0.05)
    trained_target = next(
        c
        for c in results["claims"]
        if c["group"] == "trained" and c["layer_role"] == "target" and c["metric"] == "similarity"
    )
    assert trained_target["verdict"] == "supported"
    files = {p.name for p in (tmp_path / "ev").iterdir()}
    assert {
        "results.json",
        "pairs.csv",
        "report.md",
        "before_after.png",
        "layers_before_after.png",
        "projection_pca.png",
        "projection_tsne.png",
        "layers_before_after.csv",
    } <= files
    record = json.loads((tmp_path / "ev" / "results.json").read_text())
    from tli.io import _finite

    assert record["claims"] == json.loads(json.dumps(_finite(results["claims"])))  # NaN is written as null
    assert "supported" in (tmp_path / "ev" / "report.md").read_text()


def test_zero_adapter_changes_nothing(tiny_llama_dir, toy_lexicon_file, tmp_path):
    """An adapter whose LoRA B is zero is the base model: every change is exactly 0, verdict inconclusive."""
    result = train(
        str(tiny_llama_dir),
        str(toy_lexicon_file),
        out=tmp_path / "t",
        epochs=1,
        batch_size=4,
        lr=1e-12,
        warmup_steps=0,
        progress=False,
    )
    from safetensors.torch import load_file, save_file

    path = tmp_path / "t" / "adapter" / "adapter_model.safetensors"
    tensors = {k: (torch.zeros_like(v) if "lora_B" in k else v) for k, v in load_file(str(path)).items()}
    save_file(tensors, str(path))
    results = evaluate(result.adapter, n_boot=500)
    for entry in results["evaluation"]:
        assert entry["change"] == pytest.approx(0.0, abs=1e-6)
    assert {c["verdict"] for c in results["claims"]} == {"inconclusive"}


def test_cli_evaluate_and_stats(trained_adapter, tmp_path, capsys):
    adapter, _, _ = trained_adapter
    assert main(["evaluate", "--adapter", adapter, "--n-boot", "500", "--out", str(tmp_path / "e")]) == 0
    assert "TLI raises similarity" in capsys.readouterr().out
    pairs = str(tmp_path / "e" / "pairs.csv")
    assert main(["stats", pairs, "--group", "group,layer_role", "--json", "--n-boot", "500"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert {"trained/target", "control/final", "all/target", "all/final"} <= set(stats)
    pooled = stats["all/target"]["n"]
    assert pooled == stats["trained/target"]["n"] + stats["control/target"]["n"]  # no pair counted twice
    assert main(["stats", pairs, "--pre", "nope"]) == 2
    assert "available columns" in capsys.readouterr().err


def test_cli_evaluate_missing_adapter(tmp_path, capsys):
    assert main(["evaluate", "--adapter", str(tmp_path)]) == 2
    assert "adapter_config.json" in capsys.readouterr().err


def test_a_group_too_small_is_reported_not_silently_dropped(tiny_llama_dir, tmp_path):
    lexicon = tmp_path / "lex.csv"
    lexicon.write_text(
        "source,target,group\nmbwa,dog,trained\npaka,cat,trained\nmaji,water,trained\nmoto,fire,control\n"
    )
    result = train(
        str(tiny_llama_dir), str(lexicon), out=tmp_path / "t", epochs=1, batch_size=3, progress=False
    )
    results = evaluate(result.adapter, out=tmp_path / "e", n_boot=200)
    assert results["skipped_groups"] == [{"group": "control", "n": 1}]
    assert {e["group"] for e in results["evaluation"]} == {"trained"}
    assert "the control group has 1 pair(s)" in (tmp_path / "e" / "report.md").read_text()


def test_evaluate_with_a_lexicon_file_uses_the_adapter_split_not_a_new_one(
    trained_adapter, tmp_path, toy_lexicon_file
):
    """Giving the lexicon file again (without its groups) must not re-split it and call trained pairs control."""
    from tli.adapter import read_recorded_split

    adapter, _, _ = trained_adapter
    recorded = read_recorded_split(adapter)
    results = evaluate(adapter, lexicon=str(toy_lexicon_file), n_boot=200)  # the toy file has no group column
    rows = {(r["source"], r["target"]): r["group"] for r in results["per_pair"]}
    assert {k for k, g in rows.items() if g == "trained"} == set(recorded.trained)
    control = {k for k, g in rows.items() if g == "control"}
    assert control and not control & (set(recorded.trained) | set(recorded.validation))
    assert results["split"]["origin"] == "adapter"


def test_between_group_claims_equal_the_statistics_on_pairs_csv(trained_adapter, tmp_path):
    from tli.stats import between_groups, equivalence_tost

    adapter, _, _ = trained_adapter
    results = evaluate(adapter, out=tmp_path / "ev", n_boot=1000)
    rows = list(csv.DictReader((tmp_path / "ev" / "pairs.csv").open()))
    for layer in (results["target_layer"], results["final_layer"]):
        mine = [r for r in rows if int(r["layer"]) == layer]
        change = {
            g: np.array([float(r["sim_post"]) - float(r["sim_pre"]) for r in mine if r["group"] == g])
            for g in ("trained", "control")
        }
        clusters = {g: [r["source"] for r in mine if r["group"] == g] for g in ("trained", "control")}
        expected = between_groups(
            change["trained"],
            change["control"],
            clusters_a=clusters["trained"],
            clusters_b=clusters["control"],
            n_perm=1000,
            n_boot=1000,
            rng=0,
        )
        claim = next(
            c
            for c in results["claims"]
            if c["kind"] == "difference" and c["metric"] == "similarity" and c["layer"] == layer
        )
        assert claim["effect"] == pytest.approx(expected.difference) and claim["p"] == pytest.approx(
            expected.p
        )
        margin = 0.2 * abs(change["trained"].mean())
        tost = equivalence_tost(
            change["trained"],
            change["control"],
            margin,
            clusters_a=clusters["trained"],
            clusters_b=clusters["control"],
        )
        eq = next(
            c
            for c in results["claims"]
            if c["kind"] == "equivalence" and c["metric"] == "similarity" and c["layer"] == layer
        )
        assert eq["p"] == pytest.approx(tost.p) and eq["margin"] == pytest.approx(margin)


def test_target_layer_equal_to_final_is_reported_once(tiny_llama_dir, toy_lexicon_file, tmp_path):
    result = train(
        str(tiny_llama_dir),
        str(toy_lexicon_file),
        out=tmp_path / "t",
        target_layer=4,
        epochs=1,
        batch_size=4,
        progress=False,
    )
    results = evaluate(result.adapter, out=tmp_path / "e", n_boot=200)
    assert results["layer_roles"] == ["target = final"]
    texts = [c["claim"] for c in results["claims"]]
    assert len(texts) == len(set(texts)) == 2 * 4 + 2 * 2  # each claim once, corrected once
    assert "each claim is made once" in (tmp_path / "e" / "report.md").read_text()


def test_evaluate_several_seeds_aggregates(tiny_llama_dir, toy_lexicon_file, tmp_path):
    train(
        str(tiny_llama_dir),
        str(toy_lexicon_file),
        out=tmp_path / "t",
        epochs=1,
        batch_size=4,
        seeds=[0, 1],
        progress=False,
    )
    results = evaluate(tmp_path / "t", out=tmp_path / "e", n_boot=200)  # the multi-seed training directory
    assert results["seeds"] == [0, 1] and len(results["per_seed"]) == 2
    assert (tmp_path / "e" / "seed-0" / "pairs.csv").is_file() and (
        tmp_path / "e" / "seed-1" / "report.md"
    ).is_file()
    assert all(c["n_seeds"] == 2 for c in results["claims"])
    assert "over seeds" in (tmp_path / "e" / "report.md").read_text()


def test_bli_figures_for_unseen_control_words_with_the_procrustes_baseline(trained_adapter, tmp_path):
    from tli.bli import chance_precision_at_k

    adapter, _, _ = trained_adapter
    words = tmp_path / "vocab.txt"
    words.write_text("# extra candidates\nhouse\nriver\nbread\nwindow\n")
    results = evaluate(adapter, out=tmp_path / "ev", n_boot=200, vocabulary=str(words))
    rows = results["bli"]
    assert [r["layer_role"] for r in rows] == ["target", "final"]
    first = rows[0]
    n_targets = len({p["target"] for p in results["per_pair"]})
    assert first["n_candidates"] == n_targets + 3  # "house" is already a lexicon target
    for key in ("base", "base_csls", "procrustes", "adapted", "adapted_csls"):
        report = first["systems"][key]
        assert report["n_queries"] == first["n_queries"] and report["n_candidates"] == first["n_candidates"]
        assert report["p_at_1_ci_low"] <= report["p_at_1"] <= report["p_at_1_ci_high"]
    control_sources = {p["source"] for p in results["per_pair"] if p["group"] == "control"}
    assert first["n_queries"] == len(control_sources)
    golds = [
        sum(1 for p in results["per_pair"] if p["source"] == s and p["layer"] == first["layer"])
        for s in control_sources
    ]
    assert first["systems"]["base"]["p_at_1_chance"] == pytest.approx(
        chance_precision_at_k(golds, first["n_candidates"], 1)
    )
    assert first["systems"]["procrustes"]["mapping"] == "procrustes"
    assert "Procrustes" in (tmp_path / "ev" / "report.md").read_text()


def test_small_groups_are_named_once_and_every_verdict_states_its_n(trained_adapter, tmp_path, caplog):
    import logging

    adapter, _, _ = trained_adapter
    with caplog.at_level(logging.INFO):
        results = evaluate(adapter, out=tmp_path / "ev", n_boot=500, progress=None)  # redirected output
    log = [r.getMessage() for r in caplog.records]
    entry = {e["group"]: e for e in results["evaluation"] if e["layer_role"] == "target"}
    n_control, words = entry["control"]["n"], entry["control"]["n_clusters"]
    assert (n_control, words) == (5, 4)  # mbwa, paka, samaki, kiti: one has two translations
    control = [
        w for w in log if w.startswith(f"warning: only {n_control} control pairs ({words} source words)")
    ]
    assert len(control) == 1 and "24 claims" in control[0] and "at least 30 control pairs" in control[0]
    assert any(w.startswith(f"only {n_control} control pairs") for w in results["warnings"])
    # Progress names each part of the evaluation, and the report stage.
    for part in (
        "evaluation (seed 0): base model: source words",
        "evaluation (seed 0): adapted model: target",
    ):
        assert any(line.startswith(part) for line in log), part
    assert any(line.startswith("evaluation (seed 0): 1/1 stages (100%), step layer curves") for line in log)
    assert any(line.startswith("report and plots (seed 0): 1/1 stages (100%)") for line in log)
    # The report: the n behind each verdict, and the warning.
    report = (tmp_path / "ev" / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| claim |"))
    assert "| n |" in header
    rows = [line for line in report.splitlines() if line.startswith("| TLI raises similarity of control")]
    assert len(rows) == 2 and all(f"| {n_control} pairs ({words} words) |" in row for row in rows)
    column = [c.strip() for c in header.split("|")].index("n")
    rows = [line for line in report.splitlines() if line.startswith("| TLI improves translation retrieval")]
    cells = [row.split("|")[column].strip() for row in rows]
    assert len(cells) == 4 and all(c.endswith(" words") and "pairs" not in c for c in cells)
    difference = next(c for c in results["claims"] if c["kind"] == "difference")
    assert difference["n"] == n_control + entry["trained"]["n"]
    assert f"| {difference['n']} pairs (" in report
    assert f"**Warning:** only {n_control} control pairs" in report
