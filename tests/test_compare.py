"""tli compare: the experiment schema and its errors, resumable cells, paired statistics, claims, tracking."""

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from tli.cli import main
from tli.compare import compare, dry_run, parse_experiment
from tli.compare.comparisons import compare_cells, comparisons_across_seeds
from tli.compare.hypotheses import comparison_pairs
from tli.compare.questions import QUESTIONS, answer_questions, overall_answer
from tli.compare.results import Comparison
from tli.compare.significance import paired_difference
from tli.errors import ConfigError
from tli.models import load_model


def _experiment(tmp_path, model, body: str, name="e.yaml"):
    path = tmp_path / name
    path.write_text(f"models: [{model}]\n" + body)
    return path


SMALLEST = """strategies: [none]
tasks:
  xnli: {path: "samples:xnli/xnli.test.tsv", languages: [sw], limit: 9}
seeds: [0]
"""


def test_the_smallest_experiment_works_as_written(tiny_llama_dir, tmp_path):
    path = _experiment(tmp_path, tiny_llama_dir, SMALLEST)
    results = compare(path, out=tmp_path / "out", progress=False)
    (cell,) = results["cells"]
    assert (cell["model"], cell["strategy"], cell["task"], cell["language"], cell["seed"]) == (
        str(tiny_llama_dir),
        "none",
        "xnli",
        "sw",
        0,
    )
    assert cell["status"] == "done" and cell["n"] == 9
    assert set(cell["metrics"]) == {"accuracy", "macro_f1"}
    for metric in cell["metrics"].values():
        assert metric["ci95_low"] <= metric["score"] <= metric["ci95_high"]
    assert {"trainable_parameters", "train_seconds", "peak_memory_mb"} <= set(cell["cost"])
    assert cell["cost"]["trainable_parameters"] == 0
    rows = [json.loads(line) for line in open(cell["predictions"])]
    assert len(rows) == 9 and {"id", "prediction", "reference"} <= set(rows[0])
    assert results["comparisons"] == [] and {c["verdict"] for c in results["claims"]} == {"not measured"}
    record = json.loads((tmp_path / "out" / "results.json").read_text())
    assert record["versions"]["torch"] and record["experiment"]["models"] == [str(tiny_llama_dir)]
    assert (tmp_path / "out" / "report.md").is_file()


TWO_STRATEGIES = """strategies: [none, lora, full]
tasks:
  xlsum: {path: "samples:xlsum", languages: [sw], limit: 4, max_new_tokens: 6, max_input_tokens: 64}
  xnli: {path: "samples:xnli/xnli.test.tsv", languages: [sw, en], limit: 9}
budget: {steps: 2, batch_size: 2}
seeds: [0]
n_resamples: 200
"""


@pytest.fixture(scope="module")
def finished(tiny_model_dirs, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    path = _experiment(root, tiny_model_dirs["llama"], TWO_STRATEGIES)
    return path, root / "out", compare(path, out=root / "out", progress=False)


def test_cells_comparisons_and_claims_follow_the_interface(finished, tiny_model_dirs):
    _, out, results = finished
    assert len(results["cells"]) == 3 * 3  # strategies × (xlsum sw, xnli sw, xnli en)
    assert all(c["status"] == "done" for c in results["cells"])
    xlsum = next(c for c in results["cells"] if c["task"] == "xlsum" and c["strategy"] == "lora")
    assert set(xlsum["metrics"]) == {"rouge1", "rouge2", "rougeL", "bleu", "chrf"}
    # LoRA r = 16 on q_proj (128 → 128) and v_proj (128 → 64: one KV head of 64) of the 4 blocks: r·(in + out)
    assert xlsum["cost"]["trainable_parameters"] == 4 * 16 * ((128 + 128) + (128 + 64))
    assert xlsum["cost"]["tokens_seen"] > 0
    full = next(c for c in results["cells"] if c["strategy"] == "full")
    model = load_model(tiny_model_dirs["llama"]).model  # full fine-tuning trains every weight
    assert full["cost"]["trainable_parameters"] == sum(p.numel() for p in model.parameters())
    keys = {
        "model",
        "task",
        "language",
        "metric",
        "strategy",
        "reference",
        "difference",
        "p_value",
        "p_adjusted",
        "verdict",
    }
    assert results["comparisons"] and all(keys <= set(c) for c in results["comparisons"])
    pairs = {(c["strategy"], c["reference"]) for c in results["comparisons"]}
    assert pairs == {
        ("lora", "none"),
        ("full", "none"),
        ("lora", "full"),
    }  # lora vs full: a research question
    assert all(c["p_adjusted"] >= c["p_value"] for c in results["comparisons"])
    # every row names its family and test; p_adjusted is the family's correction
    assert all({"family", "test", "kind", "interval"} <= set(c) for c in results["comparisons"])
    families = {f["name"]: f for f in results["families"]}
    assert (
        set(families) == {c["family"] for c in results["comparisons"]} >= {"finetuning-xlsum", "exploratory"}
    )
    for name, family in families.items():
        rows = [c for c in results["comparisons"] if c["family"] == name]
        assert family["hypotheses"] == len(rows)
        assert family["smallest_adjusted_p"] == pytest.approx(
            min(1, len(rows) * min(r["p_floor"] for r in rows))
        )
    lora_full = next(c for c in results["comparisons"] if (c["strategy"], c["reference"], c["metric"]) == (
        "lora", "full", "rougeL"))  # fmt: skip
    assert lora_full["family"] == "finetuning-xlsum"
    assert lora_full["test"].startswith(("exact sign-flip", "exact McNemar"))  # 4 examples: an exact test
    for corpus in [c for c in results["comparisons"] if c["metric"] in ("bleu", "chrf", "macro_f1")]:
        assert corpus["family"] == "exploratory"
        resampled = corpus["n_resamples"] >= 20 * families["exploratory"]["hypotheses"] / 0.05
        assert resampled or (
            corpus["p_value"] == 1.0 and corpus["difference"] == 0
        )  # or a tie: nothing to test
    answered = [c for c in results["claims"] if c["verdict"] != "not measured"]
    assert answered and all({"question", "claim", "verdict", "n"} <= set(c) for c in answered)
    answers = {a["key"]: a for a in results["answers"]}
    assert answers["finetuning-xlsum"]["across_models"] == "one model: not tested across models"
    assert answers["tli-retrieval"]["answer"] == "not measured"
    assert {f["name"] for f in results["power"]["families"]} == set(families)
    assert xlsum["metrics"]["bleu"]["signature"].startswith(
        "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:"
    )
    assert xlsum["metrics"]["chrf"]["signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no")
    report = (out / "report.md").read_text()
    assert "## Families and power" in report and "sacrebleu signature: `nrefs:1" in report
    assert "scored on the **test** split" in report and "MDE" in report
    assert (out / "score_vs_cost.png").read_bytes()[:4] == b"\x89PNG"


def test_comparisons_equal_the_paired_test_on_the_prediction_files(finished):
    _, _, results = finished
    row = next(
        c
        for c in results["comparisons"]
        if c["task"] == "xnli"
        and c["language"] == "en"
        and c["metric"] == "accuracy"
        and c["strategy"] == "lora"
    )
    cells = {c["strategy"]: c for c in results["cells"] if c["task"] == "xnli" and c["language"] == "en"}
    a = [json.loads(x) for x in open(cells["lora"]["predictions"])]
    b = [json.loads(x) for x in open(cells["none"]["predictions"])]
    expected = paired_difference(a, b, mean_of="correct", n_resamples=200, rng=0)
    assert row["difference"] == pytest.approx(expected.difference)
    assert row["p_value"] == pytest.approx(expected.p_value)
    assert row["difference"] == pytest.approx(
        cells["lora"]["metrics"]["accuracy"]["score"] - cells["none"]["metrics"]["accuracy"]["score"]
    )


def test_rerunning_skips_finished_cells(finished, monkeypatch):
    import tli.compare.runner as runner_module

    path, out, results = finished

    def no_training(*_args, **_kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(runner_module, "finetune", no_training)
    again = compare(path, out=out, progress=False)
    assert [c["metrics"] for c in again["cells"]] == [c["metrics"] for c in results["cells"]]


def test_a_finished_comparison_is_complete_and_verifies(finished, tmp_path):
    """The run is marked complete last; tli verify reads its task adapters and notices a corrupted one."""
    import shutil

    from tli.runs import is_complete
    from tli.verify import verify

    _, out, _ = finished
    assert is_complete(out)
    report = verify(out, load_model=False)
    assert not report.differences and any("task adapter" in line for line in report.checked)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (weights,) = [p for p in copy.glob("runs/**/adapter/adapter_model.safetensors")]
    weights.write_bytes(weights.read_bytes()[:100])
    (difference,) = verify(copy, load_model=False).differences
    assert "unreadable" in difference and str(weights.parent) in difference


def test_a_failed_strategy_loses_nothing_else(tiny_llama_dir, tmp_path, monkeypatch, capsys):
    import tli.compare.runner as runner_module

    original = runner_module.finetune

    def failing_for_full(model, *args, **kwargs):
        if kwargs.get("desc", "").startswith("full"):
            raise RuntimeError("out of memory (simulated)")
        return original(model, *args, **kwargs)

    monkeypatch.setattr(runner_module, "finetune", failing_for_full)
    path = _experiment(tmp_path, tiny_llama_dir, TWO_STRATEGIES)
    code = main(["compare", str(path), "--out", str(tmp_path / "o")])
    assert code == 1 and "cell(s) failed" in capsys.readouterr().err
    record = json.loads((tmp_path / "o" / "results.json").read_text())
    status = {(c["strategy"], c["task"], c["language"]): c["status"] for c in record["cells"]}
    assert {s for (strategy, _, _), s in status.items() if strategy == "full"} == {"failed"}
    assert {s for (strategy, _, _), s in status.items() if strategy != "full"} == {"done"}
    assert "out of memory (simulated)" in (tmp_path / "o" / "report.md").read_text()


@pytest.mark.parametrize(
    "body, message",
    [
        (SMALLEST.replace("[none]", "[none, dora]"), "unknown strategy 'dora' (valid: none, full, lora"),
        (SMALLEST.replace("xnli: {", "nli: {"), "unknown task 'nli' (valid: xlsum, xnli)"),
        (SMALLEST.replace("languages: [sw]", "languages: [sw, fr]"), "has no language fr (it has: en, sw)"),
        (SMALLEST.replace("languages: [sw]", "languages: [yo]"), "no lm-eval 0.4.13 XNLI template for 'yo'"),
        (SMALLEST.replace("[none]", "[none, lora]") + "budget: {steps: 0}\n", "a budget of zero steps"),
        (SMALLEST.replace("[none]", "{none: {device: cuda}}"), "needs device cuda"),
        (SMALLEST + "epochs: 3\n", "unknown key(s) epochs"),
        (SMALLEST.replace("[none]", "[lora]"), "no task here has training data"),
    ],
)
def test_bad_experiments_are_one_line_errors(tiny_llama_dir, tmp_path, capsys, body, message):
    import torch

    if "cuda" in body and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = _experiment(tmp_path, tiny_llama_dir, body)
    assert main(["compare", str(path), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and str(path) in err
    assert not (tmp_path / "never").exists()


def test_a_dataset_in_the_wrong_format_names_file_line_and_field(tiny_llama_dir, tmp_path, capsys):
    data = tmp_path / "xnli.jsonl"
    data.write_text('{"premise": "a", "hypothesis": "b", "label": 0}\n{"premise": "c", "label": 1}\n')
    path = _experiment(
        tmp_path, tiny_llama_dir, f"strategies: [none]\ntasks:\n  xnli: {{path: {data}, languages: [sw]}}\n"
    )
    assert main(["compare", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{data}:2:" in err and "hypothesis" in err  # file:line: field


def test_shipped_experiments_validate_and_plan(capsys):
    from tli.compare import shipped_experiments

    assert {"demo", "lugha-llama-8b-xlsum-xnli", "qwen2-72b-xlsum-xnli", "llama-3-70b-xlsum-xnli"} <= set(
        shipped_experiments()
    )
    for name in shipped_experiments():
        planned = dry_run(parse_experiment(name, check_device=False))
        assert planned["cells"] == len(parse_experiment(name, check_device=False).cells())
        assert all(u["estimated_memory_gb"] is not None for u in planned["units"])
    assert main(["compare", "demo", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "15 cells" in printed and "| default | full | 12 |" in printed
    assert "minimum detectable effect" in printed and "| tli-xlsum | 2 |" in printed


@pytest.mark.parametrize(
    "name", ["lugha-llama-8b-xlsum-xnli", "qwen2-72b-xlsum-xnli", "llama-3-70b-xlsum-xnli"]
)
def test_full_scale_experiments_can_reach_verdicts(name, capsys):
    """Every research-question family of the shipped full-scale experiments can reach adjusted p <= 0.005."""
    assert main(["compare", name, "--dry-run", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    questions = [f for f in planned["families"] if f["name"] != "exploratory"]
    assert {f["name"] for f in questions} >= {"finetuning-xlsum", "tli-xlsum", "nli-preserved"}
    for family in planned["families"]:
        assert {"name", "hypotheses", "test", "smallest_adjusted_p", "minimum_detectable_effect"} <= set(
            family
        )
    assert all(f["smallest_adjusted_p"] <= 0.005 for f in questions)
    assert all(f["minimum_detectable_effect"] and f["n_needed"] for f in questions)


def test_paired_difference_by_hand():
    # Three examples with 0/1 scores: exact McNemar, 2 discordant examples both for A: p = 2 · 0.5² = 0.5 — the
    # same as enumerating all 2^3 sign flips of d = a - b.
    a = [{"id": i, "v": v} for i, v in enumerate([1.0, 1.0, 0.0])]
    b = [{"id": i, "v": v} for i, v in enumerate([0.0, 0.0, 0.0])]
    result = paired_difference(a, b, mean_of="v", n_resamples=1000, rng=0)
    assert result.difference == pytest.approx(2 / 3) and result.test.startswith("exact McNemar")
    flips = [abs(s1 * 1 + s2 * 1) / 3 for s1 in (1, -1) for s2 in (1, -1) for _ in (1, -1)]
    assert result.p_value == pytest.approx(sum(f >= 2 / 3 - 1e-12 for f in flips) / len(flips))  # 4/8
    assert result.p_floor == pytest.approx(0.25)  # 2^(1-3): every example discordant one way
    # The same metric as a corpus score: Monte Carlo randomisation, within 4 standard errors of the exact 0.5.
    corpus = paired_difference(
        a, b, corpus_score=lambda rows: float(np.mean([r["v"] for r in rows])), n_resamples=4000
    )
    assert corpus.difference == pytest.approx(result.difference)
    assert corpus.p_value == pytest.approx(0.5, abs=4 * (0.25 / 4000) ** 0.5 + 1 / 4001)
    with pytest.raises(ConfigError, match="same examples"):
        paired_difference(a, b[:2], mean_of="v")


def test_paired_bootstrap_ci_is_the_percentile_bootstrap_of_the_mean_difference():
    """The CI is the 95 % percentile bootstrap of mean(x − y): it matches a numpy percentile bootstrap written
    here within Monte Carlo error, and the normal-theory t interval within a quarter of a standard error."""
    rng = np.random.default_rng(1)
    x = rng.normal(0.4, 0.1, 40)
    y = x - 0.05 + rng.normal(0, 0.03, 40)
    d = x - y
    a = [{"id": i, "v": float(v)} for i, v in enumerate(x)]
    b = [{"id": i, "v": float(v)} for i, v in enumerate(y)]
    n_boot = 20_000
    result = paired_difference(a, b, mean_of="v", n_resamples=2000, n_boot=n_boot, rng=3)
    assert result.difference == pytest.approx(d.mean(), abs=1e-12)
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert result.se == pytest.approx(se, rel=1e-9)
    # The bootstrap by hand: resample the 40 differences with replacement, take the 2.5 % and 97.5 % quantiles.
    resamples = np.random.default_rng(3).integers(0, d.size, (n_boot, d.size))
    low, high = np.quantile(d[resamples].mean(axis=1), [0.025, 0.975])
    # Monte Carlo sd of a 2.5 % quantile of B means: sqrt(q(1 − q) / B) / φ(1.96) ≈ 0.019 se; two independent
    # bootstraps differ by √2 of that; allow 5 sd.
    monte_carlo = 5 * math.sqrt(2) * math.sqrt(0.025 * 0.975 / n_boot) / sps.norm.pdf(1.96) * se
    assert result.ci95_low == pytest.approx(low, abs=monte_carlo)
    assert result.ci95_high == pytest.approx(high, abs=monte_carlo)
    # and the t interval mean ± t(0.975, 39) se (z vs t and the ddof of the bootstrap differ by < 0.1 se)
    t_low, t_high = sps.t.interval(0.95, d.size - 1, loc=d.mean(), scale=se)
    assert result.ci95_low == pytest.approx(t_low, abs=0.25 * se)
    assert result.ci95_high == pytest.approx(t_high, abs=0.25 * se)


def test_paired_bootstrap_ci_of_two_examples_by_hand():
    """d = (0, 0.5): a resample's mean is 0, 0.25 or 0.5 with probabilities ¼, ½, ¼, so the 2.5 % and 97.5 %
    quantiles of any large bootstrap are exactly 0 and 0.5."""
    a = [{"id": 0, "v": 0.5}, {"id": 1, "v": 0.75}]
    b = [{"id": 0, "v": 0.5}, {"id": 1, "v": 0.25}]
    result = paired_difference(a, b, mean_of="v", n_resamples=2000, rng=0)
    assert (result.difference, result.ci95_low, result.ci95_high) == (0.25, 0.0, 0.5)


def test_questions_map_to_comparisons_or_say_why_not():
    pairs = comparison_pairs(["none", "lora", "lora-early", "full"], "none")
    assert ("lora-early", "full") in pairs and ("lora", "full") in pairs and ("full", "none") in pairs
    comparisons = [
        Comparison(
            model="m",
            task="xnli",
            language="sw",
            metric="accuracy",
            strategy="lora-early",
            reference="full",
            kind="difference",
            family="nli-preserved",
            n_seeds=1,
            seeds=[0],
            n=30,
            score=0.6,
            reference_score=0.5,
            p_floor=0.0,
            p_floor_per_seed=0.0,
            n_resamples=200,
            claim="lora-early scores higher accuracy than full",
            verdict="supported",
            difference=0.1,
            ci95_low=0.05,
            ci95_high=0.15,
            p_adjusted=0.01,
        ),
    ]
    claims = answer_questions(comparisons, ["none", "lora-early", "full"], ["xnli"], ["m"])
    nli = [c for c in claims if c["key"] == "nli-preserved"]
    assert nli == [dict(nli[0], verdict="supported", n=30)]
    assert next(c for c in claims if c["key"] == "tli-xlsum")["reason"] == "needs task xlsum"
    # no question family shares a hypothesis with another, and the TyDi / Mr. TyDi question is not "cross-lingual"
    owned = [(q.key, pair, task) for q in QUESTIONS for pair in q.pairs + q.noninferior for task in q.tasks]
    assert len({(pair, task) for _, pair, task in owned}) == len(owned)
    retrieval = next(q for q in QUESTIONS if q.key == "tli-retrieval").text
    assert "cross-lingual (XQuAD" in retrieval and "monolingual Swahili (TyDi GoldP, Mr. TyDi)" in retrieval


def test_overall_answer_rule():
    assert overall_answer([]) == "not measured"
    assert overall_answer(["supported"] * 3) == "supported"
    assert overall_answer(["contradicted"] * 2) == "contradicted"
    assert overall_answer(["supported", "inconclusive"]) == "partly supported"
    assert overall_answer(["contradicted", "inconclusive"]) == "partly contradicted"
    assert overall_answer(["supported", "contradicted"]) == "mixed"
    assert overall_answer(["inconclusive"] * 4) == "inconclusive"


# --------------------------------------------------------------------------------------------------
# Verdicts that can be reached: synthetic prediction files, no model
# --------------------------------------------------------------------------------------------------

_LABELS = ("entailment", "neutral", "contradiction")


def _xnli_cell(tmp_path, strategy, seed, correct, model="m", language="sw"):
    """A finished XNLI cell whose prediction file has the given per-example correctness."""
    from tli.compare.schema import Cell

    path = tmp_path / f"{model}-{strategy}-{seed}-{language}.jsonl"
    rows = []
    for i, ok in enumerate(correct):
        reference = _LABELS[i % 3]
        prediction = reference if ok else _LABELS[(i + 1) % 3]
        rows.append(
            {
                "id": str(i),
                "prediction": prediction,
                "reference": reference,
                "correct": int(ok),
                "accuracy": float(ok),
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    score = float(np.mean(correct))
    return Cell(
        model=model,
        strategy=strategy,
        task="xnli",
        language=language,
        seed=seed,
        status="done",
        n=len(correct),
        metrics={"accuracy": {"score": score, "ci95_low": score, "ci95_high": score}},
        predictions=str(path),
    )


def _run(cells, strategies, seeds=(0,), n_resamples=200):
    per_seed = compare_cells(cells, strategies, "none", n_resamples=n_resamples, seeds=list(seeds))
    return [c.to_dict() for c in comparisons_across_seeds(per_seed)]


def _row(rows, a, b, kind="difference", metric="accuracy"):
    return next(
        r for r in rows if (r["strategy"], r["reference"], r["kind"], r["metric"]) == (a, b, kind, metric)
    )


def test_a_beats_b_on_200_of_200_is_supported_whatever_the_other_comparisons(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.random(200) < 0.5
    cells = [
        _xnli_cell(tmp_path, "none", 0, base),
        _xnli_cell(tmp_path, "lora-early", 0, np.ones(200, bool)),
        _xnli_cell(tmp_path, "full", 0, np.zeros(200, bool)),
    ]
    few = _run(cells, ["none", "lora-early", "full"])
    claim = _row(few, "lora-early", "full")
    assert claim["family"] == "nli-preserved" and claim["test"].startswith("exact McNemar")
    assert claim["p_value"] == pytest.approx(2 * 0.5**200) and claim["verdict"] == "supported"
    # Eight more strategies: many more exploratory comparisons (each against the reference, non-inferiority,
    # macro-F1), none in the question's family: its claim, p_adjusted and answer do not change.
    extra = ["lora", "qlora", "lora-late", "tli", "tli+lora"]
    more = cells + [_xnli_cell(tmp_path, s, 0, rng.random(200) < 0.5) for s in extra]
    many = _run(more, ["none", "lora-early", "full", *extra])
    again = _row(many, "lora-early", "full")
    assert len([r for r in many if r["family"] == "exploratory"]) > 3 * len(
        [r for r in few if r["family"] == "exploratory"]
    )
    assert again["verdict"] == "supported" and again["p_value"] == claim["p_value"]
    assert again["p_adjusted"] <= 1e-50  # Holm over the question's hypotheses only
    # with only the diagnostic strategies changed, the answers of the question's own claims are the same
    unchanged = [
        r
        for r in _run(cells + [_xnli_cell(tmp_path, "lora", 0, base)], ["none", "lora-early", "full", "lora"])
    ]
    assert {(r["claim"], r["verdict"], r["p_adjusted"]) for r in few if r["family"] == "nli-preserved"} == {
        (r["claim"], r["verdict"], r["p_adjusted"]) for r in unchanged if r["family"] == "nli-preserved"
    }


def test_ties_are_inconclusive(tmp_path):
    same = np.random.default_rng(1).random(200) < 0.6
    cells = [_xnli_cell(tmp_path, s, 0, same) for s in ("none", "lora-early", "full")]
    rows = _run(cells, ["none", "lora-early", "full"])
    tie = _row(rows, "lora-early", "full")
    assert tie["p_value"] == 1.0 and tie["difference"] == 0 and tie["verdict"] == "inconclusive"
    # identical to the base on 200 examples: that cannot show a difference above −1 point. The worst case under
    # H0 (d = −1 with probability 0.01, else 0) gives 200 agreements with probability 0.99^200 = 0.134
    preserved = _row(rows, "lora-early", "none", kind="non-inferiority")
    assert preserved["family"] == "nli-preserved" and preserved["verdict"] == "inconclusive"
    assert preserved["p_value"] == pytest.approx(0.99**200, rel=1e-12)


def test_agreement_on_enough_examples_shows_non_inferiority(tmp_path):
    same = np.random.default_rng(1).random(1000) < 0.6
    cells = [_xnli_cell(tmp_path, s, 0, same) for s in ("none", "lora-early", "full")]
    preserved = _row(
        _run(cells, ["none", "lora-early", "full"]), "lora-early", "none", kind="non-inferiority"
    )
    assert preserved["p_value"] == pytest.approx(0.99**1000, rel=1e-12)  # 4.3e-5
    assert preserved["verdict"] == "supported"


def test_seeds_that_disagree_give_an_across_seed_ci_that_covers_zero(tmp_path):
    rng = np.random.default_rng(2)
    cells = []
    for seed, (early, full) in enumerate([(0.75, 0.45), (0.40, 0.70), (0.72, 0.47)]):
        cells += [
            _xnli_cell(tmp_path, "none", seed, rng.random(400) < 0.5),
            _xnli_cell(tmp_path, "lora-early", seed, rng.random(400) < early),
            _xnli_cell(tmp_path, "full", seed, rng.random(400) < full),
        ]
    per_seed = compare_cells(cells, ["none", "lora-early", "full"], "none", n_resamples=200, seeds=[0, 1, 2])
    verdicts = [r.verdict for r in per_seed if (r.strategy, r.reference, r.metric, r.kind) == (
        "lora-early", "full", "accuracy", "difference")]  # fmt: skip
    assert verdicts == ["supported", "contradicted", "supported"]  # each seed alone is decisive
    row = _row([c.to_dict() for c in comparisons_across_seeds(per_seed)], "lora-early", "full")
    assert row["n_seeds"] == 3 and row["ci95_low"] < 0 < row["ci95_high"]
    assert row["verdict"] == "inconclusive" and row["note"].startswith("seeds disagree")
    assert row["interval"].startswith("across-seed 95 % CI")
    # DerSimonian–Laird by hand from the three seeds' differences y and standard errors s (w = 1/s²)
    key = ("lora-early", "full", "accuracy", "difference")
    seeds = [r.to_dict() for r in per_seed if (r.strategy, r.reference, r.metric, r.kind) == key]
    assert [r["seed"] for r in seeds] == [0, 1, 2]
    y, w = np.array([r["difference"] for r in seeds]), np.array([1 / r["se"] ** 2 for r in seeds])
    q = float(np.sum(w * (y - np.sum(w * y) / np.sum(w)) ** 2))
    assert row["tau2"] == pytest.approx(max(0.0, (q - 2) / (w.sum() - np.sum(w**2) / w.sum())), rel=1e-9)
    assert row["tau2"] > 0


def test_mlflow_tracking_can_be_read_back(tiny_llama_dir, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    path = _experiment(tmp_path, tiny_llama_dir, SMALLEST)
    compare(path, out=tmp_path / "out", track="mlflow", progress=False)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "e"]
    runs = client.search_runs([experiment.experiment_id])
    cell = next(r for r in runs if r.data.params.get("strategy") == "none")
    assert cell.data.params["task"] == "xnli" and math.isfinite(cell.data.metrics["accuracy.score"])
    assert any(a.path == "predictions.jsonl" for a in client.list_artifacts(cell.info.run_id))


def test_an_experiment_file_reports_every_problem_in_one_error(tmp_path):
    """Like the command configs, an experiment YAML lists every problem at once, each naming its key."""
    path = _experiment(
        tmp_path,
        "default",
        """strategies: [none, lora]
tasks:
  xnli: {path: "samples:xnli/xnli.test.tsv", languages: [sw]}
bogus: 1
correction: bonferroni
alpha: 2
n_resamples: 10
budget: {steps: 0}
reference: full
""",
    )
    with pytest.raises(ConfigError) as caught:
        parse_experiment(path, check_device=False, check_files=False)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and message.count(str(path)) == 1
    for problem in (
        "unknown key(s) bogus",
        "correction 'bonferroni' is not one of holm, bh, none",
        "alpha must be in (0, 1), got 2.0",
        "n_resamples must be >= 99, got 10",
        "budget steps must be >= 1, got 0",
        "reference 'full' is not one of the experiment's strategies",
    ):
        assert problem in message, problem
    assert "\n" not in message


def test_a_retrieval_block_reports_every_problem_in_one_error(tmp_path):
    path = _experiment(
        tmp_path,
        "default",
        """strategies: [none]
tasks:
  xquad: {languages: [sw-en]}
retrieval: {systems: [fusion, dense], test: z-test, bm25: {k1: -1}, fusion: {k: 0}}
""",
    )
    with pytest.raises(ConfigError) as caught:
        parse_experiment(path, check_device=False, check_files=False)
    message = str(caught.value)
    for problem in (
        "fusion fuses BM25 with each dense system; add bm25",
        "retrieval.test 'z-test' is not one of auto, randomisation, t-test",
        "retrieval.bm25 needs k1 >= 0 and 0 <= b <= 1",
        "retrieval.fusion.k must be >= 1, got 0",
    ):
        assert problem in message, problem
