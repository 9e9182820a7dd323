"""Claims: corrected verdicts, equivalence verdicts, wording that follows the numbers, seeds."""

import math

import pytest

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


def test_claims_across_seeds():
    a = [dict(_change(0.01, 0.1, 0.3, effect=0.2).to_dict(), verdict="supported", p_adjusted=0.01)]
    b = [dict(_change(0.01, 0.0, 0.2, effect=0.1).to_dict(), verdict="supported", p_adjusted=0.03)]
    c = [dict(_change(0.5, -0.1, 0.2, effect=0.05).to_dict(), verdict="inconclusive", p_adjusted=0.5)]
    both = across_seeds([a, b])[0]
    assert both["verdict"] == "supported" and both["holds_across_seeds"] and both["n_seeds"] == 2
    assert both["effect"] == pytest.approx(0.15) and both["effect_sd"] == pytest.approx(0.0707107, rel=1e-5)
    assert (both["ci95_low"], both["ci95_high"]) == (0.0, 0.3) and both["p_adjusted"] == 0.03
    mixed = across_seeds([a, b, c])[0]
    assert mixed["verdict"] == "inconclusive" and not mixed["holds_across_seeds"]
    assert mixed["note"] == "seeds disagree: 2/3 supported, 1/3 inconclusive"
