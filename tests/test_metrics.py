"""Metrics against values computed by hand on 2-D unit vectors."""

import math

import pytest
import torch

from tli.metrics import (
    PairIndex,
    csls_scores,
    layer_metrics,
    mean_reciprocal_rank,
    precision_at_k,
    retrieval_ranks,
)


def _index(pairs, n_src, n_tgt):
    return PairIndex(
        src=torch.tensor([s for s, _ in pairs]),
        tgt=torch.tensor([t for _, t in pairs]),
        n_src=n_src,
        n_tgt=n_tgt,
    )


def test_hubness_case_by_hand():
    # sim = [[1, 0], [0.8, 0.6]]: source 1 prefers the wrong target 0 (a hub).
    src = torch.tensor([[1.0, 0.0], [0.8, 0.6]])
    tgt = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    m = layer_metrics(src, tgt, _index([(0, 0), (1, 1)], 2, 2))
    assert m["matched_mean"] == pytest.approx((1.0 + 0.6) / 2)
    assert m["mismatched_mean"] == pytest.approx((0.0 + 0.8) / 2)
    assert m["gap"] == pytest.approx(0.4)
    assert m["p_at_1"] == pytest.approx(0.5)
    assert m["p_at_5"] == pytest.approx(1.0)
    assert m["mrr"] == pytest.approx((1 + 1 / 2) / 2)
    # CSLS with k = 2 (capped): r_T = [0.5, 0.7], r_S = [0.9, 0.3]; row 1 → [0.0, 0.2]: hub corrected.
    assert m["csls_p_at_1"] == pytest.approx(1.0)


def test_csls_values_by_hand():
    sim = torch.tensor([[1.0, 0.0], [0.8, 0.6]])
    expected = torch.tensor([[2 - 0.5 - 0.9, 0 - 0.5 - 0.3], [1.6 - 0.7 - 0.9, 1.2 - 0.7 - 0.3]])
    torch.testing.assert_close(csls_scores(sim, k=10), expected)
    # k = 1: r_T = row max, r_S = column max.
    expected_k1 = torch.tensor([[0.0, -1.6], [-0.2, -0.2]])
    torch.testing.assert_close(csls_scores(sim, k=1), expected_k1)


def test_several_senses_are_never_mismatches_or_wrong_retrievals():
    # source 0 has two gold targets (0 and 1); target 2 is the only wrong candidate.
    src = torch.tensor([[1.0, 0.0]])
    tgt = torch.tensor([[0.6, 0.8], [1.0, 0.0], [0.8, 0.6]])
    m = layer_metrics(src, tgt, _index([(0, 0), (0, 1)], 1, 3))
    assert m["matched_mean"] == pytest.approx((0.6 + 1.0) / 2)
    assert m["mismatched_mean"] == pytest.approx(0.8)
    assert m["p_at_1"] == 1.0  # the best gold (1.0) beats the wrong 0.8


def test_ties_count_against_the_gold():
    scores = torch.tensor([[0.5, 0.5, 0.5]])
    gold = torch.tensor([[True, False, False]])
    assert retrieval_ranks(scores, gold).tolist() == [3]
    # Identical embeddings for every word → P@1 is 0, never a perfect score.
    same = torch.nn.functional.normalize(torch.ones(3, 4), dim=-1)
    m = layer_metrics(same, same, _index([(0, 0), (1, 1), (2, 2)], 3, 3))
    assert m["matched_mean"] == pytest.approx(1.0)
    assert m["gap"] == pytest.approx(0.0, abs=1e-6)
    assert m["p_at_1"] == 0.0


def test_precision_and_mrr_by_hand():
    ranks = torch.tensor([1, 2, 6, 1])
    assert precision_at_k(ranks, 1) == 0.5
    assert precision_at_k(ranks, 5) == 0.75
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 + 0.5 + 1 / 6 + 1) / 4)


def test_mismatched_is_nan_without_any_mismatch():
    src = torch.tensor([[1.0, 0.0]])
    tgt = torch.tensor([[1.0, 0.0]])
    assert math.isnan(layer_metrics(src, tgt, _index([(0, 0)], 1, 1))["mismatched_mean"])
