"""Retrieval metrics: ranx's figures against hand computation, TREC files read back by ranx, the t-test."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from tli.retrieval.ranking_metrics import METRICS, mean_scores, paired_t_test, per_query
from tli.retrieval.trec import read_qrels, read_run, write_qrels, write_run

QRELS = {
    "q1": {"d1": 1},  # one relevant passage, retrieved at rank 3
    "q2": {"d2": 2, "d3": 1},  # graded: d2 (2) at rank 1, d3 (1) at rank 6
    "q3": {"d4": 1},  # its relevant passage is never retrieved
    "q4": {"d5": 1, "d6": 1},  # retrieves nothing at all
}
RUN = {
    "q1": {"x1": 0.9, "x2": 0.8, "d1": 0.7, "x3": 0.6},
    "q2": {"d2": 5.0, "x1": 4.0, "x2": 3.0, "x3": 2.0, "x4": 1.0, "d3": 0.5},
    "q3": {"x1": 1.0, "x2": 0.5},
}


def _dcg(gains):
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def test_every_metric_matches_hand_computation():
    scores = per_query(QRELS, RUN)
    expected = {
        "q1": {"recall@1": 0, "recall@5": 1, "recall@10": 1, "recall@100": 1, "mrr@10": 1 / 3, "mrr@100": 1 / 3,
               "ndcg@10": _dcg([0, 0, 1]) / _dcg([1])},
        "q2": {"recall@1": 0.5, "recall@5": 0.5, "recall@10": 1, "recall@100": 1, "mrr@10": 1.0, "mrr@100": 1.0,
               "ndcg@10": _dcg([2, 0, 0, 0, 0, 1]) / _dcg([2, 1])},
        "q3": dict.fromkeys(METRICS, 0.0),
        "q4": dict.fromkeys(METRICS, 0.0),
    }  # fmt: skip
    for query, figures in expected.items():
        for metric, value in figures.items():
            assert scores[metric][query] == pytest.approx(value), (query, metric)
    means = mean_scores(QRELS, RUN)
    assert means["mrr@10"] == pytest.approx((1 / 3 + 1) / 4)  # queries without results count as 0
    assert set(means) == set(METRICS)


def test_cut_offs_are_strict():
    # the relevant passage at rank 11 counts for mrr@100 and recall@100, not for mrr@10 or recall@10
    run = {"q": {f"x{i}": 100.0 - i for i in range(10)} | {"d": 1.0}}
    scores = per_query({"q": {"d": 1}}, run)
    assert scores["mrr@10"]["q"] == 0.0 and scores["recall@10"]["q"] == 0.0
    assert scores["mrr@100"]["q"] == pytest.approx(1 / 11) and scores["recall@100"]["q"] == 1.0


def test_figures_recompute_from_the_trec_files_with_ranx(tmp_path):
    from ranx import Qrels, Run, evaluate

    write_run(tmp_path / "run.trec", RUN, tag="test")
    write_qrels(tmp_path / "qrels.trec", QRELS)
    assert read_run(tmp_path / "run.trec") == RUN and read_qrels(tmp_path / "qrels.trec") == QRELS
    ours = mean_scores(QRELS, RUN)
    theirs = evaluate(
        Qrels.from_file(str(tmp_path / "qrels.trec"), kind="trec"),
        Run.from_file(str(tmp_path / "run.trec"), kind="trec"),
        list(METRICS),
        make_comparable=True,
    )
    assert theirs == pytest.approx(ours)


def test_paired_t_test_is_scipys():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=25)
    b = np.clip(a - 0.1 + rng.normal(0, 0.1, 25), 0, 1)
    assert paired_t_test(a, b) == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert paired_t_test(a, a) == 1.0  # no difference to test
