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


def test_lexicon_reader_on_a_10_mb_line(tmp_path):
    path = tmp_path / "long.tsv"
    path.write_text("mbwa\t" + "d" * 10_000_000 + "\npaka\tcat\n", encoding="utf-8")
    lexicon = read_lexicon(path)
    assert len(lexicon) == 2 and len(lexicon.pairs[0].target) == 10_000_000


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
