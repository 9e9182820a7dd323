"""lm-evaluation-harness tasks in ``tli compare``: the ``lm-eval`` block, cells scored by the harness's engine
with per-example rows, paired comparisons on them, equality with ``lm_eval`` run directly on the same data and
model, a tli adapter loaded by the harness's ``HFLM(peft=…)``, and one-line errors for bad input. Offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tli.cli import main
from tli.compare import compare, parse_experiment
from tli.errors import ConfigError
from tli.tasks import TaskDataError, get_task, samples_dir
from tli.tasks.harness import metric_aggregations, task_language, task_manager

SAMPLES = samples_dir("lm-eval")
EXPERIMENT = """strategies: [none, lora-early]
tasks:
  xlsum: {path: "samples:xlsum", languages: [sw], limit: 3, max_new_tokens: 4, max_input_tokens: 64}
  lm-eval:
    tasks: [belebele_swh_Latn, xcopa_sw]
    data: {belebele_swh_Latn: "samples:lm-eval/belebele_swh_Latn.jsonl", xcopa_sw: "samples:lm-eval/xcopa_sw.jsonl"}
    limit: 6
    num_fewshot: 0
    batch_size: 4
train: {task: xlsum, language: sw}
budget: {steps: 2, batch_size: 2}
strategy_options: {target_layer: 2}
seeds: [0]
n_resamples: 200
"""


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _experiment(tmp_path: Path, model: Path, body: str) -> Path:
    path = tmp_path / "e.yaml"
    path.write_text(f"models: [{model}]\n" + body, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def finished(tiny_model_dirs, tmp_path_factory):
    root = tmp_path_factory.mktemp("lm-eval")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        patch.setenv("HF_HUB_OFFLINE", "1")
        path = _experiment(root, tiny_model_dirs["llama"], EXPERIMENT)
        return root / "out", compare(path, out=root / "out", progress=False)


def _rows(cell: dict) -> list[dict]:
    return [json.loads(line) for line in Path(cell["predictions"]).read_text(encoding="utf-8").splitlines()]


def _cell(results: dict, strategy: str, task: str) -> dict:
    return next(c for c in results["cells"] if c["strategy"] == strategy and c["task"] == task)


def test_harness_tasks_are_cells_with_the_harness_metrics_and_paired_comparisons(finished):
    _, results = finished
    assert all(c["status"] == "done" for c in results["cells"])
    tasks = {(c["task"], c["language"]) for c in results["cells"]}
    assert tasks == {("xlsum", "sw"), ("lm-eval:belebele_swh_Latn", "sw"), ("lm-eval:xcopa_sw", "sw")}
    belebele = _cell(results, "none", "lm-eval:belebele_swh_Latn")
    assert set(belebele["metrics"]) == {"acc", "acc_norm"} and belebele["n"] == 6
    for metric, score in belebele["metrics"].items():
        rows = _rows(belebele)
        mean = sum(r[metric] for r in rows) / len(rows)
        assert score["score"] == pytest.approx(mean, abs=1e-12)  # the harness's figure is the rows' mean
        assert score["ci95_low"] <= score["score"] <= score["ci95_high"]
    assert [r["id"] for r in _rows(belebele)] == [str(i) for i in range(6)]
    assert {r["prediction"] for r in _rows(belebele)} <= {0, 1, 2, 3}
    compared = {(c["task"], c["metric"], c["strategy"], c["reference"]) for c in results["comparisons"]}
    assert ("lm-eval:xcopa_sw", "acc", "lora-early", "none") in compared
    assert ("lm-eval:belebele_swh_Latn", "acc_norm", "lora-early", "none") in compared
    row = next(
        c for c in results["comparisons"] if c["task"] == "lm-eval:xcopa_sw" and c["kind"] == "difference"
    )
    xcopa = {
        s: _cell(results, s, "lm-eval:xcopa_sw")["metrics"]["acc"]["score"] for s in ("none", "lora-early")
    }
    assert row["difference"] == pytest.approx(xcopa["lora-early"] - xcopa["none"], abs=1e-12)
    assert row["n"] == 6 and row["verdict"] in {"supported", "contradicted", "inconclusive"}
    # "reasoning preserved": non-inferiority of lora-early to the zero-shot base on each harness task's acc,
    # corrected in its research question's family
    preserved = [c for c in results["comparisons"] if c["family"] == "reasoning-preserved"]
    assert {(c["task"], c["metric"], c["kind"]) for c in preserved} == {
        ("lm-eval:belebele_swh_Latn", "acc", "non-inferiority"),
        ("lm-eval:xcopa_sw", "acc", "non-inferiority"),
    }
    answer = next(a for a in results["answers"] if a["key"] == "reasoning-preserved")
    assert answer["claims"] == 2 and "lm-eval:xcopa_sw" in (Path(finished[0]) / "report.md").read_text()


def _lm_eval_directly(model_args: dict, data: Path, tmp_path: Path, task: str) -> list[dict]:
    """The harness's own task on a local file, written the way an lm-eval user would (a YAML that includes
    the installed definition), run by ``simple_evaluate`` without tli."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    installed = task_manager().task_index[task].yaml_path
    folder = tmp_path / "tasks"
    folder.mkdir(exist_ok=True)
    spec = {
        "include": str(installed),
        "task": f"local_{task}",
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "training_split": None,
        "validation_split": None,
        "test_split": "test",
        "fewshot_split": "test",
    }
    (folder / f"local_{task}.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    output = lm_eval.simple_evaluate(
        model=HFLM(**model_args),
        tasks=[f"local_{task}"],
        task_manager=TaskManager(include_path=str(folder), include_defaults=False),
        limit=6,
        num_fewshot=0,
        log_samples=True,
        bootstrap_iters=0,
    )
    return sorted(output["samples"][f"local_{task}"], key=lambda s: s["doc_id"])


def test_per_example_results_equal_lm_eval_run_directly(finished, tiny_model_dirs, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, results = finished
    directory = tiny_model_dirs["llama"]
    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    samples = _lm_eval_directly(
        {"pretrained": model, "tokenizer": tokenizer, "batch_size": 4},
        SAMPLES / "xcopa_sw.jsonl",
        tmp_path,
        "xcopa_sw",
    )
    rows = _rows(_cell(results, "none", "lm-eval:xcopa_sw"))
    assert [r["id"] for r in rows] == [str(s["doc_id"]) for s in samples]
    assert [r["acc"] for r in rows] == [float(s["acc"]) for s in samples]
    assert [r["reference"] for r in rows] == [s["target"] for s in samples]


def test_a_tli_adapter_loads_in_the_harness_hflm_with_peft(finished, tiny_model_dirs, tmp_path):
    """``lm_eval --model hf --model_args pretrained=BASE,peft=ADAPTER``: the LoRA unit's saved adapter, loaded
    by the harness from disk, gives the per-example results of the lora cell."""
    out, results = finished
    adapter = next((out / "runs").glob("*/lora-early/seed-0/adapter"))
    assert (adapter / "adapter_config.json").is_file()
    samples = _lm_eval_directly(
        {"pretrained": str(tiny_model_dirs["llama"]), "peft": str(adapter), "batch_size": 4, "device": "cpu"},
        SAMPLES / "belebele_swh_Latn.jsonl",
        tmp_path,
        "belebele_swh_Latn",
    )
    rows = _rows(_cell(results, "lora-early", "lm-eval:belebele_swh_Latn"))
    assert [r["acc"] for r in rows] == [float(s["acc"]) for s in samples]
    assert [r["acc_norm"] for r in rows] == [float(s["acc_norm"]) for s in samples]


def test_language_comes_from_the_task_name():
    assert task_language("xcopa_sw") == "sw"
    assert task_language("belebele_swh_Latn") == "sw"
    assert task_language("afrixnli_swa_prompt_1") == "sw"
    assert task_language("hellaswag") == "und"


BAD = [
    ("[belebele_swh_Latn, xcopa_sx]", "", "unknown harness task 'xcopa_sx'; closest: xcopa_s"),
    ("[xcopa_sw]", "num_fewshot: -1", "tasks.lm-eval.num_fewshot must be a whole number >= 0"),
    ("[xcopa_sw]", "limit: 50", "limit 50 is larger than its data (10 documents"),
    ("[xcopa_sw]", "frobnicate: 1", "unknown option(s) frobnicate"),
]


@pytest.mark.parametrize(("tasks", "extra", "message"), BAD)
def test_bad_harness_input_is_one_line_before_any_model_loads(
    tiny_llama_dir, tmp_path, capsys, monkeypatch, tasks, extra, message
):
    import tli.compare.runner as runner

    monkeypatch.setattr(runner, "load_model", lambda *a, **k: pytest.fail("no model may load"))
    block = f"    tasks: {tasks}\n    data: {{xcopa_sw: {SAMPLES / 'xcopa_sw.jsonl'}}}\n"
    if "xcopa_sw" not in tasks:
        block = f"    tasks: {tasks}\n"
    body = f"strategies: [none]\ntasks:\n  lm-eval:\n{block}" + (f"    {extra}\n" if extra else "")
    path = _experiment(tmp_path, tiny_llama_dir, body)
    assert main(["compare", str(path), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and str(path) in err
    assert not (tmp_path / "never").exists()


def test_a_local_file_without_the_task_fields_names_file_row_and_field(tiny_llama_dir, tmp_path, capsys):
    data = tmp_path / "xcopa.jsonl"
    rows = [json.loads(line) for line in (SAMPLES / "xcopa_sw.jsonl").read_text().splitlines()][:3]
    rows[1].pop("question")
    rows[1]["swali"] = "cause"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    body = f"strategies: [none]\ntasks:\n  lm-eval: {{tasks: [xcopa_sw], data: {{xcopa_sw: {data}}}}}\n"
    path = _experiment(tmp_path, tiny_llama_dir, body)
    assert main(["compare", str(path), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{data}: row 2 does not match task xcopa_sw's fields: missing field 'question'" in err


def test_a_hub_task_offline_fails_its_cells_and_keeps_the_others(tiny_llama_dir, tmp_path, capsys):
    body = (
        "strategies: [none]\ntasks:\n  lm-eval:\n    tasks: [xcopa_sw, belebele_swh_Latn]\n"
        f"    data: {{xcopa_sw: {SAMPLES / 'xcopa_sw.jsonl'}}}\n    limit: 3\n"
    )
    path = _experiment(tmp_path, tiny_llama_dir, body)
    assert main(["compare", str(path), "--out", str(tmp_path / "o")]) == 1
    record = json.loads((tmp_path / "o" / "results.json").read_text())
    status = {c["task"]: c["status"] for c in record["cells"]}
    assert status == {"lm-eval:xcopa_sw": "done", "lm-eval:belebele_swh_Latn": "failed"}


def test_the_shipped_demo_parses_offline():
    experiment = parse_experiment("lm-eval-demo")
    assert {"xlsum", "lm-eval:belebele_swh_Latn", "lm-eval:xcopa_sw"} == set(experiment.tasks)
    assert get_task("lm-eval:xcopa_sw").metrics == ("acc",)
    with pytest.raises(ConfigError, match="group or tag"):
        get_task("lm-eval:xcopa")


def test_a_local_file_missing_a_column_everywhere_names_it(tmp_path):
    data = tmp_path / "belebele.jsonl"
    rows = [json.loads(line) for line in (SAMPLES / "belebele_swh_Latn.jsonl").read_text().splitlines()][:2]
    for row in rows:
        row["passage"] = row.pop("flores_passage")
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(
        TaskDataError, match=r"row 1 does not match task belebele_swh_Latn's fields: .*flores_passage"
    ):
        get_task("lm-eval:belebele_swh_Latn").load(data, "sw")


def test_a_metric_without_a_registered_aggregation_has_no_per_example_form():
    definition = {"metric_list": [{"metric": "acc"}, {"metric": "score", "aggregation": "median_of_means"}]}
    with pytest.raises(ConfigError, match=r"metric 'score' has no aggregation the harness registers"):
        metric_aggregations("mytask", definition)
    filtered = {
        "metric_list": [{"metric": "exact_match"}],
        "filter_list": [{"name": "strict"}, {"name": "flex"}],
    }
    assert list(metric_aggregations("t", filtered)) == ["exact_match,strict", "exact_match,flex"]


def test_corpus_metrics_are_rescored_by_the_harness_aggregation_on_any_resample():
    """AfroBench's weighted F1 keeps each example's (gold, prediction) item; a resample's score is sklearn's
    weighted F1 of the resampled pairs."""
    from sklearn.metrics import f1_score

    task = get_task("lm-eval:afrixnli_native_direct_swa")
    assert task.mean_metrics == {"acc": "acc"} and "f1" in task.metrics
    golds, preds = [0, 1, 2, 2, 1, 0, 2], [0, 2, 2, 2, 1, 1, 0]
    rows = [
        {"id": str(i), "acc": float(g == p), "f1": [g, p]}
        for i, (g, p) in enumerate(zip(golds, preds, strict=True))
    ]
    for idx in ([0, 1, 2, 3, 4, 5, 6], [1, 1, 2, 6, 6, 0]):
        sample = [rows[i] for i in idx]
        expected = f1_score([golds[i] for i in idx], [preds[i] for i in idx], average="weighted")
        assert task.corpus_score("f1", sample) == pytest.approx(expected, abs=1e-12)
        assert task.corpus_score("acc", sample) == pytest.approx(sum(r["acc"] for r in sample) / len(idx))


def test_tli_rouge_l_equals_the_scorer_afrobench_xlsum_calls_on_swahili_samples():
    """AfroBench's ``xlsum_swahili_prompt_1`` aggregates ``(reference, prediction)`` items with HF evaluate's
    ``rouge`` (rouge-score's default tokenizer, no stemmer, rougeL F1 on a 0-1 scale). On the Swahili samples
    (ASCII words) tli's per-example ROUGE-L F1 equals that scorer's exactly; evaluate then reports the median of
    bootstrap means (``use_aggregator``), not the mean: docs/guides/lm-eval.md, "XL-Sum"."""
    from rouge_score import rouge_scorer

    from tli.tasks.harness import task_definition
    from tli.tasks.overlap_metrics import rouge_f1

    definition = task_definition("xlsum_swahili_prompt_1")
    assert definition["metric_list"][0]["aggregation"].__name__ == "rougeL_agg"
    examples = get_task("xlsum").load(None, "sw")
    references = [e.summary for e in examples]
    predictions = [e.text.split(". ")[0] for e in examples]  # a lead-sentence summary
    ours = rouge_f1(predictions, references)["rougeL"]
    default = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    theirs = [default.score(r, p)["rougeL"].fmeasure for r, p in zip(references, predictions, strict=True)]
    assert ours == pytest.approx(theirs, abs=1e-12) and 0 < sum(theirs) / len(theirs) < 1


def test_the_harness_cli_runs_a_tli_adapter(finished, tiny_model_dirs, tmp_path):
    """The documented recipe, ``lm_eval --model hf --model_args pretrained=BASE,peft=ADAPTER``, offline on the
    saved ``lora-early`` adapter and the local Belebele sample: the cell's accuracy."""
    import os
    import subprocess
    import sys

    out, results = finished
    adapter = next((out / "runs").glob("*/lora-early/seed-0/adapter"))
    folder = tmp_path / "tasks"
    folder.mkdir()
    installed = Path(
        json.loads(adapter.joinpath("adapter_config.json").read_text())["base_model_name_or_path"]
    )
    assert installed == tiny_model_dirs["llama"]  # the adapter names its base

    spec = {
        "include": str(task_manager().task_index["belebele_swh_Latn"].yaml_path),
        "task": "local_belebele",
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(SAMPLES / "belebele_swh_Latn.jsonl")}},
    }
    (folder / "local_belebele.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    command = [
        sys.executable, "-m", "lm_eval", "--model", "hf",
        "--model_args", f"pretrained={installed},peft={adapter}",
        "--tasks", "local_belebele", "--include_path", str(folder), "--limit", "6", "--num_fewshot", "0",
        "--batch_size", "4", "--device", "cpu", "--output_path", str(tmp_path / "harness"),
    ]  # fmt: skip
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (record,) = list((tmp_path / "harness").rglob("results_*.json"))
    accuracy = json.loads(record.read_text())["results"]["local_belebele"]["acc,none"]
    assert accuracy == pytest.approx(
        _cell(results, "lora-early", "lm-eval:belebele_swh_Latn")["metrics"]["acc"]["score"]
    )


def test_the_swahili_suite_plans_every_harness_task_and_can_reach_verdicts(capsys):
    """The shipped full-scale suite: the briefs' three models, six Swahili harness tasks sized by their official
    splits, and a `reasoning-preserved` family that can reach adjusted p <= 0.005."""
    assert main(["compare", "swahili-suite", "--dry-run", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    tasks = planned["experiment"]["tasks"]
    harness = sorted(t for t in tasks if t.startswith("lm-eval:"))
    assert len(harness) == 6 and all(tasks[t]["languages"] == ["sw"] for t in harness)
    sizes = planned["assumptions"]["sizes"]
    assert all(sizes[f"{t} (sw)"]["source"] == "official split size" for t in harness)
    (family,) = [f for f in planned["families"] if f["name"] == "reasoning-preserved"]
    assert family["smallest_adjusted_p"] <= 0.005 and family["minimum_detectable_effect"]["acc"] < 0.2


def test_samples_under_two_filters_become_one_row_per_document():
    """A generation task (AfriMGSM) logs one record per document and filter; the row holds each filter's
    score under the harness's name and the first filter's output as ``prediction``."""
    from tli.tasks.harness import rows_from_samples

    def sample(doc, filter_name, output, score):
        return {"doc_id": doc, "filter": filter_name, "target": "12", "filtered_resps": [output],
                "exact_match": score}  # fmt: skip

    samples = [sample(1, "strict", "12", 1.0), sample(0, "strict", "x", 0.0), sample(0, "flex", "7", 0.0),
               sample(1, "flex", "12", 1.0)]  # fmt: skip
    rows = rows_from_samples(samples, ("exact_match,strict", "exact_match,flex"))
    assert rows == [
        {"id": "0", "reference": "12", "prediction": "x", "prediction,strict": "x", "prediction,flex": "7",
         "exact_match,strict": 0.0, "exact_match,flex": 0.0},
        {"id": "1", "reference": "12", "prediction": "12", "prediction,strict": "12", "prediction,flex": "12",
         "exact_match,strict": 1.0, "exact_match,flex": 1.0},
    ]  # fmt: skip
