"""The ablation's objectives against naive loop implementations and hand values: value AND gradient."""

import math

import pytest
import torch
import torch.nn.functional as F

from tli.losses import (
    Centred,
    LexiconInfoNCELoss,
    Objective,
    ObjectiveInputs,
    ObjectiveSpec,
    candidate_mask,
    centre_rows,
    lexicon_infonce_loss,
    preservation_loss,
    symmetric_infonce_loss,
    uniformity_loss,
    valid_negative_mask,
)


def _leaf(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(True)


def _grads(fn, *tensors):
    for t in tensors:
        t.grad = None
    value = fn()
    value.backward()
    return value.detach(), [t.grad.clone() for t in tensors]


def _naive_lexicon_infonce(anchors, positives, candidates, sources, candidate_words, known, tau):
    total = 0.0
    for i in range(len(anchors)):
        pos = F.cosine_similarity(anchors[i], positives[i], dim=0) / tau
        terms = [torch.exp(pos)]
        for j in range(len(candidates)):
            if (sources[i], candidate_words[j]) not in known:
                terms.append(torch.exp(F.cosine_similarity(anchors[i], candidates[j], dim=0) / tau))
        total = total + (-pos + torch.log(sum(terms)))
    return total / len(anchors)


def test_lexicon_infonce_matches_naive_loop_in_value_and_gradient():
    sources = ["bahari", "bahari", "mbwa", "paka"]
    targets = ["sea", "ocean", "dog", "cat"]
    bank_words = ["sea", "ocean", "dog", "cat", "house", "tree"]
    known = set(zip(sources, targets, strict=True))
    a, p, c = _leaf(4, 6, seed=1), _leaf(4, 6, seed=2), _leaf(6, 6, seed=3)
    mask = candidate_mask(sources, bank_words, known)
    assert not mask[0, 0] and not mask[0, 1] and mask[0, 2]  # bahari: neither sea nor ocean is a negative
    fast, fast_g = _grads(lambda: lexicon_infonce_loss(a, p, c, mask, 0.1), a, p, c)
    slow, slow_g = _grads(lambda: _naive_lexicon_infonce(a, p, c, sources, bank_words, known, 0.1), a, p, c)
    assert torch.allclose(fast.double(), slow, atol=1e-5)
    for x, y in zip(fast_g, slow_g, strict=True):
        assert torch.allclose(x.double(), y, atol=1e-5)


def test_lexicon_infonce_by_hand():
    # cos(a, p) = 1, one valid candidate with cos 0: L = −1/τ + log(e^{1/τ} + e^0), τ = 0.5.
    a = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[1.0, 0.0]])
    c = torch.tensor([[0.0, 1.0]])
    loss = lexicon_infonce_loss(a, p, c, torch.tensor([[True]]), 0.5)
    assert loss.item() == pytest.approx(-2.0 + math.log(math.exp(2.0) + 1.0))


def test_lexicon_infonce_on_the_batch_is_the_forward_half_of_symmetric_infonce():
    a, p = _leaf(5, 4, seed=4), _leaf(5, 4, seed=5)
    mask = valid_negative_mask(list("abcde"), list("vwxyz"))
    half = LexiconInfoNCELoss(0.2)(a, p, mask)  # no bank: the batch's targets are the candidates
    logits = (F.normalize(a, dim=-1) @ F.normalize(p, dim=-1).T) / 0.2
    assert torch.allclose(half.double(), F.cross_entropy(logits, torch.arange(5)), atol=1e-6)
    both = symmetric_infonce_loss(a, p, mask, 0.2)
    other = F.cross_entropy(logits.T, torch.arange(5))
    assert torch.allclose(both.double(), 0.5 * (half.double() + other), atol=1e-6)


def _naive_uniformity(x, t):
    x = F.normalize(x, dim=-1)
    values = [torch.exp(-t * ((x[i] - x[j]) ** 2).sum()) for i in range(len(x)) for j in range(i + 1, len(x))]
    return torch.log(sum(values) / len(values))


def test_uniformity_matches_naive_loop_in_value_and_gradient():
    x = _leaf(7, 5, seed=6)
    fast, fast_g = _grads(lambda: uniformity_loss(x, 2.0), x)
    slow, slow_g = _grads(lambda: _naive_uniformity(x, 2.0), x)
    assert torch.allclose(fast.double(), slow, atol=1e-6)
    assert torch.allclose(fast_g[0].double(), slow_g[0], atol=1e-6)


def test_uniformity_by_hand_collapse_and_orthogonal():
    assert uniformity_loss(torch.ones(4, 3)).item() == pytest.approx(0.0, abs=1e-6)
    # Orthonormal rows: every ‖x − y‖² = 2, so L = −2t.
    assert uniformity_loss(torch.eye(3), t=2.0).item() == pytest.approx(-4.0, abs=1e-6)


def test_preservation_matches_naive_loop_and_hand_values():
    adapted, base = _leaf(4, 3, seed=7), _leaf(4, 3, seed=8).detach()
    fast, fast_g = _grads(lambda: preservation_loss(adapted, base), adapted)
    slow, slow_g = _grads(
        lambda: sum(1 - (adapted[i] @ base[i]) / (adapted[i].norm() * base[i].norm()) for i in range(4)) / 4,
        adapted,
    )
    assert torch.allclose(fast.double(), slow, atol=1e-6)
    assert torch.allclose(fast_g[0].double(), slow_g[0], atol=1e-6)
    same = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    assert preservation_loss(same * 3, same).item() == pytest.approx(0.0, abs=1e-6)
    assert preservation_loss(-same, same).item() == pytest.approx(2.0)


def test_centred_loss_ignores_a_shared_shift_and_matches_naive_centring():
    a, p = _leaf(5, 4, seed=9), _leaf(5, 4, seed=10)
    mask = valid_negative_mask(list("abcde"), list("vwxyz"))
    loss = Centred(LexiconInfoNCELoss(0.1))
    shift = torch.tensor([5.0, -3.0, 2.0, 7.0], dtype=torch.float64)
    assert torch.allclose(loss(a, p, mask), loss(a + shift, p + shift, mask), atol=1e-5)
    naive_a = torch.stack([a[i] - sum(a[j] for j in range(5)) / 5 for i in range(5)])
    assert torch.allclose(centre_rows(a).double(), naive_a, atol=1e-12)
    fast, fast_g = _grads(lambda: loss(a, p, mask), a, p)
    slow, slow_g = _grads(lambda: LexiconInfoNCELoss(0.1)(a - a.mean(0), p - p.mean(0), mask), a, p)
    assert torch.allclose(fast.double(), slow.double(), atol=1e-6)
    for x, y in zip(fast_g, slow_g, strict=True):
        assert torch.allclose(x.double(), y.double(), atol=1e-6)


def test_objective_adds_weighted_terms():
    a, p = _leaf(4, 3, seed=11), _leaf(4, 3, seed=12)
    kept, base = _leaf(3, 3, seed=13), _leaf(3, 3, seed=14).detach()
    mask = valid_negative_mask(list("abcd"), list("wxyz"))
    spec = ObjectiveSpec(
        loss="infonce-lexicon",
        temperature=0.1,
        regularizers=["uniformity", "preservation"],
        uniformity_weight=0.5,
        preservation_weight=2.0,
    )
    total = Objective(spec)(a, p, mask, preserved=kept, preserved_base=base)
    expected = (
        lexicon_infonce_loss(a, p, p, mask, 0.1)
        + 0.5 * uniformity_loss(torch.cat([a, p]))
        + 2.0 * preservation_loss(kept, base)
    )
    assert torch.allclose(total, expected, atol=1e-6)
    assert spec.name == "infonce-lexicon+preservation+uniformity"


def test_objective_inputs_bank_mask_and_excluded_words():
    spec = ObjectiveSpec(loss="infonce-lexicon", regularizers=["preservation"])
    objective = Objective(spec)

    def embed(_encoder, words):
        return torch.stack([torch.tensor([float(len(w)), 1.0]) for w in words])

    inputs = ObjectiveInputs(
        objective,
        embed,
        targets=["sea", "ocean", "dog", "sea"],
        known={("bahari", "sea"), ("bahari", "ocean"), ("mbwa", "dog")},
        vocabulary=["dog", "Tree", "house", "paka", "stone"],
        excluded={"dog", "tree", "paka"},
        seed=0,
    )
    assert inputs.targets == ["sea", "ocean", "dog"] and inputs.words == ["house", "stone"]
    encoder = torch.nn.Identity()
    inputs.start(encoder)
    inputs.start_epoch(encoder)
    extra = inputs.for_batch(encoder, ["bahari", "mbwa"], step_key=3, batch_size=2)
    assert extra["bank_valid"].tolist() == [[False, False, True], [True, True, False]]
    assert torch.equal(extra["preserved"], extra["preserved_base"])  # nothing trained yet


def test_objective_is_selected_by_name_on_the_command_line():
    from tli.config import parse_command
    from tli.errors import ConfigError
    from tli.losses import build_objective

    config = parse_command("train", ["--loss", "infonce-lexicon", "--regularizers", "centred,uniformity"])
    objective = build_objective(config)
    assert objective.spec.name == "infonce-lexicon+centred+uniformity"
    assert isinstance(objective.main, Centred) and objective.uses_bank and not objective.uses_preservation
    assert build_objective(parse_command("train", [])).spec.name == "triplet"  # the published default
    with pytest.raises(ConfigError, match="--regularizers 'bogus' is not one of"):
        parse_command("train", ["--regularizers", "bogus"])
