"""tli compare: the experiment schema and its errors, resumable cells, paired statistics, claims, tracking."""

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from tli.cli import main
from tli.compare import compare, dry_run, parse_experiment
from tli.compare.questions import answer_questions, comparison_pairs
from tli.compare.significance import paired_difference
from tli.errors import ConfigError


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


def test_cells_comparisons_and_claims_follow_the_interface(finished):
    _, out, results = finished
    assert len(results["cells"]) == 3 * 3  # strategies × (xlsum sw, xnli sw, xnli en)
    assert all(c["status"] == "done" for c in results["cells"])
    xlsum = next(c for c in results["cells"] if c["task"] == "xlsum" and c["strategy"] == "lora")
    assert set(xlsum["metrics"]) == {"rouge1", "rouge2", "rougeL", "bleu", "chrf"}
    assert xlsum["cost"]["trainable_parameters"] > 0 and xlsum["cost"]["tokens_seen"] > 0
    full = next(c for c in results["cells"] if c["strategy"] == "full")
    assert full["cost"]["trainable_parameters"] > 10 * xlsum["cost"]["trainable_parameters"]
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
    answered = [c for c in results["claims"] if c["verdict"] != "not measured"]
    assert answered and all({"question", "claim", "verdict", "n"} <= set(c) for c in answered)
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
    import tli.compare.cells as cells_module

    path, out, results = finished

    def no_training(*_args, **_kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(cells_module, "finetune", no_training)
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
    import tli.compare.cells as cells_module

    original = cells_module.finetune

    def failing_for_full(model, *args, **kwargs):
        if kwargs.get("desc", "").startswith("full"):
            raise RuntimeError("out of memory (simulated)")
        return original(model, *args, **kwargs)

    monkeypatch.setattr(cells_module, "finetune", failing_for_full)
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


def test_paired_difference_by_hand():
    # Three examples, per-example scores: exact randomisation enumerates all 2^3 sign flips of d = a - b.
    a = [{"id": i, "v": v} for i, v in enumerate([1.0, 1.0, 0.0])]
    b = [{"id": i, "v": v} for i, v in enumerate([0.0, 0.0, 0.0])]
    result = paired_difference(a, b, mean_of="v", n_resamples=1000, rng=0)
    assert result.difference == pytest.approx(2 / 3)
    flips = [abs(s1 * 1 + s2 * 1) / 3 for s1 in (1, -1) for s2 in (1, -1) for _ in (1, -1)]
    assert result.p_value == pytest.approx(sum(f >= 2 / 3 - 1e-12 for f in flips) / len(flips))  # 4/8
    # A corpus metric gives the same as its mean form.
    corpus = paired_difference(
        a, b, corpus_score=lambda rows: float(np.mean([r["v"] for r in rows])), n_resamples=1000
    )
    assert corpus.difference == pytest.approx(result.difference) and corpus.p_value == pytest.approx(
        result.p_value
    )
    with pytest.raises(ConfigError, match="same examples"):
        paired_difference(a, b[:2], mean_of="v")


def test_paired_bootstrap_ci_agrees_with_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(0.4, 0.1, 40)
    y = x - 0.05 + rng.normal(0, 0.03, 40)
    a = [{"id": i, "v": float(v)} for i, v in enumerate(x)]
    b = [{"id": i, "v": float(v)} for i, v in enumerate(y)]
    result = paired_difference(a, b, mean_of="v", n_resamples=2000, rng=3)
    t = sps.ttest_rel(x, y)
    assert result.ci95_low < result.difference < result.ci95_high
    assert (result.ci95_low > 0) == (t.pvalue < 0.05)  # a clear effect: both say so


def test_questions_map_to_comparisons_or_say_why_not():
    pairs = comparison_pairs(["none", "lora", "lora-early", "full"], "none")
    assert ("lora-early", "full") in pairs and ("lora", "full") in pairs and ("full", "none") in pairs
    comparisons = [
        {
            "model": "m",
            "task": "xnli",
            "language": "sw",
            "metric": "accuracy",
            "strategy": "lora-early",
            "reference": "full",
            "claim": "lora-early scores higher accuracy than full",
            "verdict": "supported",
            "n": 30,
            "difference": 0.1,
            "p_adjusted": 0.01,
        },
    ]
    claims = answer_questions(comparisons, ["none", "lora-early", "full"], ["xnli"], ["m"])
    nli = [c for c in claims if c["key"] == "nli-preserved"]
    assert nli == [dict(nli[0], verdict="supported", n=30)]
    assert next(c for c in claims if c["key"] == "tli-xlsum")["reason"] == "needs task xlsum"


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
