"""Hostile input: every file reader either parses or says what is wrong in one line — never a traceback.

Property-based (hypothesis): arbitrary bytes and Unicode (BOMs, CRLF, NUL, mixed normalisation forms, right-to-left
text, very long lines) for the lexicon reader (TSV / CSV / JSON), the per-pair file of `tli stats` (CSV / JSON /
JSONL), YAML config files and experiment files, and the task datasets (XL-Sum jsonl, XNLI TSV / jsonl). Writing a
lexicon and reading it back is the identity.
"""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tli.errors import TliError
from tli.lexicon import Lexicon, Pair, read_lexicon, write_lexicon

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)

# Text that real files contain and readers trip on.
NASTY = st.sampled_from(
    [
        "\ufeff",
        "\r\n",
        "\r",
        "\x00",
        "\u200f",
        "\u202e",
        "עברית",
        "العربية",
        "e\u0301",
        "\u00e9",
        "\t",
        ",",
        '"',
        "#",
        "ng'ombe",
        "\u2028",
        " ",
        "\\",
        "{",
        "}",
        "[",
        "]",
        ":",
        "- ",
    ]
)
TEXT = st.lists(st.one_of(st.text(max_size=8), NASTY), max_size=12).map("".join)
LINES = st.lists(TEXT, max_size=8).map("\n".join)


def _one_line_error(call, path) -> None:
    """``call()`` parses, or raises a TliError whose message is one line naming the file."""
    try:
        call()
    except TliError as exc:
        message = str(exc)
        assert "\n" not in message.strip(), message
        assert path.name in message, message


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".json", ".txt"])
@SETTINGS
@given(content=st.one_of(LINES, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_lexicon_reader_parses_or_names_file_and_line(tmp_path, suffix, content):
    path = tmp_path / f"lexicon{suffix}"
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    _one_line_error(lambda: read_lexicon(path), path)


@SETTINGS
@given(data=st.binary(max_size=300))
def test_lexicon_reader_on_raw_bytes(tmp_path, data):
    path = tmp_path / "raw.tsv"
    path.write_bytes(data)
    _one_line_error(lambda: read_lexicon(path), path)


def test_lexicon_reader_refuses_a_10_mb_entry_naming_line_and_limit(tmp_path):
    from tli.limits import MAX_WORD_CHARS

    path = tmp_path / "long.tsv"
    path.write_text("paka\tcat\nmbwa\t" + "d" * 10_000_000 + "\n", encoding="utf-8")
    with pytest.raises(TliError) as exc:
        read_lexicon(path)
    message = str(exc.value)
    assert f"{path} line 2:" in message and "MAX_WORD_CHARS" in message and f"{MAX_WORD_CHARS}" in message
    assert len(message) < 400  # the entry is quoted shortened, not whole
    path.write_text("paka\tcat\nmbwa\t" + "d" * MAX_WORD_CHARS + "\n", encoding="utf-8")
    assert len(read_lexicon(path)) == 2  # at the limit: read


WORD = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\ufeff"),
        min_size=1,
        max_size=12,
    )
    .map(lambda s: " ".join(s.split()))
    .filter(bool)
)


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".json"])
@SETTINGS
@given(pairs=st.lists(st.tuples(WORD, WORD), min_size=1, max_size=12, unique=True), grouped=st.booleans())
def test_writing_and_reading_a_lexicon_is_the_identity(tmp_path, suffix, pairs, grouped):
    groups = (
        ["trained" if i % 2 == 0 else "control" for i in range(len(pairs))]
        if grouped
        else [None] * len(pairs)
    )
    if grouped and len({s for s, _ in pairs}) < len(pairs):
        groups = [None] * len(pairs)  # a source with two groups is refused by design
    lexicon = Lexicon([Pair(s, t, g) for (s, t), g in zip(pairs, groups, strict=True)], "sw", "en")
    path = tmp_path / f"round{suffix}"
    write_lexicon(lexicon, path)
    again = read_lexicon(path)
    assert [(p.source, p.target, p.group) for p in again] == [(p.source, p.target, p.group) for p in lexicon]
    assert (again.source_lang, again.target_lang) == ("sw", "en")


def test_mixed_normalisation_forms_are_distinct_words_not_a_crash(tmp_path):
    composed, decomposed = "caf\u00e9", unicodedata.normalize("NFD", "caf\u00e9")
    path = tmp_path / "nf.tsv"
    path.write_text(f"{composed}\tcoffee\n{decomposed}\tcoffee shop\n", encoding="utf-8")
    assert len(read_lexicon(path)) == 2


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl"])
@SETTINGS
@given(content=st.one_of(LINES, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_stats_reader_parses_or_names_the_file(tmp_path, suffix, content):
    from tli.stats import stats_from_csv

    path = tmp_path / f"pairs{suffix}"
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    _one_line_error(lambda: stats_from_csv(path, n_boot=100), path)


def test_stats_roundtrip_of_a_file_tli_writes(tmp_path):
    from tli.io import atomic_write_csv
    from tli.stats import read_paired

    rows = [
        {"source": s, "sim_pre": 0.1 * i, "sim_post": 0.1 * i + 0.05, "group": g}
        for i, (s, g) in enumerate(
            [("مرحبا", "trained"), ("e\u0301", "trained"), ("a,b", "control"), ('"q"', "control")]
        )
    ]
    path = atomic_write_csv(tmp_path / "pairs.csv", rows, ["source", "sim_pre", "sim_post", "group"])
    groups = read_paired(path, pre="sim_pre", post="sim_post")
    assert [list(groups[g].pre) for g in ("trained", "control")] == [[0.0, 0.1], [0.2, 0.30000000000000004]]


@SETTINGS
@given(content=st.one_of(LINES, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_yaml_config_reader_parses_or_names_the_file(tmp_path, content):
    from tli.config import load_options_file

    path = tmp_path / "config.yaml"
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    _one_line_error(lambda: load_options_file(str(path)), path)


@SETTINGS
@given(content=st.one_of(LINES, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_experiment_reader_parses_or_names_the_file(tmp_path, content):
    from tli.compare import parse_experiment

    path = tmp_path / "experiment.yaml"
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    _one_line_error(lambda: parse_experiment(path, check_device=False), path)


@pytest.mark.parametrize(
    "task, name", [("xlsum", "swahili_test.jsonl"), ("xnli", "xnli.test.tsv"), ("xnli", "xnli_sw.jsonl")]
)
@SETTINGS
@given(content=st.one_of(LINES, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_task_dataset_readers_parse_or_name_file_and_line(tmp_path, task, name, content):
    from tli.tasks import get_task

    path = tmp_path / name
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    _one_line_error(lambda: get_task(task).load(str(path), "sw"), path)


def test_a_valid_row_among_hostile_ones_names_the_bad_line(tmp_path):
    from tli.tasks import get_task

    path = tmp_path / "xnli_sw.jsonl"
    good = json.dumps({"premise": "a", "hypothesis": "b", "label": 0})
    path.write_text(good + "\n" + "\x00\u202e{broken\n", encoding="utf-8")
    with pytest.raises(TliError, match=r":2:"):
        get_task("xnli").load(str(path), "sw")


# --- retrieval data: TREC files and the retrieval task datasets ---------------------------------------------

TREC_LINES = st.lists(
    st.lists(
        st.one_of(TEXT, st.sampled_from(["q1", "Q0", "d1", "0", "1", "0.5", "nan", "-1"])), max_size=7
    ).map(" ".join),
    max_size=6,
).map("\n".join)


@pytest.mark.parametrize("reader", ["read_run", "read_qrels"])
@SETTINGS
@given(content=st.one_of(TREC_LINES, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_trec_readers_parse_or_name_file_and_line(tmp_path, reader, content):
    from tli.retrieval import trec

    path = tmp_path / "file.trec"
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    _one_line_error(lambda: getattr(trec, reader)(path), path)


@pytest.mark.parametrize(
    "task, name, language",
    [
        ("tydi", "tydiqa-goldp-v1.1-dev.json", "sw"),
        ("mrtydi", "mrtydi-sw.jsonl", "sw"),
        ("xquad", "xquad.en.json", "en"),
    ],
)
@SETTINGS
@given(content=st.one_of(LINES, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_retrieval_dataset_readers_parse_or_name_the_file(tmp_path, task, name, language, content):
    from tli.tasks import get_task

    path = tmp_path / name
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    where = tmp_path if task == "xquad" else path  # XQuAD reads DIR/xquad.<lang>.json
    _one_line_error(lambda: get_task(task).load(str(where), language), path)


# --- hostile files through whole commands: a result or one line, never a traceback ------------------------------

DEEP = st.integers(min_value=65, max_value=3000).map(lambda n: "[" * n + "]" * n)
LONG = st.integers(min_value=201, max_value=5000).map(lambda n: "w" * n)
HOSTILE_LINES = st.lists(st.one_of(TEXT, DEEP, LONG), max_size=8).map("\n".join)
COMMAND_SETTINGS = settings(SETTINGS, max_examples=25)


def _result_or_one_line(argv: list[str], capsys, name: str) -> int:
    """Run the CLI in-process: exit 0, or exit 2 with exactly one `tli: error:` line naming the file."""
    from tli.cli import main

    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    if code != 0:
        errors = [line for line in err.splitlines() if line.startswith("tli: error:")]
        assert code == 2 and len(errors) == 1, err
        assert name in errors[0], errors[0]
        from tli.limits import MAX_MESSAGE_CHARS

        assert len(errors[0]) <= MAX_MESSAGE_CHARS + len("tli: error: "), errors[0][:200]
    return code


def test_a_json_lexicon_nested_100000_deep_through_read_lexicon_and_tli_scan(
    tmp_path, tiny_llama_dir, capsys
):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(TliError, match=r"deep\.json line 1: nested deeper than 64 levels.*MAX_NESTING"):
        read_lexicon(path)
    argv = ["scan", "--lexicon", str(path), "--model", str(tiny_llama_dir), "--out", str(tmp_path / "o")]
    assert _result_or_one_line(argv, capsys, "deep.json") == 2
    assert not (tmp_path / "o" / "results.json").exists()


def test_a_10_mb_source_word_through_tli_scan(tmp_path, tiny_llama_dir, capsys):
    path = tmp_path / "long.tsv"
    path.write_text("s" * 10_000_000 + "\tdog\npaka\tcat\n", encoding="utf-8")
    argv = ["scan", "--lexicon", str(path), "--model", str(tiny_llama_dir), "--out", str(tmp_path / "o")]
    assert _result_or_one_line(argv, capsys, "long.tsv") == 2
    from tli.cli import main

    main(argv)
    assert "line 1: the source" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".json"])
@COMMAND_SETTINGS
@given(content=st.one_of(HOSTILE_LINES, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_tli_scan_on_hostile_lexicons(tmp_path, tiny_llama_dir, capsys, suffix, content):
    path = tmp_path / f"lexicon{suffix}"
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    argv = ["scan", "--lexicon", str(path), "--model", str(tiny_llama_dir), "--out", str(tmp_path / "o")]
    _result_or_one_line([*argv, "--overwrite", "--batch-size", "4"], capsys, path.name)


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl"])
@COMMAND_SETTINGS
@given(content=st.one_of(HOSTILE_LINES, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_tli_stats_on_hostile_files(tmp_path, capsys, suffix, content):
    path = tmp_path / f"pairs{suffix}"
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    _result_or_one_line(["stats", str(path), "--n-boot", "100"], capsys, path.name)


def test_tli_stats_on_deep_and_long_files(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    assert _result_or_one_line(["stats", str(deep)], capsys, "deep.json") == 2
    long = tmp_path / "long.csv"
    long.write_text(
        "source,sim_pre,sim_post\n" + "x" * 10_000_000 + ",0.1,0.2\nb,0.2,0.3\n", encoding="utf-8"
    )
    assert _result_or_one_line(["stats", str(long)], capsys, "long.csv") == 2
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("source,sim_pre,sim_post\na," + "9" * 10_000_000 + "z,0.2\n", encoding="utf-8")
    assert _result_or_one_line(["stats", str(garbage)], capsys, "garbage.csv") == 2


HOSTILE_YAML = st.one_of(
    HOSTILE_LINES,
    DEEP.map(lambda d: f"models: {d}\n"),
    st.integers(min_value=6, max_value=9).map(
        lambda depth: (
            "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, depth))
        )
    ),
)


@COMMAND_SETTINGS
@given(content=HOSTILE_YAML)
def test_tli_compare_dry_run_on_hostile_experiment_files(tmp_path, capsys, content):
    path = tmp_path / "experiment.yaml"
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    _result_or_one_line(["compare", str(path), "--dry-run"], capsys, path.name)


@COMMAND_SETTINGS
@given(content=HOSTILE_YAML)
def test_a_hostile_config_file_is_one_line(tmp_path, capsys, content):
    path = tmp_path / "config.yaml"
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    _result_or_one_line(["stats", str(path), "--config", str(path)], capsys, path.name)


def test_a_billion_laughs_experiment_is_refused_before_it_expands(tmp_path, capsys):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert _result_or_one_line(["compare", str(path), "--dry-run"], capsys, "laughs.yaml") == 2
    from tli.compare import parse_experiment

    with pytest.raises(TliError, match=r"line 5: more than 100,000 values.*MAX_YAML_NODES"):
        parse_experiment(path)


@pytest.mark.parametrize(
    "task, name, options",
    [
        ("xlsum", "my_articles.jsonl", "languages: [sw]"),
        ("xnli", "nli.tsv", "languages: [sw]"),
        ("xnli", "nli.jsonl", "languages: [sw]"),
    ],
)
@COMMAND_SETTINGS
@given(content=st.one_of(HOSTILE_LINES, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_tli_compare_dry_run_on_hostile_task_data(tmp_path, capsys, task, name, options, content):
    data = tmp_path / name
    data.write_bytes(content.encode("utf-8", "surrogatepass"))
    path = tmp_path / "experiment.yaml"
    path.write_text(f"models: [default]\nstrategies: [none]\ntasks:\n  {task}: {{path: {name}, {options}}}\n")
    _result_or_one_line(["compare", str(path), "--dry-run"], capsys, name)


def test_an_over_long_article_is_cut_with_a_warning_and_a_long_summary_refused(tmp_path, caplog):
    from tli.limits import MAX_TEXT_CHARS
    from tli.tasks import get_task

    path = tmp_path / "articles.jsonl"
    row = {"id": "1", "url": "", "title": "t", "summary": "short", "text": "a " * MAX_TEXT_CHARS}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with caplog.at_level("WARNING"):
        (example,) = get_task("xlsum").load(str(path), "sw")
    assert len(example.text) == MAX_TEXT_CHARS
    assert f"{path}:1" in caplog.text and "MAX_TEXT_CHARS" in caplog.text
    row.update(text="fine", summary="s" * (MAX_TEXT_CHARS + 1))
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(TliError, match=r"articles\.jsonl:1: field 'summary' is 1,000,001 characters long"):
        get_task("xlsum").load(str(path), "sw")


def test_a_vocabulary_with_an_absurd_word_names_the_line(tmp_path):
    from tli.bli import read_word_list

    path = tmp_path / "vocab.txt"
    path.write_text("dog\ncat\n" + "w" * 10_000 + "\n", encoding="utf-8")
    with pytest.raises(TliError, match=r"vocab\.txt line 3: the entry is 10,000 characters long \(limit 200"):
        read_word_list(path)


ENTRY = st.one_of(
    WORD,
    st.lists(
        NASTY.filter(lambda s: s.strip() and s not in ("\t", "#", '"', "\r", "\n", "\r\n")),
        min_size=1,
        max_size=4,
    )
    .map(lambda parts: "x" + "".join(parts))
    .filter(lambda s: "\t" not in s and "\n" not in s and "\r" not in s),
    st.integers(min_value=100, max_value=200).map(lambda n: "ndefu" * (n // 5)),
)


@settings(SETTINGS, max_examples=5)
@given(pairs=st.lists(st.tuples(ENTRY, ENTRY), min_size=2, max_size=6, unique_by=lambda p: p[0]))
def test_tli_scan_runs_on_lexicons_of_hostile_words(tmp_path, tiny_llama_dir, capsys, pairs):
    """Lexicons that parse, of words that are RTL, NUL-laden, combining or 200 characters long: the scan runs
    on the tiny model, or says in one line why it cannot (e.g. no token left for a word)."""
    path = tmp_path / "words.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8", errors="surrogatepass")
    argv = ["scan", "--lexicon", str(path), "--model", str(tiny_llama_dir), "--out", str(tmp_path / "o")]
    _result_or_one_line([*argv, "--overwrite"], capsys, path.name)
