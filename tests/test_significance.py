"""Per-seed paired tests of tli compare against exact enumeration and scipy, with stated tolerances."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from tli.compare.significance import (
    EXACT_MAX,
    choose_test,
    family_resamples,
    mean_test,
    paired_difference,
    paired_noninferiority,
    sign_flip_exact,
    sign_flip_monte_carlo,
    smallest_p,
    swap_randomisation,
)
from tli.errors import ConfigError


def _rows(values):
    return [{"id": str(i), "v": float(v)} for i, v in enumerate(values)]


def _brute_force(d):
    """#{s ∈ {±1}^n : |Σ s d| ≥ |Σ d|} / 2^n by listing every sign pattern (zeros included)."""
    observed = abs(sum(d))
    hits = sum(
        abs(sum(s * x for s, x in zip(signs, d, strict=True))) >= observed - 1e-12
        for signs in itertools.product((1, -1), repeat=len(d))
    )
    return hits / 2 ** len(d)


@pytest.mark.parametrize("n", [1, 2, 5, 9, 12])
def test_exact_sign_flip_equals_brute_force_enumeration_and_scipy(n):
    rng = np.random.default_rng(n)
    d = np.round(rng.normal(0.1, 0.2, n), 3)
    d[: n // 4] = 0.0  # zeros flip to themselves
    assert sign_flip_exact(d) == pytest.approx(_brute_force(list(d)), abs=1e-12)
    if n >= 2:
        # scipy's exact paired permutation test: 2·min(one-sided), the same for a symmetric null
        exact = sps.permutation_test(
            (d, np.zeros(n)),
            lambda x, y, axis: np.mean(x - y, axis=axis),
            permutation_type="samples",
            n_resamples=np.inf,
            vectorized=True,
        )
        assert sign_flip_exact(d) == pytest.approx(min(1.0, exact.pvalue), abs=1e-12)


def test_exact_mcnemar_is_scipys_binomial_test_on_discordant_pairs():
    rng = np.random.default_rng(3)
    a, b = rng.random(150) < 0.62, rng.random(150) < 0.5
    p, key, floor, _ = mean_test(a.astype(float) - b, binary=True, n_resamples=0, rng=rng)
    gained, lost = int(np.sum(a & ~b)), int(np.sum(~a & b))
    assert key == "mcnemar" and p == pytest.approx(
        sps.binomtest(gained, gained + lost, 0.5).pvalue, rel=1e-12
    )
    assert floor == pytest.approx(2.0**-149)
    # 0/1 scores with ≤ 20 discordant examples: McNemar and the exact sign-flip test are the same test
    few = np.r_[np.ones(9), -np.ones(3), np.zeros(40)]
    assert mean_test(few, binary=True, n_resamples=0, rng=rng)[0] == pytest.approx(
        sign_flip_exact(few), abs=1e-12
    )


def test_the_t_test_rule_is_scipys_paired_t_test():
    rng = np.random.default_rng(4)
    x, y = rng.random(80), rng.random(80)
    result = paired_difference(_rows(x), _rows(y), mean_of="v", n_resamples=500, rng=0)
    assert result.test.startswith("paired t-test") and result.p_floor == 0
    assert result.p_value == pytest.approx(sps.ttest_rel(x, y).pvalue, rel=1e-12)
    assert result.se == pytest.approx(np.std(x - y, ddof=1) / math.sqrt(80), rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_the_t_test_agrees_with_the_sign_flip_test_it_replaces(seed):
    """The rule's justification: for bounded differences the t-test approximates the sign-flip p. At n = 20
    against exact enumeration, and at n = 40 against 20,000 Monte Carlo flips: within 0.03 absolute."""
    rng = np.random.default_rng(seed)
    d20 = rng.uniform(-0.5, 0.7, EXACT_MAX)
    assert sps.ttest_1samp(d20, 0).pvalue == pytest.approx(sign_flip_exact(d20), abs=0.03)
    d40 = rng.uniform(-0.5, 0.6, 40)
    monte_carlo = sign_flip_monte_carlo(d40, 20_000, np.random.default_rng(seed))
    assert sps.ttest_1samp(d40, 0).pvalue == pytest.approx(monte_carlo, abs=0.03)


def test_monte_carlo_randomisation_is_within_its_error_of_the_exact_p():
    d = np.random.default_rng(5).normal(0.15, 0.3, 14)
    exact, resamples = sign_flip_exact(d), 20_000
    estimate = sign_flip_monte_carlo(d, resamples, np.random.default_rng(0))
    assert estimate == pytest.approx(
        exact, abs=4 * math.sqrt(exact * (1 - exact) / resamples) + 1 / resamples
    )
    assert estimate >= 1 / (resamples + 1)  # never below its floor


def test_choose_test_rule():
    assert choose_test(np.array([1.0, -1.0, 0.0]), binary=True) == "mcnemar"
    assert choose_test(np.r_[np.ones(20), np.zeros(100)] * 0.3, binary=False) == "sign-flip"
    assert choose_test(np.ones(25) * 0.3, binary=False) == "randomisation"
    assert choose_test(np.ones(30) * 0.3, binary=False) == "t-test"
    # the t statistic of identical differences is undefined: the exact sign-flip p 2^(1-n) instead
    p, key, floor, _ = mean_test(np.full(200, 0.3), binary=False, n_resamples=0, rng=np.random.default_rng(0))
    assert key == "sign-flip" and p == pytest.approx(2.0**-199) and floor == pytest.approx(2.0**-199)


def test_floors_and_family_resamples():
    assert smallest_p("mcnemar", 12) == pytest.approx(2.0**-11)
    assert smallest_p("sign-flip", 1) == 1.0 and smallest_p("t-test", 5) == 0.0
    assert smallest_p("randomisation", 0, 999) == pytest.approx(1e-3)
    for m in (1, 7, 63, 400):
        resamples = family_resamples(m, 0.05, 1000)
        assert resamples >= 1000 and m * smallest_p("randomisation", 0, resamples) <= 0.05 / 20


def test_corpus_bleu_randomisation_and_bootstrap_rescore_the_swapped_corpus():
    """Sufficient statistics give exactly sacrebleu's corpus BLEU of any swapped or resampled corpus."""
    import sacrebleu

    from tli.tasks.overlap_metrics import CorpusStatistic

    refs = [f"the cat sat on mat number {i} today" for i in range(30)]
    a = [f"the cat sat on the mat {i} today" for i in range(30)]
    b = [f"a dog lay on mat number {i}" for i in range(30)]
    sa, sb = CorpusStatistic("bleu", a, refs, "13a"), CorpusStatistic("bleu", b, refs, "13a")
    assert sa.score_sum(sa.stats.sum(0)) == pytest.approx(sacrebleu.corpus_bleu(a, [refs]).score, abs=1e-9)
    swap = np.random.default_rng(0).integers(0, 2, 30).astype(bool)
    moved = swap.astype(float) @ (sb.stats - sa.stats)
    left = [y if s else x for x, y, s in zip(a, b, swap, strict=True)]
    assert sa.score_sum(sa.stats.sum(0) + moved) == pytest.approx(
        sacrebleu.corpus_bleu(left, [refs]).score, abs=1e-9
    )
    p, observed = swap_randomisation(sa, sb, 2000, np.random.default_rng(1))
    assert observed > 0 and p == pytest.approx(1 / 2001)  # A wins on every sentence: no swap beats it
    rows_a = [
        {"id": str(i), "prediction": x, "reference": r} for i, (x, r) in enumerate(zip(a, refs, strict=True))
    ]
    rows_b = [
        {"id": str(i), "prediction": x, "reference": r} for i, (x, r) in enumerate(zip(b, refs, strict=True))
    ]
    result = paired_difference(
        rows_a,
        rows_b,
        corpus_statistics=lambda rows: CorpusStatistic(
            "bleu", [r["prediction"] for r in rows], [r["reference"] for r in rows], "13a"
        ),
        n_resamples=2000,
    )
    assert result.difference == pytest.approx(observed) and result.ci95_low > 0 and result.se > 0


def test_noninferiority_is_scipys_one_sided_t_test_against_minus_margin():
    rng = np.random.default_rng(6)
    x, y = rng.random(300) < 0.55, rng.random(300) < 0.56
    result = paired_noninferiority(_rows(x), _rows(y), mean_of="v", margin=0.05, n_boot=500)
    expected = sps.ttest_1samp(x.astype(float) - y, -0.05, alternative="greater").pvalue
    assert result.kind == "non-inferiority" and result.p_value == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ConfigError, match="margin"):
        paired_noninferiority(_rows(x), _rows(y), mean_of="v", margin=0.0)
