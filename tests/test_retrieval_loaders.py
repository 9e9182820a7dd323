"""Retrieval loaders: XQuAD, TyDi QA GoldP, Mr. TyDi / MIRACL in their official formats, and their errors."""

import gzip
import json

import pytest

from tli.errors import TliError
from tli.tasks import get_task
from tli.tasks.base import TaskDataError

# -- the shipped samples ----------------------------------------------------------------------------------


def test_shipped_samples_load_in_every_format():
    xquad = get_task("xquad").load(None, "de-en")
    assert (len(xquad), len(xquad.corpus), xquad.query_language, xquad.passage_language) == (
        16,
        8,
        "de",
        "en",
    )
    # cross-lingual: a German question's relevant passage is the English paragraph at the same position
    german = get_task("xquad").load(None, "de")
    assert xquad.qrels == german.qrels and xquad.corpus.texts != german.corpus.texts
    tydi = get_task("tydi").load(None, "sw")
    assert len(tydi) == 30 and all(tydi.relevant(q.id) for q in tydi)
    assert get_task("tydi").available_languages(None) == ["en", "sw"]
    mrtydi = get_task("mrtydi").load(None, "sw")
    assert (len(mrtydi), len(mrtydi.corpus)) == (30, 53)
    assert mrtydi.corpus.unscorable() == ["9003#0"]  # an empty passage is kept and counted, not dropped
    assert mrtydi.describe()["unscorable_passages"] == 1
    train = get_task("mrtydi").load(None, "sw", split="train", limit=5)
    assert len(train) == 5 and len(train.corpus) == 53  # limit cuts queries, never the corpus


def test_xquad_has_no_swahili_and_says_where_to_go():
    with pytest.raises(TaskDataError) as error:
        get_task("xquad").load(None, "sw-en")
    message = str(error.value)
    assert "XQuAD has no Swahili" in message and "TyDi QA GoldP" in message and "Mr. TyDi" in message
    with pytest.raises(TaskDataError, match=r"no xquad.fr.json; languages there: de, en, es"):
        get_task("xquad").load(None, "fr-en")


def _squad(paragraphs, title="T"):
    return {"version": "1.1", "data": [{"title": title, "paragraphs": paragraphs}]}


def test_xquad_files_must_be_parallel_and_well_formed(tmp_path):
    para = {"context": "Der Rhein.", "qas": [{"id": "q1", "question": "Wo?", "answers": []}]}
    (tmp_path / "xquad.de.json").write_text(json.dumps(_squad([para, para | {"context": "Zwei."}])))
    (tmp_path / "xquad.en.json").write_text(json.dumps(_squad([{"context": "The Rhine.", "qas": []}])))
    with pytest.raises(TaskDataError, match="repeats data\\[0\\].paragraphs\\[0\\].qas\\[0\\]"):
        get_task("xquad").load(str(tmp_path), "de-en")
    other = para | {"qas": [{"id": "q2", "question": "Was?", "answers": []}]}
    (tmp_path / "xquad.de.json").write_text(json.dumps(_squad([para, other])))
    with pytest.raises(TaskDataError, match="no parallel paragraph data\\[0\\].paragraphs\\[1\\]"):
        get_task("xquad").load(str(tmp_path), "de-en")
    (tmp_path / "xquad.de.json").write_text(json.dumps(_squad([{"context": "x", "qas": [{"id": "q1"}]}])))
    with pytest.raises(
        TaskDataError, match=r"data\[0\]\.paragraphs\[0\]\.qas\[0\]: field 'question' is missing"
    ):
        get_task("xquad").load(str(tmp_path), "de")
    (tmp_path / "xquad.de.json").write_text('{"data": [\n  {"title": }\n]}')
    with pytest.raises(TaskDataError, match=r"xquad.de.json:2: not valid JSON"):
        get_task("xquad").load(str(tmp_path), "de")


def test_tydi_reads_one_language_and_merges_duplicate_passages(tmp_path):
    same = "Dodoma ni mji mkuu."
    data = {"data": [
        {"title": "a", "paragraphs": [{"context": same, "qas": [{"id": "swahili-1-0", "question": "Mji mkuu?"}]}]},
        {"title": "a", "paragraphs": [{"context": same, "qas": [{"id": "swahili-2-0", "question": "Bunge?"}]}]},
        {"title": "b", "paragraphs": [{"context": "Cairo.", "qas": [{"id": "english-3-0", "question": "Q?"}]}]},
    ]}  # fmt: skip
    path = tmp_path / "tydiqa-goldp-v1.1-dev.json"
    path.write_text(json.dumps(data))
    sw = get_task("tydi").load(str(tmp_path), "sw")
    assert len(sw) == 2 and len(sw.corpus) == 1 and sw.notes["duplicate_passages_merged"] == 1
    assert sw.relevant("swahili-1-0") == sw.relevant("swahili-2-0")  # both point at the kept copy
    with pytest.raises(TaskDataError, match="no questions in language 'fi'.*languages there: en, sw"):
        get_task("tydi").load(str(path), "fi")
    with pytest.raises(TaskDataError, match="no tydiqa-goldp-v1.1-train.json for split train"):
        get_task("tydi").load(str(tmp_path), "sw", split="train")


# -- Mr. TyDi / MIRACL ----------------------------------------------------------------------------------------


def _mrtydi(folder, docs, topics, qrels, split="test"):
    (folder / "collection").mkdir(parents=True, exist_ok=True)
    (folder / "collection" / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / f"topic.{split}.tsv").write_text(topics)
    (folder / f"qrels.{split}.txt").write_text(qrels)
    return folder


DOCS = [
    {"id": "1#0", "contents": "Mbwa ni mnyama"},
    {"docid": "2#0", "title": "Paka", "text": "Paka hula panya"},
]


def test_mrtydi_folder_layouts(tmp_path):
    root = tmp_path / "mrtydi"
    _mrtydi(root / "mrtydi-v1.1-swahili", DOCS, "1\tMbwa ni nini?\n2\tPaka hula nini?\n3\tswali bila jibu\n",
            "1 Q0 1#0 1\n2 Q0 2#0 1\n")  # fmt: skip
    data = get_task("mrtydi").load(str(root), "sw")
    assert [q.id for q in data] == ["1", "2"] and data.notes["unjudged_queries"] == 1
    assert data.corpus.titles == ["", "Paka"] and data.corpus.document(1) == "Paka\nPaka hula panya"
    assert get_task("mrtydi").available_languages(str(root)) == ["sw"]
    with pytest.raises(TaskDataError, match="no folder for language 'yo'; languages there: sw"):
        get_task("mrtydi").load(str(root), "yo")
    with pytest.raises(TaskDataError, match="no corpus jsonl|no validation topics TSV"):
        get_task("mrtydi").load(str(root), "sw", split="validation")
    # MIRACL-style names and a gzipped corpus
    miracl = tmp_path / "miracl-v1.0-sw"
    (miracl / "topics").mkdir(parents=True)
    (miracl / "qrels").mkdir()
    with gzip.open(miracl / "corpus.jsonl.gz", "wt") as handle:
        handle.write("".join(json.dumps(d) + "\n" for d in DOCS))
    (miracl / "topics" / "topics.miracl-v1.0-sw-dev.tsv").write_text("7\tMbwa?\n")
    (miracl / "qrels" / "qrels.miracl-v1.0-sw-dev.tsv").write_text("7\tQ0\t1#0\t1\n7\tQ0\t2#0\t0\n")
    dev = get_task("mrtydi").load(str(miracl), "sw", split="dev")
    assert dev.qrels == {"7": {"1#0": 1, "2#0": 0}}


@pytest.mark.parametrize(
    "docs, topics, qrels, message",
    [
        (DOCS, "1\tMbwa?\n", "1 Q0 9#0 1\n", "qrels.test.txt:1: document '9#0' is not in the corpus"),
        (
            DOCS,
            "1\tMbwa?\n",
            "1 Q0 1#0 1\n5 Q0 1#0 1\n",
            "qrels.test.txt:2: query '5' is not in the query set",
        ),
        (DOCS, "1\tMbwa?\n", "1 Q0 1#0 0\n", "qrels.test.txt:1: query '1' has no relevant passage"),
        (
            DOCS + [{"id": "1#0", "contents": "x"}],
            "1\tMbwa?\n",
            "1 Q0 1#0 1\n",
            "docs.jsonl:3: passage id '1#0' repeats line 1",
        ),
        (
            [{"id": "", "contents": "x"}],
            "1\tMbwa?\n",
            "1 Q0 x 1\n",
            "docs.jsonl:1: empty or missing passage id",
        ),
        (DOCS, "1\tMbwa?\n1\tTena?\n", "1 Q0 1#0 1\n", "topic.test.tsv:2: query id '1' repeats line 1"),
        (DOCS, "1 Mbwa?\n", "1 Q0 1#0 1\n", "topic.test.tsv:1: expected 'query_id<TAB>query'"),
    ],
)
def test_mrtydi_bad_input_names_file_and_line(tmp_path, docs, topics, qrels, message):
    folder = _mrtydi(tmp_path / "sw", docs, topics, qrels)
    with pytest.raises(TliError) as error:
        get_task("mrtydi").load(str(folder), "sw")
    assert message in str(error.value) and len(str(error.value).splitlines()) == 1


def test_mrtydi_query_jsonl(tmp_path):
    rows = [
        {"query_id": "1", "query": "Mbwa?", "positive_passages": [{"docid": "a", "title": "", "text": "Mbwa"}],
         "negative_passages": [{"docid": "b", "title": "", "text": "Paka"}]},
        {"query_id": 2, "query": "Paka?", "positive_passages": [{"docid": "b", "title": "", "text": "Paka"}],
         "negative_passages": []},
    ]  # fmt: skip
    path = tmp_path / "mrtydi-swahili-test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = get_task("mrtydi").load(str(path), "sw")
    assert data.qrels == {"1": {"a": 1, "b": 0}, "2": {"b": 1}} and data.corpus.ids == ["a", "b"]
    with pytest.raises(TaskDataError, match="holds language sw, not 'te'"):
        get_task("mrtydi").load(str(path), "te")
    rows[1]["positive_passages"] = []
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(TaskDataError, match="mrtydi-swahili-test.jsonl:2: query '2' has no positive passage"):
        get_task("mrtydi").load(str(path), "sw")
    rows[1]["positive_passages"] = [{"docid": "a", "title": "", "text": "another text"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(TaskDataError, match="jsonl:2: passage 'a' has another text than at .*jsonl:1"):
        get_task("mrtydi").load(str(path), "sw")


def test_mrtydi_explicit_files(tmp_path):
    folder = _mrtydi(tmp_path / "anywhere", DOCS, "1\tMbwa?\n", "1 Q0 1#0 1\n")
    task = get_task("mrtydi")
    config = task.make_config(
        {
            "corpus": str(folder / "collection" / "docs.jsonl"),
            "languages": ["sw"],
            "topics": str(folder / "topic.test.tsv"),
            "qrels": str(folder / "qrels.test.txt"),
        }
    )
    assert len(task.load(None, "sw", config=config)) == 1
    with pytest.raises(TliError, match="give corpus, topics and qrels together"):
        task.make_config({"corpus": "c.jsonl"})
