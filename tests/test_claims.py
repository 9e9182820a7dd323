"""Claims: corrected verdicts, equivalence verdicts, wording that follows the numbers, seeds."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from tli.claims import Claim, across_seeds, judge, outcome


def _change(p, low, high, effect=None, expect="increase", name="c"):
    return Claim(
        claim=name,
        kind="change",
        metric="similarity",
        test="t",
        effect=effect if effect is not None else (low + high) / 2,
        ci95_low=low,
        ci95_high=high,
        p=p,
        n=10,
        expect=expect,
    )


def test_holm_adjusts_over_the_claims_of_a_run_and_verdicts_follow_the_adjusted_p():
    # Twelve claims: eleven overwhelming, one at p = 0.025 with a CI below 0 ("contradicted" before correction).
    claims = [_change(1e-50, 0.1, 0.2, name=f"strong {i}") for i in range(11)] + [
        _change(0.025, -0.03, -0.001, name="weak")
    ]
    judge(claims, correction="holm", alpha=0.05)
    weak = claims[-1]
    # Holm: the largest p is the last step, multiplied by m - rank + 1 = 1 ... but it is the only large one: ×1.
    assert weak.p_adjusted == pytest.approx(0.025)
    assert weak.verdict == "contradicted"
    # Among twelve claims of similar size, the same p becomes 0.025 × 12 = 0.3 → inconclusive.
    claims = [_change(0.02 + i * 1e-4, -0.03, -0.001, name=f"c{i}") for i in range(11)] + [
        _change(0.025, -0.03, -0.001)
    ]
    judge(claims, correction="holm")
    assert claims[0].p_adjusted == pytest.approx(0.02 * 12) and claims[0].verdict == "inconclusive"


def test_bh_and_none():
    claims = [_change(0.01, 0.1, 0.2), _change(0.04, 0.1, 0.2)]
    judge(claims, correction="bh")
    assert [c.p_adjusted for c in claims] == pytest.approx([0.02, 0.04])  # 0.01·2/1, 0.04·2/2
    judge(claims, correction="none")
    assert [c.p_adjusted for c in claims] == pytest.approx([0.01, 0.04])


def test_equivalence_verdicts():
    def eq(p, low, high, margin=0.1):
        return Claim(
            claim="eq",
            kind="equivalence",
            metric="similarity",
            test="TOST",
            effect=(low + high) / 2,
            ci95_low=low,
            ci95_high=high,
            p=p,
            n=10,
            margin=margin,
            ci90_low=low,
            ci90_high=high,
        )

    claims = [eq(0.001, -0.05, 0.05), eq(0.9, 0.2, 0.3), eq(0.4, -0.05, 0.3), eq(float("nan"), 0, 0)]
    judge(claims, correction="none")
    assert [c.verdict for c in claims] == ["supported", "contradicted", "inconclusive", "inconclusive"]
    assert math.isnan(claims[-1].p_adjusted)


def test_wording_follows_the_numbers():
    fell = _change(0.001, -0.2, -0.1).to_dict() | {"verdict": "contradicted"}
    assert outcome(fell) == "fell"  # never "does not improve"
    assert outcome(fell | {"verdict": "supported"}) == "rose"
    assert outcome(fell | {"verdict": "inconclusive"}) == "no measurable change"
    assert outcome(fell | {"kind": "difference", "verdict": "supported"}) == "gained more than control pairs"


def _seed(effect, se, verdict, p=0.01):
    return [
        dict(
            _change(p, effect - 1.96 * se, effect + 1.96 * se, effect=effect).to_dict(),
            se=se,
            verdict=verdict,
            p_adjusted=p,
        )
    ]


def test_one_seed_is_the_claim_itself():
    (row,) = across_seeds([_seed(0.2, 0.05, "supported")])
    assert row["effect"] == 0.2 and row["verdict"] == "supported" and row["n_seeds"] == 1


def test_seed_variance_dominates_the_across_seed_ci_is_the_t_interval_over_seeds_and_covers_zero():
    # Sampling error 0.01 per seed, seeds 0.4 apart: the seeds' own spread decides. With equal standard
    # errors and tau² > 0, DerSimonian–Laird + Hartung–Knapp reduce to the one-sample t interval over seeds.
    effects = [0.30, -0.10, 0.25]
    per_seed = [
        _seed(e, 0.01, v) for e, v in zip(effects, ("supported", "contradicted", "supported"), strict=True)
    ]
    (row,) = across_seeds(per_seed)
    t = sps.ttest_1samp(effects, 0.0)
    ci = t.confidence_interval(0.95)
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert row["p"] == pytest.approx(t.pvalue, rel=1e-9)
    assert row["ci95_low"] < 0 < row["ci95_high"]
    # DerSimonian–Laird with equal weights w = 1/σ²: Q = w (k − 1) s², τ² = (Q − (k − 1)) / ((k − 1) w) = s² − σ²
    assert row["tau2"] == pytest.approx(np.var(effects, ddof=1) - 0.01**2, rel=1e-9)
    assert row["verdict"] == "inconclusive" and not row["holds_across_seeds"]
    assert row["interval"].startswith("across-seed 95 % CI")
    assert outcome(row) == "seeds disagree (2/3 supported, 1/3 contradicted)"  # never "no measurable change"
    assert row["note"] == "seeds disagree: 2/3 supported, 1/3 contradicted"


def test_seed_variance_negligible_gives_the_fixed_effect_interval_on_k_minus_1_df():
    # Seeds agree far better than their sampling error: tau² = 0 and the modified Hartung–Knapp variance
    # stays at the fixed-effect one, sigma²/k, so CI = mean ± t_{k-1} · sigma / sqrt(k).
    effects, sigma = [0.100, 0.101, 0.099], 0.01
    (row,) = across_seeds([_seed(e, sigma, "supported") for e in effects])
    half = sps.t.ppf(0.975, 2) * sigma / math.sqrt(3)
    assert row["tau2"] == 0 and row["se"] == pytest.approx(sigma / math.sqrt(3))
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((0.1 - half, 0.1 + half))
    assert row["p"] == pytest.approx(2 * sps.t.sf(0.1 / (sigma / math.sqrt(3)), 2))
    assert row["verdict"] == "supported" and row["holds_across_seeds"]


def test_random_effects_by_hand_with_unequal_errors():
    from tli.seeds import random_effects

    y, s = np.array([0.2, 0.05, 0.12, 0.3]), np.array([0.05, 0.02, 0.04, 0.1])
    w = 1 / s**2
    fixed = (w * y).sum() / w.sum()
    q = (w * (y - fixed) ** 2).sum()
    tau2 = max(0.0, (q - 3) / (w.sum() - (w**2).sum() / w.sum()))
    ws = 1 / (s**2 + tau2)
    mu = (ws * y).sum() / ws.sum()
    var = max((ws * (y - mu) ** 2).sum() / 3, 1.0) / ws.sum()
    combined = random_effects(y, s)
    assert combined.tau2 == pytest.approx(tau2) and combined.effect == pytest.approx(mu)
    assert combined.se == pytest.approx(math.sqrt(var)) and combined.df == 3
    assert combined.p_value(-0.05, "greater") == pytest.approx(sps.t.sf((mu + 0.05) / math.sqrt(var), 3))
    # every seed exact and alike: no variance at all, the weakest seed's own p decides
    flat = random_effects([0.5, 0.5], [0.0, 0.0], p_seeds=[1e-40, 1e-30])
    assert flat.degenerate and flat.p_value() == 1e-30 and flat.interval() == (0.5, 0.5)


def test_noninferiority_claims_and_verdicts():
    from tli.claims import noninferiority_claim

    rng = np.random.default_rng(0)
    d = rng.normal(0.0, 0.05, 400)  # no change, sd 5 points: non-inferior within a 1-point margin? yes, n=400
    claim = noninferiority_claim("A preserves B", "accuracy", d, 0.01, n_boot=2000)
    expected = sps.ttest_1samp(d, -0.01, alternative="greater")
    assert claim.kind == "non-inferiority" and claim.p == pytest.approx(expected.pvalue)
    worse = noninferiority_claim("A preserves B", "accuracy", d - 0.05, 0.01, n_boot=2000)
    unclear = noninferiority_claim("A preserves B", "accuracy", d[:20] - 0.01, 0.01, n_boot=2000)
    judge([claim, worse, unclear], correction="none")
    assert [c.verdict for c in (claim, worse, unclear)] == ["supported", "contradicted", "inconclusive"]
    assert outcome(worse) == "worse by more than the margin"


def test_noninferiority_when_every_difference_is_equal_is_the_worst_case_bound():
    from tli.errors import ConfigError
    from tli.stats import noninferiority_paired

    # 30 agreements at a 1-point margin: the worst H0 law puts 0.01 on d = −1, the rest on 0 → 0.99^30
    assert noninferiority_paired(np.zeros(30), 0.01).p == pytest.approx(0.99**30, rel=1e-12)
    # all d = 0.5 with d ≥ −1: q = (0.5 + 0.01) / 1.5 on −1, so p = (0.99 / 1.5)^10
    assert noninferiority_paired(np.full(10, 0.5), 0.01).p == pytest.approx((0.99 / 1.5) ** 10, rel=1e-12)
    assert noninferiority_paired(np.full(10, -0.02), 0.01).p == 1.0
    # the bound is attained: under that law, "all 30 differences ≥ 0" happens with probability 0.99^30
    rng = np.random.default_rng(0)
    draws = np.where(rng.random((200_000, 30)) < 0.01, -1.0, 0.0)
    assert np.mean((draws >= 0).all(axis=1)) == pytest.approx(0.99**30, abs=0.005)
    with pytest.raises(ConfigError):
        noninferiority_paired(np.zeros(5), 0.01, lowest=0.0)
