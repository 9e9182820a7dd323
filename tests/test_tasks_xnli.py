"""XNLI task: loaders and their errors, lm-eval 0.4.13's templates, the log-likelihood scorer, metrics
against scipy / scikit-learn, and equality with lm-evaluation-harness itself, run offline on the same model
and data."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tli.errors import ConfigError
from tli.tasks import NLIExample, TaskDataError, XNLIConfig, get_task, samples_dir
from tli.tasks.loglikelihood import continuation_logliks, encode_empty_context, prefix_token_id
from tli.tasks.xnli import LABELS, TEMPLATE_WORDS, choices

TASK = get_task("xnli")
TSV = samples_dir("xnli") / "xnli.test.tsv"
JSONL = samples_dir("xnli") / "xnli_sw.jsonl"
HEADER = "language\tgold_label\tsentence1\tsentence2\tpairID"


def _lm_eval_dir() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).parent / "tasks" / "xnli"


def _load_tiny(directory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(directory).eval(), AutoTokenizer.from_pretrained(directory)


# --- loading -----------------------------------------------------------------------------------------------


def test_tsv_and_jsonl_samples_hold_the_same_balanced_swahili_pairs():
    from_tsv = TASK.load(TSV, "sw")
    from_jsonl = TASK.load(JSONL, "sw")
    assert from_tsv == from_jsonl == TASK.load(None, "sw")
    assert len(from_tsv) == 30 and [e.id for e in from_tsv] == [str(i) for i in range(1, 31)]
    assert [sum(e.label == k for e in from_tsv) for k in range(3)] == [10, 10, 10]
    english = TASK.load(None, "en")
    assert [(e.id, e.label) for e in english] == [(e.id, e.label) for e in from_tsv]  # parallel
    assert TASK.available_languages(None) == ["en", "sw"]
    assert TASK.available_languages(JSONL) == ["sw"] and TASK.available_languages(TSV) == ["en", "sw"]
    assert [e.id for e in TASK.load(TSV, "en", limit=4)] == ["1", "2", "3", "4"]


def test_jsonl_rows_with_language_fields_and_without_ids(tmp_path):
    path = tmp_path / "mixed.jsonl"
    rows = [{"premise": "P1", "hypothesis": "H1", "label": 2, "language": "sw"},
            {"premise": "P2", "hypothesis": "H2", "label": 0, "language": "en"},
            {"premise": "P3", "hypothesis": "H3", "label": "neutral", "language": "sw"}]  # fmt: skip
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert TASK.load(path, "sw") == [
        NLIExample("1", "P1", "H1", 2, "sw"),
        NLIExample("3", "P3", "H3", 1, "sw"),
    ]
    assert TASK.available_languages(path) == ["en", "sw"]


def _tsv(tmp_path, *lines):
    path = tmp_path / "xnli.test.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["language\tsentence1\tsentence2\tpairID", "sw\ta\tb\t1"], r":1: missing column 'gold_label'"),
        ([HEADER, "sw\tentailment\ta\tb\t1", "sw\tmaybe\ta\tb\t2"], r":3: gold_label 'maybe' is not one of"),
        ([HEADER, "sw\tneutral\ta\tb"], r":2: expected 5 tab-separated fields, found 4"),
        ([HEADER, "sw\tneutral\t\tb\t1"], r":2: field 'sentence1' is empty"),
        ([HEADER, "sw\tneutral\ta\tb\t1", "sw\tneutral\tc\td\t1"], r":3: id '1' repeats .*:2"),
        ([HEADER], r"no rows after the header"),
        (["", ""], r"empty file"),
        (
            [HEADER, "en\tneutral\ta\tb\t1", "fr\tneutral\ta\tb\t2"],
            r"no rows for language 'sw'; languages there: en, fr",
        ),
    ],
)
def test_tsv_errors_name_file_line_and_field(tmp_path, lines, message):
    path = _tsv(tmp_path, *lines)
    with pytest.raises(TaskDataError, match=message) as error:
        TASK.load(path, "sw")
    assert str(path) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"premise": "a", "hypothesis": "b", "label": 0}', '{"hypothesis": "b", "label": 0}'],
         r":2: missing field 'premise'"),
        (['{"premise": "a", "hypothesis": "b", "label": 5}'], r":1: label 5 is not 0, 1 or 2"),
        (['{"premise": "a", "hypothesis": "b"}'], r":1: missing field 'label'"),
        (['{"premise": "a", "hypothesis": "b", "label": 0}', "{oops"], r":2: not valid JSON"),
        (["", "  "], r"empty file"),
    ],
)  # fmt: skip
def test_jsonl_errors_name_file_line_and_field(tmp_path, lines, message):
    path = tmp_path / "xnli_sw.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TaskDataError, match=message) as error:
        TASK.load(path, "sw")
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_missing_language_split_and_folder_contents_are_named(tmp_path):
    with pytest.raises(TaskDataError, match=r"xnli_sw.jsonl: no rows for language 'en'; languages there: sw"):
        TASK.load(JSONL, "en")
    with pytest.raises(TaskDataError, match=r"no rows for language 'fr'; languages there: en, sw"):
        TASK.load(None, "fr")
    with pytest.raises(TaskDataError, match=r"no xnli.dev.tsv and no xnli_sw.jsonl for split validation; "
                       r"data files there: xnli.test.tsv, xnli_sw.jsonl"):  # fmt: skip
        TASK.load(None, "sw", split="dev")
    (tmp_path / "xnli_sw_validation.jsonl").write_text(JSONL.read_text())
    assert len(TASK.load(tmp_path, "sw", split="validation")) == 30


def test_hub_id_offline_says_to_download_without_touching_the_network(monkeypatch):
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("network must not be used"))
    with pytest.raises(
        TaskDataError, match=r"'facebook/xnli' is a hub id but the machine is offline.*XNLI-1.0.zip"
    ):
        TASK.load("facebook/xnli", "sw")


def test_hub_id_online_uses_load_dataset_with_the_language_config(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, name, split):
        calls.append((path, name, split))
        return [{"premise": "P", "hypothesis": "H", "label": 1}]

    for variable in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert TASK.load("facebook/xnli", "sw", split="dev") == [NLIExample("1", "P", "H", 1, "sw")]
    assert calls == [("facebook/xnli", "sw", "validation")]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"languages": ["sw", "xx"]},
            r"no lm-eval 0.4.13 XNLI template for 'xx'; languages with one: ar, bg",
        ),
        ({"split": "train"}, r"tasks.xnli.split train: XNLI is evaluated zero-shot"),
        ({"batch_size": 0}, r"tasks.xnli.batch_size"),
        ({"max_length": 1}, r"tasks.xnli.max_length"),
        ({"limit": -3}, r"tasks.xnli.limit"),
        ({"bootstrap_samples": "many"}, r"tasks.xnli.bootstrap_samples"),
        ({"languages": "sw", "extra": 1}, r"unknown option\(s\) extra"),
    ],
)
def test_config_validation(options, message):
    with pytest.raises(ConfigError, match=message):
        TASK.make_config(options)
    assert TASK.make_config({"languages": "en"}).languages == ("en",)


def test_xnli_has_no_fine_tuning_features():
    assert TASK.trainable is False
    with pytest.raises(ConfigError, match="xnli is evaluation-only"):
        TASK.training_features(TASK.load(None, "sw"), None, XNLIConfig())


# --- lm-eval 0.4.13 template and scorer --------------------------------------------------------------------


def test_template_words_are_lm_eval_0_4_13s_and_render_like_its_yamls():
    import lm_eval
    from lm_eval import utils as lm_utils
    from lm_eval.tasks.xnli.utils import LANGUAGES

    assert lm_eval.__version__ == "0.4.13"
    assert set(TEMPLATE_WORDS) == set(LANGUAGES)
    doc = {"premise": "Mvua ilinyesha jana", "hypothesis": "Ardhi ni kavu.", "label": 2}
    for language, words in TEMPLATE_WORDS.items():
        expected = LANGUAGES[language]
        keys = ("QUESTION_WORD", "ENTAILMENT_LABEL", "NEUTRAL_LABEL", "CONTRADICTION_LABEL")
        assert words == tuple(expected[k] for k in keys)
        spec = yaml.safe_load((_lm_eval_dir() / f"xnli_{language}.yaml").read_text(encoding="utf-8"))
        assert spec["doc_to_text"] == ""
        rendered = ast.literal_eval(lm_utils.apply_template(spec["doc_to_choice"], doc))
        ours = choices(NLIExample("1", doc["premise"], doc["hypothesis"], 2, language))
        assert ours == rendered, language


def test_empty_context_uses_bos_else_eos_as_lm_eval(tiny_model_dirs):
    from transformers import AutoTokenizer

    llama = AutoTokenizer.from_pretrained(tiny_model_dirs["llama"])
    qwen = AutoTokenizer.from_pretrained(tiny_model_dirs["qwen2"])
    assert prefix_token_id(llama) == llama.bos_token_id and qwen.bos_token_id is None
    assert prefix_token_id(qwen) == qwen.eos_token_id
    context, tokens = encode_empty_context(llama, " mbwa")
    assert context == [llama.bos_token_id] and tokens == llama(" mbwa", add_special_tokens=False)["input_ids"]
    # A continuation that already starts with the prefix token conditions on it instead.
    context, tokens = encode_empty_context(llama, "<s>mbwa")
    assert context == [llama.bos_token_id] and tokens == llama("mbwa", add_special_tokens=False)["input_ids"]


def test_batched_logliks_equal_one_sequence_at_a_time(tiny_dir):
    model, tokenizer = _load_tiny(tiny_dir)
    texts = [" mbwa", " paka ni mnyama", " the sea is big and blue", " maji"]
    batched = continuation_logliks(model, tokenizer, texts, batch_size=3, progress=False)
    for text, value in zip(texts, batched, strict=True):
        context, tokens = encode_empty_context(tokenizer, text)
        ids = torch.tensor([context + tokens])
        with torch.no_grad():
            logprobs = model(ids).logits[0, :-1].float().log_softmax(-1)  # (len - 1, vocab)
        expected = sum(float(logprobs[len(context) - 1 + j, t]) for j, t in enumerate(tokens))
        assert value == pytest.approx(expected, abs=1e-4)
    # With a one-token context nothing is ever truncated; a continuation longer than the model is refused
    # (lm-eval asserts the same).
    n_tokens = len(encode_empty_context(tokenizer, texts[2])[1])
    with pytest.raises(ConfigError, match=f"continuation of {n_tokens} tokens exceeds the model's 4"):
        continuation_logliks(model, tokenizer, texts[2:3], batch_size=1, max_length=4, progress=False)


# --- metrics ------------------------------------------------------------------------------------------------


def _rows(references, predictions):
    return [{"id": str(i), "reference": r, "prediction": p, "correct": int(r == p)}
            for i, (r, p) in enumerate(zip(references, predictions, strict=True))]  # fmt: skip


def test_macro_f1_by_hand_and_accuracy():
    # F1(entailment) = 2/3 (P 1, R 1/2), F1(neutral) = 2/3 (P 1/2, R 1), F1(contradiction) = 1 -> 7/9.
    rows = _rows(["entailment", "entailment", "neutral", "contradiction"],
                 ["entailment", "neutral", "neutral", "contradiction"])  # fmt: skip
    assert TASK.corpus_score("macro_f1", rows) == pytest.approx(7 / 9)
    assert TASK.corpus_score("accuracy", rows) == pytest.approx(3 / 4)
    # A subset without any contradiction, in either column: F1 over all three labels, 0 for the absent one
    # (not the mean over the two present labels, 2/3 · ... = 2/3).
    subset = rows[:3]
    assert TASK.corpus_score("macro_f1", subset) == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


def test_macro_f1_sufficient_statistics_equal_sklearn_on_any_resample():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    rows = _rows([LABELS[i] for i in rng.integers(0, 3, 60)], [LABELS[i] for i in rng.integers(0, 2, 60)])
    statistic = TASK.corpus_statistics("macro_f1", rows)
    for _ in range(5):
        idx = rng.integers(0, 60, 60)
        expected = f1_score(
            [rows[i]["reference"] for i in idx],
            [rows[i]["prediction"] for i in idx],
            labels=list(LABELS),
            average="macro",
            zero_division=0,
        )
        assert statistic.score_sum(statistic.stats[idx].sum(axis=0)) == pytest.approx(expected, abs=1e-12)


def _write_subset(path: Path, n: int) -> Path:
    lines = JSONL.read_text(encoding="utf-8").splitlines()[:n]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_evaluate_end_to_end_with_exact_and_bootstrap_intervals(tiny_llama_dir):
    from scipy.stats import binomtest
    from sklearn.metrics import f1_score

    model, tokenizer = _load_tiny(tiny_llama_dir)
    examples = TASK.load(None, "sw", limit=6)
    config = XNLIConfig(bootstrap_samples=200, batch_size=4)
    result = TASK.evaluate(model, tokenizer, examples, config, progress=False)
    assert (result.task, result.language, result.n, list(result.metrics)) == (
        "xnli",
        "sw",
        6,
        ["accuracy", "macro_f1"],
    )
    rows = result.predictions
    assert set(rows[0]) == {"id", "prediction", "reference", "correct", "accuracy", "loglik_entailment",
                            "loglik_neutral", "loglik_contradiction"}  # fmt: skip
    for row, example in zip(rows, examples, strict=True):
        logliks = [row[f"loglik_{label}"] for label in LABELS]
        assert (
            row["prediction"] == LABELS[int(np.argmax(logliks))] and row["reference"] == LABELS[example.label]
        )
    k = sum(row["correct"] for row in rows)
    exact = binomtest(k, 6).proportion_ci(confidence_level=0.95, method="exact")
    accuracy = result.metrics["accuracy"]
    assert (accuracy.score, accuracy.ci95_low, accuracy.ci95_high) == pytest.approx(
        (k / 6, exact.low, exact.high)
    )
    f1 = f1_score(
        [r["reference"] for r in rows],
        [r["prediction"] for r in rows],
        labels=list(LABELS),
        average="macro",
        zero_division=0,
    )
    assert result.metrics["macro_f1"].score == pytest.approx(f1)
    for name in TASK.metrics:
        assert TASK.corpus_score(name, rows) == pytest.approx(result.metrics[name].score)
    assert TASK.mean_metrics == {"accuracy": "correct"}
    assert np.mean([row["correct"] for row in rows]) == pytest.approx(result.metrics["accuracy"].score)
    assert json.loads(json.dumps(result.to_dict()))["n"] == 6


# --- equality with lm-evaluation-harness 0.4.13 ------------------------------------------------------------


def _run_lm_eval(model, tokenizer, data: Path, tmp_path: Path) -> list[dict]:
    """lm-eval's own xnli_sw task, offline, on a local jsonl: a task YAML that includes the installed one."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    task_dir = tmp_path / "lm_eval_tasks"
    task_dir.mkdir()
    spec = {
        "include": str(_lm_eval_dir() / "xnli_sw.yaml"),
        "task": "tli_xnli_sw_local",
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"validation": str(data)}},
        "training_split": None,  # the installed config names a train split the local file does not have
    }
    (task_dir / "tli_xnli_sw_local.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    harness = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8)
    output = lm_eval.simple_evaluate(
        model=harness,
        tasks=["tli_xnli_sw_local"],
        # Indexing only our folder saves ~7 s; `include` still reads the installed YAML by its path.
        task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
        log_samples=True,
    )
    return output["results"]["tli_xnli_sw_local"]["acc,none"], output["samples"]["tli_xnli_sw_local"]


def _assert_same_as_lm_eval(result, accuracy, samples):
    assert len(samples) == result.n
    assert result.metrics["accuracy"].score == pytest.approx(accuracy, abs=1e-12)
    for sample in sorted(samples, key=lambda s: s["doc_id"]):
        row = result.predictions[sample["doc_id"]]
        harness_logliks = [float(loglik) for loglik, _ in sample["filtered_resps"]]
        assert row["prediction"] == LABELS[int(np.argmax(harness_logliks))]
        assert row["correct"] == int(sample["acc"])
        ours = [row[f"loglik_{label}"] for label in LABELS]
        assert ours == pytest.approx(harness_logliks, abs=2e-3)
        assert sample["arguments"][0][0] == ""  # empty context, as the module docstring says


def test_scores_equal_lm_evaluation_harness_on_tiny_models(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = _load_tiny(tiny_dir)
    data = _write_subset(tmp_path / "xnli_sw.jsonl", 12)
    result = TASK.evaluate(
        model, tokenizer, TASK.load(data, "sw"), XNLIConfig(bootstrap_samples=50), progress=False
    )
    accuracy, samples = _run_lm_eval(model, tokenizer, data, tmp_path)
    _assert_same_as_lm_eval(result, accuracy, samples)


@pytest.mark.slow
def test_scores_equal_lm_evaluation_harness_on_the_default_model(tmp_path, monkeypatch):
    from tli.models import load_model

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_model()
    data = _write_subset(tmp_path / "xnli_sw.jsonl", 12)
    config = XNLIConfig(bootstrap_samples=50)
    result = TASK.evaluate(loaded.model, loaded.tokenizer, TASK.load(data, "sw"), config, progress=False)
    accuracy, samples = _run_lm_eval(loaded.model, loaded.tokenizer, data, tmp_path)
    _assert_same_as_lm_eval(result, accuracy, samples)
