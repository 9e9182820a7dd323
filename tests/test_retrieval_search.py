"""TREC files and their errors, tie-free runs, exact chunked top-k, BM25 and reciprocal rank fusion."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tli.retrieval.bm25 import BM25Index, analyzer
from tli.retrieval.fusion import rrf
from tli.retrieval.search import exact_top_k, in_chunks, naive_top_k, search
from tli.retrieval.trec import (
    TrecFormatError,
    read_qrels,
    read_run,
    run_from_ranking,
    untie,
    write_qrels,
    write_run,
)

# -- TREC files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "q1 Q0 d1 1 0.5 t\nq1 Q0 d1 2 0.4 t\n",
            "run.trec:2: query 'q1' lists document 'd1' twice (first at line 1)",
        ),
        (
            "q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 0.5 t\n",
            "run.trec:2: query 'q1' gives 'd2' the same score 0.5 as 'd1' (line 1)",
        ),
        ("q1 Q0 d1 1 0.5\n", "run.trec:1: expected 'query_id Q0 doc_id rank score tag' (6 fields)"),
        ("q1 Q0 d1 1 high t\n", "run.trec:1: score 'high' is not a number"),
        ("q1 Q0 d1 1 nan t\n", "run.trec:1: score 'nan' is not finite"),
        ("q1 Q0 d9 1 0.5 t\n", "run.trec:1: document 'd9' is not in the corpus"),
        ("q9 Q0 d1 1 0.5 t\n", "run.trec:1: query 'q9' is not in the query set"),
        ("", "run.trec: no results"),
    ],
)
def test_bad_runs_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "run.trec"
    path.write_text(text)
    with pytest.raises(TrecFormatError) as error:
        read_run(path, query_ids={"q1", "q2"}, doc_ids={"d1", "d2"})
    assert message in str(error.value) and len(str(error.value).splitlines()) == 1


def test_an_empty_run_is_refused_unless_allowed_and_then_scores_zero(tmp_path):
    """A user's empty run file is a mistake; a system of tli's that retrieved nothing (BM25 across languages
    with no shared word) writes one legitimately, and every metric of it is 0."""
    from tli.retrieval.ranking_metrics import METRICS, mean_scores

    path = tmp_path / "run.trec"
    path.write_text("")
    with pytest.raises(TrecFormatError, match="no results"):
        read_run(path)
    assert read_run(path, allow_empty=True) == {}
    assert mean_scores({"q1": {"d1": 1}}, {}) == dict.fromkeys(METRICS, 0.0)


@pytest.mark.parametrize(
    "text, message",
    [
        ("q1 0 d9 1\n", "qrels.txt:1: document 'd9' is not in the corpus"),
        ("q1 0 d1 1\nq9 0 d1 1\n", "qrels.txt:2: query 'q9' is not in the query set"),
        ("q1 0 d1 yes\n", "qrels.txt:1: relevance 'yes' is not a whole number"),
        ("q1 0 d1 1\nq1 0 d1 0\n", "qrels.txt:2: query 'q1' judges document 'd1' again (first at line 1)"),
        ("q1 0 d1 1\nq2 0 d2 0\n", "qrels.txt:2: query 'q2' has no relevant passage"),
        ("q1 d1\n", "qrels.txt:1: expected 'query_id 0 doc_id relevance'"),
    ],
)
def test_bad_qrels_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "qrels.txt"
    path.write_text(text)
    with pytest.raises(TrecFormatError) as error:
        read_qrels(path, query_ids={"q1", "q2"}, doc_ids={"d1", "d2"}, require_relevant=True)
    assert message in str(error.value)


def test_qrels_accept_tabs_and_three_columns(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text("1\tQ0\t10#0\t1\n2 10#1 2\n# a comment\n")
    assert read_qrels(path) == {"1": {"10#0": 1}, "2": {"10#1": 2}}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([3.0, 1.5, 1.0, 0.25, 0.0, -2.0]), min_size=1, max_size=12))
def test_untie_keeps_the_order_and_changes_only_ties(values):
    scores = np.array(sorted(values, reverse=True))
    untied = untie(scores)
    assert np.all(np.diff(untied) < 0)  # strictly decreasing: every tool reads one order
    first_of_run = np.r_[True, scores[1:] != scores[:-1]]
    assert np.array_equal(untied[first_of_run], scores[first_of_run])  # untied scores keep their values
    assert np.allclose(untied, scores, rtol=0, atol=1e-12)


def test_written_runs_have_no_ties_and_round_trip(tmp_path):
    indices = np.array([[2, 0, 1], [1, -1, -1]])
    scores = np.array([[0.5, 0.5, 0.5], [1.0, -np.inf, -np.inf]])
    run = run_from_ranking(["a", "b"], ["d0", "d1", "d2"], indices, scores)
    assert list(run["a"]) == ["d2", "d0", "d1"] and list(run["b"]) == ["d1"]
    write_run(tmp_path / "r.trec", run, tag="dense:none")
    back = read_run(tmp_path / "r.trec")  # would raise on a tie
    assert back == run and [line.split()[2] for line in open(tmp_path / "r.trec")][:3] == ["d2", "d0", "d1"]
    with pytest.raises(ValueError, match="tied"):
        write_run(tmp_path / "t.trec", {"a": {"x": 1.0, "y": 1.0}}, tag="t")
    write_qrels(tmp_path / "q.trec", {"a": {"d2": 1}})
    assert read_qrels(tmp_path / "q.trec") == {"a": {"d2": 1}}


# -- exact top-k ---------------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 7),
    st.integers(1, 30),
    st.integers(1, 40),
    st.integers(1, 11),
    st.integers(1, 5),
    st.integers(0, 10_000),
)
def test_chunked_top_k_equals_a_full_sort(n_queries, n_docs, k, chunk, block, seed):
    rng = np.random.default_rng(seed)
    # small integer vectors: many exact ties, which must be broken by corpus position in every chunking
    queries = rng.integers(-2, 3, (n_queries, 4)).astype(np.float32)
    docs = rng.integers(-2, 3, (n_docs, 4)).astype(np.float32)
    expected = naive_top_k(queries, docs, k)
    got = exact_top_k(queries, in_chunks(docs, chunk), k, query_block=block)
    assert np.array_equal(got.indices, expected.indices)
    assert np.allclose(got.scores, expected.scores)
    assert (got.indices[:, min(k, n_docs) :] == -1).all()


def test_faiss_backend_needs_faiss_or_agrees():
    queries, docs = np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32)[::-1]
    try:
        import faiss  # noqa: F401
    except ImportError:
        with pytest.raises(Exception, match="FAISS is not installed"):
            search(queries, in_chunks(docs, 2), 2, backend="faiss")
        return
    got = search(queries, in_chunks(docs, 2), 1, backend="faiss")
    assert got.indices[:, 0].tolist() == [2, 1, 0]


# -- BM25 -----------------------------------------------------------------------------------------------


def _lucene_bm25(query_tokens, documents, k1=0.9, b=0.4):
    n, avgdl = len(documents), np.mean([len(d) for d in documents])
    out = []
    for doc in documents:
        score = 0.0
        for term in query_tokens:
            df = sum(term in d for d in documents)
            tf = doc.count(term)
            if tf:
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                score += idf * tf / (tf + k1 * (1 - b + b * len(doc) / avgdl))
        out.append(score)
    return np.array(out)


def test_bm25_scores_are_lucenes_formula():
    texts = [
        "Mbwa ni mnyama.",
        "Paka na mbwa na mbwa!",
        "Maji ya bahari",
        "Ng'ombe wa mzee",
        "mbwa mbwa paka",
    ]
    index = BM25Index(texts, "sw")
    tokens = [analyzer("sw")(t) for t in texts]
    for query in ("mbwa bahari", "paka paka", "ng'ombe", "simba"):
        expected = _lucene_bm25(analyzer("sw")(query), tokens)
        assert index.scores(query) == pytest.approx(expected, rel=1e-5)
    top, no_terms = index.search(["mbwa", "simba"], 3)
    assert top.indices[0].tolist() == list(np.argsort(-_lucene_bm25(["mbwa"], tokens), kind="stable")[:3])
    assert top.indices[1].tolist() == [-1, -1, -1] and no_terms == [1]  # nothing matches: nothing retrieved


def test_analyzer_follows_the_language():
    assert analyzer("sw")("Ng’ombe wa MZEE, 2024!") == ["ng'ombe", "wa", "mzee", "2024"]
    assert "the" not in analyzer("en")("the dog") and analyzer("sw")("na mbwa") == ["na", "mbwa"]
    assert analyzer("zh")("东京都") == ["东京", "京都"]  # a script without spaces: character bigrams
    index = BM25Index(["", "maji"], "sw")
    assert index.empty_documents == [0]


# -- fusion -----------------------------------------------------------------------------------------------


def test_rrf_matches_hand_computation_and_breaks_ties_by_doc_id():
    a = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"x": 1.0}}
    b = {"q1": {"d2": 0.9, "d1": 0.8, "d4": 0.1}, "q3": {"y": 2.0, "z": 1.0}}
    fused = rrf([a, b], k=60)
    q1 = fused["q1"]
    assert list(q1) == ["d1", "d2", "d3", "d4"]  # d1 and d2 tie at 1/61 + 1/62: the lower id first
    assert q1["d1"] == pytest.approx(1 / 61 + 1 / 62) and q1["d2"] < q1["d1"]
    assert q1["d3"] == pytest.approx(1 / 63) and q1["d4"] < q1["d3"]
    assert fused["q2"] == {"x": pytest.approx(1 / 61)}  # only one run retrieved for q2
    assert list(fused["q3"]) == ["y", "z"]
    assert len(set(q1.values())) == len(q1)  # tie-free
