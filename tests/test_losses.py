"""Losses against hand computation and against naive loop implementations (values and gradients)."""

import math

import pytest
import torch
import torch.nn.functional as F

from tli.losses import (
    InfoNCELoss,
    TripletLoss,
    symmetric_infonce_loss,
    triplet_hardest_negative_loss,
    valid_negative_mask,
)


def test_valid_negative_mask_excludes_other_senses_and_synonyms():
    sources = ["bahari", "bahari", "gari", "motokaa", "mbwa"]
    targets = ["sea", "ocean", "car", "car", "dog"]
    mask = valid_negative_mask(sources, targets)
    assert not mask.diagonal().any()
    assert not mask[0, 1] and not mask[1, 0]  # bahari → sea / ocean: same source word
    assert not mask[2, 3] and not mask[3, 2]  # gari / motokaa → car: same target word
    assert mask[0, 2] and mask[4, 0] and mask[2, 4]


def test_triplet_by_hand():
    # cos(a0, p0) = 1, cos(a0, p1) = 0.6; cos(a1, p1) = 0.8, cos(a1, p0) = 0.6.
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    positives = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    mask = valid_negative_mask(["a", "b"], ["x", "y"])
    # anchor 0: relu(0.4 + 0.6 - 1.0) = 0;  anchor 1: relu(0.4 + 0.0 - 0.8) = 0 → with margin 0.5:
    assert triplet_hardest_negative_loss(anchors, positives, mask, margin=0.4).item() == pytest.approx(0.0)
    # margin 0.9: anchor 0 → 0.5, anchor 1 → relu(0.9 + 0 - 0.8) = 0.1; mean 0.3
    assert triplet_hardest_negative_loss(anchors, positives, mask, margin=0.9).item() == pytest.approx(0.3)


def _naive_triplet(anchors, positives, sources, targets, margin):
    losses = []
    for i in range(len(anchors)):
        pos = F.cosine_similarity(anchors[i], positives[i], dim=0)
        negs = [
            F.cosine_similarity(anchors[i], positives[j], dim=0)
            for j in range(len(anchors))
            if j != i and sources[j] != sources[i] and targets[j] != targets[i]
        ]
        if negs:
            losses.append(torch.relu(margin + torch.stack(negs).max() - pos))
    return torch.stack(losses).mean()


def _naive_infonce(anchors, positives, sources, targets, tau):
    n = len(anchors)
    sim = [[F.cosine_similarity(anchors[i], positives[j], dim=0) / tau for j in range(n)] for i in range(n)]

    def ok(i, j):
        return i == j or (sources[j] != sources[i] and targets[j] != targets[i])

    rows = [
        -(sim[i][i] - torch.logsumexp(torch.stack([sim[i][j] for j in range(n) if ok(i, j)]), 0))
        for i in range(n)
    ]
    cols = [
        -(sim[j][j] - torch.logsumexp(torch.stack([sim[i][j] for i in range(n) if ok(j, i)]), 0))
        for j in range(n)
    ]
    return 0.5 * (torch.stack(rows).mean() + torch.stack(cols).mean())


@pytest.mark.parametrize("which", ["triplet", "infonce"])
def test_vectorised_equals_naive_in_value_and_gradient(which):
    torch.manual_seed(0)
    sources = ["bahari", "bahari", "gari", "motokaa", "mbwa", "paka"]
    targets = ["sea", "ocean", "car", "car", "dog", "cat"]
    a1 = torch.randn(6, 16, requires_grad=True)
    p1 = torch.randn(6, 16, requires_grad=True)
    a2 = a1.detach().clone().requires_grad_(True)
    p2 = p1.detach().clone().requires_grad_(True)
    mask = valid_negative_mask(sources, targets)
    if which == "triplet":
        fast = TripletLoss(margin=0.4)(a1, p1, mask)
        slow = _naive_triplet(a2, p2, sources, targets, 0.4)
    else:
        fast = InfoNCELoss(temperature=0.1)(a1, p1, mask)
        slow = _naive_infonce(a2, p2, sources, targets, 0.1)
    fast.backward()
    slow.backward()
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a1.grad, a2.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(p1.grad, p2.grad, atol=1e-5, rtol=1e-4)


def test_infonce_by_hand_two_pairs():
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    positives = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mask = valid_negative_mask(["a", "b"], ["x", "y"])
    # logits = I / tau; each row: -log(e^{1/τ} / (e^{1/τ} + 1)) = log(1 + e^{-1/τ})
    expected = math.log(1 + math.exp(-1 / 0.5))
    assert symmetric_infonce_loss(anchors, positives, mask, 0.5).item() == pytest.approx(expected)


def test_batch_without_any_valid_negative_gives_zero_loss_with_graph():
    anchors = torch.randn(2, 4, requires_grad=True)
    positives = torch.randn(2, 4)
    mask = valid_negative_mask(["bahari", "bahari"], ["sea", "ocean"])
    loss = triplet_hardest_negative_loss(anchors, positives, mask)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(anchors.grad, torch.zeros_like(anchors))  # a graph, and nothing to learn from it


def test_mask_uses_every_sense_in_the_lexicon_not_only_the_batch():
    # The batch holds bahari → sea and pwani → ocean; the lexicon also knows bahari → ocean.
    sources, targets = ["bahari", "pwani", "mbwa"], ["sea", "ocean", "dog"]
    without = valid_negative_mask(sources, targets)
    assert bool(without[0, 1])  # batch-only: ocean would be a negative for bahari
    known = {("bahari", "sea"), ("bahari", "ocean"), ("pwani", "ocean"), ("mbwa", "dog")}
    with_lexicon = valid_negative_mask(sources, targets, known)
    assert not bool(with_lexicon[0, 1])  # ocean translates bahari: never its negative
    assert bool(with_lexicon[0, 2]) and bool(with_lexicon[1, 0]) and bool(with_lexicon[2, 0])
    assert not with_lexicon.diagonal().any()
