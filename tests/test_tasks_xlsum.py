"""XL-Sum task: loaders and their errors, metrics against rouge-score and sacrebleu, fine-tuning features,
end-to-end evaluation on a tiny model, and the task registry."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer as rs

from tli.errors import ConfigError
from tli.tasks import TASKS, TaskDataError, XLSumConfig, bootstrap_ci, get_task, samples_dir
from tli.tasks.generation import first_paragraph, truncate_tokens
from tli.tasks.overlap_metrics import CorpusStatistic, corpus_bleu, rouge_f1, unicode_words
from tli.tasks.xlsum import DEFAULT_PROMPT, SummaryExample, language_code, xlsum_name

TASK = get_task("xlsum")
ROW = {"id": "a1", "url": "https://example.org/a1", "title": "Kichwa", "summary": "Muhtasari mfupi.",
       "text": "Habari ndefu kuhusu mvua na mafuriko."}  # fmt: skip


def _jsonl(path, rows, raw_lines=()):
    lines = [json.dumps(r, ensure_ascii=False) for r in rows] + list(raw_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tiny_tokenizer(tiny_llama_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama_dir)


# --- registry and config ----------------------------------------------------------------------------------


def test_registry_has_every_task_and_rejects_unknown_names():
    assert set(TASKS) == {"xlsum", "xnli", "xquad", "tydi", "mrtydi"}
    assert get_task("xlsum").metrics == ("rouge1", "rouge2", "rougeL", "bleu", "chrf")
    with pytest.raises(
        ConfigError, match=r"unknown task 'squad'; valid tasks: mrtydi, tydi, xlsum, xnli, xquad"
    ):
        get_task("squad")


def test_yaml_block_maps_onto_the_config():
    config = TASK.make_config({"path": "data/xlsum", "languages": ["sw", "en"], "max_new_tokens": 32,
                               "chat_template": False, "split": "val"})  # fmt: skip
    assert config.languages == ("sw", "en") and config.max_new_tokens == 32
    assert config.chat_template == "no"  # YAML `no` arrives as False
    assert config.split == "validation"
    with pytest.raises(ConfigError, match=r"unknown option\(s\) max_tokens; valid options: path, languages"):
        TASK.make_config({"max_tokens": 3})


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("languages", [], "tasks.xlsum.languages"),
        ("languages", ["sw", ""], "tasks.xlsum.languages"),
        ("split", "dev2", "tasks.xlsum.split"),
        ("limit", 0, "tasks.xlsum.limit"),
        ("prompt", "Summarize this.", "tasks.xlsum.prompt"),
        ("prompt", "Summarize {text} in {style}", "tasks.xlsum.prompt"),
        ("chat_template", "maybe", "tasks.xlsum.chat_template 'maybe'"),
        ("max_input_tokens", 0, "tasks.xlsum.max_input_tokens"),
        ("max_new_tokens", 1.5, "tasks.xlsum.max_new_tokens"),
        ("batch_size", True, "tasks.xlsum.batch_size"),
        ("bleu_tokenize", "words", "tasks.xlsum.bleu_tokenize 'words'"),
        ("bootstrap_samples", 0, "tasks.xlsum.bootstrap_samples"),
        ("seed", -1, "tasks.xlsum.seed"),
        ("path", "", "tasks.xlsum.path"),
    ],
)
def test_config_rejects_bad_values_naming_the_option(option, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        XLSumConfig(**{option: value})


def test_language_codes_map_to_xlsum_names():
    assert [xlsum_name(c) for c in ("sw", "SW", "swahili", "am", "pcm", "rn", "zh-tw")] == [
        "swahili", "swahili", "swahili", "amharic", "pidgin", "kirundi", "chinese_traditional"
    ]  # fmt: skip
    assert language_code("yoruba") == "yo" and language_code("so") == "so"
    with pytest.raises(ConfigError, match="no separate Kinyarwanda.*pass rn"):
        xlsum_name("rw")


# --- loading -----------------------------------------------------------------------------------------------


def test_shipped_samples_load_by_code_or_name_and_split():
    test = TASK.load(None, "sw")
    assert len(test) == 12 and {e.language for e in test} == {"sw"}
    assert len({e.id for e in test}) == 12
    assert [len(TASK.load(None, "swahili", split=s)) for s in ("train", "val", "validation")] == [24, 8, 8]
    assert [len(TASK.load(None, "en", split=s)) for s in ("train", "test")] == [12, 8]
    assert TASK.available_languages(None) == ["en", "sw"]
    for example in TASK.load(None, "sw", split="train") + test:
        assert 60 <= len(example.text.split()) <= 120
        assert example.url.startswith("https://example.org/")


def test_single_file_and_limit(tmp_path):
    file = samples_dir("xlsum") / "swahili_test.jsonl"
    full = TASK.load(file, "sw")
    assert [e.id for e in TASK.load(str(file), "sw", limit=3)] == [e.id for e in full[:3]]
    assert TASK.available_languages(file) == ["sw"]
    with pytest.raises(TaskDataError, match=r"swahili_test.jsonl: this file is the test split, not train"):
        TASK.load(file, "sw", split="train")
    with pytest.raises(TaskDataError, match=r"this file holds swahili, not 'en'"):
        TASK.load(file, "en")
    plain = _jsonl(tmp_path / "mine.jsonl", [ROW])  # a name that says nothing: any language, any split
    assert TASK.load(plain, "so", split="train")[0] == SummaryExample(**ROW, language="so")
    assert TASK.available_languages(plain) == []


def test_missing_field_names_file_and_line(tmp_path):
    broken = {k: v for k, v in ROW.items() if k != "summary"}
    path = _jsonl(tmp_path / "swahili_test.jsonl", [ROW | {"id": "a0"}, broken])
    with pytest.raises(TaskDataError) as error:
        TASK.load(tmp_path, "sw")
    message = str(error.value)
    assert f"{path}:2: missing field 'summary'" in message and "\n" not in message


@pytest.mark.parametrize(
    ("rows", "raw", "message"),
    [
        ([ROW], ["{not json"], r":2: not valid JSON"),
        ([ROW | {"text": 42}], [], r":1: field 'text' must be a string, got int"),
        ([ROW | {"summary": "  "}], [], r":1: field 'summary' is empty"),
        ([ROW, ROW], [], r":2: id 'a1' repeats .*:1"),
        ([], ["[1, 2]"], r":1: expected a JSON object, got list"),
        ([], [], r"empty file \(no rows\)"),
    ],
)
def test_bad_rows_give_one_line_errors(tmp_path, rows, raw, message):
    path = _jsonl(tmp_path / "swahili_test.jsonl", rows, raw)
    if not rows and not raw:
        path.write_text("\n\n")
    with pytest.raises(TaskDataError, match=message) as error:
        TASK.load(path, "sw")
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_language_or_split_the_folder_lacks_lists_what_it_has(tmp_path):
    languages = r"languages there: en \(english\), sw \(swahili\)"
    with pytest.raises(TaskDataError, match=r"no XL-Sum files for language 'fr'.*" + languages):
        TASK.load(None, "fr")
    with pytest.raises(
        TaskDataError, match=r"no english_val.jsonl for split validation; .*english: test, train"
    ):
        TASK.load(None, "en", split="validation")
    with pytest.raises(TaskDataError, match="no such file or folder"):
        TASK.load(tmp_path / "nope" / "swahili_test.jsonl", "sw")


def test_hub_id_offline_says_to_download_without_touching_the_network(monkeypatch):
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("network must not be used"))
    with pytest.raises(TaskDataError) as error:
        TASK.load("csebuetnlp/xlsum", "sw")
    message = str(error.value)
    assert "'csebuetnlp/xlsum' is a hub id but the machine is offline" in message
    assert "swahili_test.jsonl" in message and "pass its local path" in message and "\n" not in message
    assert len(TASK.available_languages("csebuetnlp/xlsum")) == 45


def test_hub_id_online_uses_load_dataset_with_the_xlsum_config(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, name, split):
        calls.append((path, name, split))
        return [ROW, ROW | {"id": "a2"}]

    for variable in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    examples = TASK.load("csebuetnlp/xlsum", "sw", split="val", limit=1)
    assert calls == [("csebuetnlp/xlsum", "swahili", "validation")]
    assert examples == [SummaryExample(**ROW, language="sw")]

    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'csebuetnlp/xlsum' on the Hub\nsecond line")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(TaskDataError) as error:
        TASK.load("csebuetnlp/xlsum", "sw")
    assert "cannot load xlsum data 'csebuetnlp/xlsum' (config swahili, split test)" in str(error.value)
    assert "Couldn't reach" in str(error.value) and "\n" not in str(error.value)


# --- metrics against the libraries ------------------------------------------------------------------------

ASCII_PAIRS = [
    ("The cat sat on the mat.", "A cat was sitting on the mat!"),
    ("Prices rose by 20% in 2023, officials said", "officials said prices rose 20 percent in 2023"),
    ("snake_case and CamelCase words", "Snake case and camel-case words."),
    ("mbwa mkubwa analala nje", "Mbwa mdogo analala ndani ya nyumba."),
    ("", "nothing predicted"),
]


def test_rouge_equals_rouge_score_default_on_ascii_text():
    ours = rouge_f1([p for p, _ in ASCII_PAIRS], [r for _, r in ASCII_PAIRS])
    default = rs.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    for i, (prediction, reference) in enumerate(ASCII_PAIRS):
        expected = default.score(reference, prediction)
        for name in ("rouge1", "rouge2", "rougeL"):
            assert ours[name][i] == pytest.approx(expected[name].fmeasure, abs=1e-12)


def test_rouge_scores_non_latin_scripts_where_the_default_gives_zero():
    amharic = ("ዝናብ በከተማዋ ጎርፍ አስከተለ", "ከባድ ዝናብ በከተማዋ ጎርፍ አስከተለ")
    arabic = ("أمطار غزيرة في المدينة", "أمطار غزيرة تسببت في فيضانات في المدينة")
    default = rs.RougeScorer(["rouge1"], use_stemmer=False)
    for prediction, reference in (amharic, arabic):
        assert default.score(reference, prediction)["rouge1"].fmeasure == 0.0
        assert rouge_f1([prediction], [reference])["rouge1"][0] > 0.5


def test_unicode_words_keeps_combining_marks_whole():
    # Python's \w+ splits Devanagari at vowel signs: ['ह', 'न', 'द', 'भ', 'ष'].
    assert unicode_words("हिन्दी भाषा") == ["हिन्दी", "भाषा"]
    assert unicode_words("Café_au-lait, 2024!") == ["café", "au", "lait", "2024"]


def test_rouge_by_hand():
    # prediction 3 tokens, reference 4, unigram overlap {mbwa, analala} = 2: P = 2/3, R = 1/2, F = 4/7;
    # no shared bigram; LCS = 2 as well.
    scores = rouge_f1(["mbwa mkubwa analala"], ["Mbwa mdogo analala nje."])
    assert scores["rouge1"][0] == pytest.approx(4 / 7)
    assert scores["rouge2"][0] == 0.0
    assert scores["rougeL"][0] == pytest.approx(4 / 7)
    # Ge'ez script: prediction 2 tokens, reference 1, overlap 1: P = 1/2, R = 1, F = 2/3.
    assert rouge_f1(["ሰላም ዓለም"], ["ሰላም"])["rouge1"][0] == pytest.approx(2 / 3)


HYPS = [
    "Mvua kubwa imesababisha mafuriko mjini.",
    "Wakulima wanaomba ruzuku ya mbolea.",
    "Timu imeshinda.",
]
REFS = [
    "Mvua kubwa imesababisha mafuriko Mombasa.",
    "Wakulima wa kahawa wanaomba ruzuku.",
    "Timu ya taifa imeshinda kombe.",
]


def _rows(hyps, refs):
    return [{"id": str(i), "prediction": h, "reference": r, "rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
            for i, (h, r) in enumerate(zip(hyps, refs, strict=True))]  # fmt: skip


def test_bleu_and_chrf_equal_sacrebleu_corpus_scores():
    rows = _rows(HYPS, REFS)
    assert TASK.corpus_score("bleu", rows) == pytest.approx(
        sacrebleu.corpus_bleu(HYPS, [REFS]).score, abs=1e-9
    )
    assert TASK.corpus_score("chrf", rows) == pytest.approx(
        sacrebleu.corpus_chrf(HYPS, [REFS]).score, abs=1e-9
    )
    char = XLSumConfig(bleu_tokenize="char")
    expected = sacrebleu.corpus_bleu(HYPS, [REFS], tokenize="char").score
    assert TASK.corpus_score("bleu", rows, char) == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ConfigError, match="no metric 'meteor'"):
        TASK.corpus_score("meteor", rows)


def test_resampled_corpus_statistics_equal_sacrebleu_on_the_resampled_corpus():
    indices = np.array([2, 0, 2, 1, 0])
    for metric, library in (("bleu", lambda h, r: corpus_bleu(h, r, "13a")),
                            ("chrf", lambda h, r: sacrebleu.corpus_chrf(h, [r]).score)):  # fmt: skip
        statistic = CorpusStatistic(metric, HYPS, REFS, "13a")
        resampled = library([HYPS[i] for i in indices], [REFS[i] for i in indices])
        assert statistic(indices) == pytest.approx(resampled, abs=1e-9)
        assert statistic(np.arange(3)) == pytest.approx(library(HYPS, REFS), abs=1e-9)


def test_bootstrap_ci_matches_the_project_bootstrap_of_the_mean():
    from tli.stats import bootstrap_ci_mean

    x = np.random.default_rng(1).normal(size=40)
    ours = bootstrap_ci(lambda idx: float(x[idx].mean()), x.size, n_resamples=500, seed=3)
    assert ours == pytest.approx(bootstrap_ci_mean(x, n_boot=500, rng=3), abs=1e-12)
    assert bootstrap_ci(lambda idx: 7.0, 5, n_resamples=50, seed=0) == (7.0, 7.0)
    assert all(math.isnan(v) for v in bootstrap_ci(lambda idx: 1.0, 1, n_resamples=50, seed=0))


# --- prompts and fine-tuning features ---------------------------------------------------------------------


def test_first_paragraph_and_truncation(tiny_tokenizer):
    assert first_paragraph("\n  Mvua kubwa\nimenyesha.\n\nPili.") == "Mvua kubwa imenyesha."
    assert first_paragraph("  \n ") == ""
    text = "mbwa paka maji moto nyumba kitabu mti jua"
    cut = truncate_tokens(tiny_tokenizer, text, 3)
    assert len(tiny_tokenizer(cut, add_special_tokens=False)["input_ids"]) <= 3 and text.startswith(
        cut.strip()
    )
    assert truncate_tokens(tiny_tokenizer, text, 1000) == text


def test_default_prompt_names_the_language_and_custom_prompts_take_the_title(tiny_tokenizer):
    example = TASK.load(None, "sw")[0]
    prompt, chat = TASK.prompt(tiny_tokenizer, example, XLSumConfig(max_input_tokens=10_000))
    assert not chat and prompt == DEFAULT_PROMPT.format(text=example.text, language="Swahili")
    custom = XLSumConfig(prompt="{title}\n{text}\nTL;DR:", max_input_tokens=10_000)
    assert TASK.prompt(tiny_tokenizer, example, custom)[0] == f"{example.title}\n{example.text}\nTL;DR:"


@pytest.mark.parametrize("chat", [False, True])
def test_training_features_mask_the_prompt_exactly(tiny_tokenizer, chat):
    if chat:
        tiny_tokenizer.chat_template = (
            "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<s>assistant:{% endif %}"
        )
    examples = TASK.load(None, "sw", split="train", limit=3)
    config = XLSumConfig(max_input_tokens=20)
    features = TASK.training_features(examples, tiny_tokenizer, config)
    assert len(features) == 3
    for example, feature in zip(examples, features, strict=True):
        prompt, used_chat = TASK.prompt(tiny_tokenizer, example, config)
        assert used_chat is chat
        prompt_ids = tiny_tokenizer(prompt, add_special_tokens=not chat)["input_ids"]
        k = len(prompt_ids)
        assert set(feature) == {"input_ids", "labels"}
        assert feature["input_ids"][:k] == prompt_ids
        assert feature["labels"][:k] == [-100] * k
        assert feature["labels"][k:] == feature["input_ids"][k:]
        answer = (example.summary if chat else " " + example.summary) + tiny_tokenizer.eos_token
        assert tiny_tokenizer.decode(feature["input_ids"][k:]) == answer
        assert feature["input_ids"][-1] == tiny_tokenizer.eos_token_id


def test_chat_template_yes_without_one_is_an_error(tiny_tokenizer):
    example = TASK.load(None, "sw", limit=1)[0]
    with pytest.raises(ConfigError, match="no chat template"):
        TASK.prompt(tiny_tokenizer, example, XLSumConfig(chat_template="yes"))


# --- end to end on a tiny model ---------------------------------------------------------------------------


def test_evaluate_end_to_end_on_a_tiny_model(tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    config = XLSumConfig(max_input_tokens=24, max_new_tokens=6, batch_size=2, bootstrap_samples=200)
    examples = TASK.load(None, "sw", limit=3)
    padding_side = tokenizer.padding_side
    result = TASK.evaluate(model, tokenizer, examples, config, progress=False)
    assert tokenizer.padding_side == padding_side  # left padding only during generation
    assert (result.task, result.language, result.n) == ("xlsum", "sw", 3)
    assert list(result.metrics) == ["rouge1", "rouge2", "rougeL", "bleu", "chrf"]
    assert [row["id"] for row in result.predictions] == [e.id for e in examples]
    assert [row["reference"] for row in result.predictions] == [e.summary for e in examples]
    for name, score in result.metrics.items():
        assert score.ci95_low <= score.ci95_high
        assert TASK.corpus_score(name, result.predictions, config) == pytest.approx(score.score, abs=1e-12)
        if name in TASK.mean_metrics:
            column = [row[TASK.mean_metrics[name]] for row in result.predictions]
            assert float(np.mean(column)) == pytest.approx(score.score, abs=1e-12)
        assert all(name in row for row in result.predictions)
    assert (
        json.loads(json.dumps(result.to_dict()))["metrics"]["rouge1"]["score"]
        == result.metrics["rouge1"].score
    )


@pytest.mark.slow
def test_evaluate_on_the_default_model_writes_swahili_summaries():
    from tli.models import load_model

    loaded = load_model()
    config = XLSumConfig(max_new_tokens=32, bootstrap_samples=200)
    result = TASK.evaluate(
        loaded.model, loaded.tokenizer, TASK.load(None, "sw", limit=4), config, progress=False
    )
    assert result.n == 4 and all(row["prediction"] for row in result.predictions)
    assert all(0.0 <= result.metrics[m].score <= 1.0 for m in ("rouge1", "rouge2", "rougeL"))
