"""``tli ablate`` end to end on a tiny random model: units, table, verdicts, resume, bad input."""

import json

import pytest

from tli.ablate.verdicts import judge_family
from tli.cli import main


def test_tiny_ablation_end_to_end_and_resume(tiny_llama_dir, toy_lexicon_file, tmp_path, capsys):
    out = tmp_path / "abl"
    argv = ["ablate", "--model", str(tiny_llama_dir), "--lexicon", str(toy_lexicon_file), "--out", str(out)]
    argv += [
        "--variants",
        "centred-infonce-lexicon+uniformity+preservation",
        "--seeds",
        "0,1",
        "--epochs",
        "1",
    ]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["variants"] == ["triplet", "centred-infonce-lexicon+uniformity+preservation"]
    assert {(r["variant"], r["layer_role"]) for r in results["table"]} == {
        (v, role) for v in results["variants"] for role in ("target", "final")
    }
    units = {
        v: [json.loads((out / v / f"seed-{s}.json").read_text()) for s in (0, 1)] for v in results["variants"]
    }
    for per_seed in units.values():
        for unit in per_seed:  # the objective is recorded with every unit, and identical budgets
            assert unit["train_config"]["epochs"] == 1 and unit["train_config"]["target_layer"] == 2
        # Downstream is scored for the first seed's adapter (--downstream-seeds 1, the default).
        assert (
            set(per_seed[0]["downstream"]) == {"mrtydi", "xquad", "xnli"} and "downstream" not in per_seed[1]
        )
    assert units["centred-infonce-lexicon+uniformity+preservation"][0]["train_config"]["regularizers"] == [
        "centred",
        "uniformity",
        "preservation",
    ]
    # The table's control Δsim is the mean of the units' per-pair changes.
    row = next(r for r in results["table"] if r["variant"] == "triplet" and r["layer_role"] == "target")
    per_seed = [
        sum(p["sim_post"] - p["sim_pre"] for p in rows) / len(rows)
        for rows in (
            [p for p in u["per_pair"] if p["group"] == "control" and p["layer_role"] == "target"]
            for u in units["triplet"]
        )
    ]
    assert row["control_sim_change"] == pytest.approx(sum(per_seed) / len(per_seed))
    questions = results["questions"]
    assert questions and all(q["verdict"] in ("supported", "contradicted", "inconclusive") for q in questions)
    assert any("more than published TLI" in q["question"] for q in questions)
    assert "## Verdicts" in (out / "report.md").read_text()
    # Rerunning resumes: finished units are kept as they are.
    stamp = (out / "triplet" / "seed-0.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert (out / "triplet" / "seed-0.json").stat().st_mtime_ns == stamp
    # --report-only judges the finished units again, training nothing: the same verdicts.
    assert main([*argv, "--report-only"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert [q["verdict"] for q in again["questions"]] == [q["verdict"] for q in questions]
    assert (out / "triplet" / "seed-0.json").stat().st_mtime_ns == stamp


def test_holm_verdicts_by_hand():
    found = [
        {"p": 0.01, "difference": 0.2, "expect": "increase", "seed_differences": [0.1, 0.2, 0.3]},
        {"p": 0.02, "difference": -0.2, "expect": "increase", "seed_differences": [-0.1, 0.1, -0.3]},
        {"p": 0.04, "difference": 0.1, "expect": "non-inferior", "seed_differences": [0.0]},
    ]
    judge_family(found, alpha=0.05)
    # Holm: 3·0.01 = 0.03, max(0.03, 2·0.02) = 0.04, max(0.04, 1·0.04) = 0.04.
    assert [q["p_adjusted"] for q in found] == pytest.approx([0.03, 0.04, 0.04])
    assert [q["verdict"] for q in found] == ["supported", "contradicted", "supported"]
    worse = [{"p": 0.999, "difference": -0.5, "expect": "non-inferior", "seed_differences": [-0.5]}]
    assert judge_family(worse)[0]["verdict"] == "contradicted"  # 1 · (1 − 0.999) < 0.05
    assert found[0]["seeds_agree"] == 3 and found[1]["seeds_agree"] == 1


def test_bad_variant_is_one_clear_error(capsys):
    assert main(["ablate", "--variants", "nope"]) == 2
    assert capsys.readouterr().err.startswith("tli: error: --variants 'nope' is not one of triplet")
