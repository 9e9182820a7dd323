"""Power before the run: noncentralities against scipy, MDE and n formulas, the demo's and the full-scale plans."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from tli.compare.power import _power, minimum_detectable_effect, n_needed, noncentrality


def test_one_seed_uses_the_normal_approximation():
    lam = noncentrality(0.05, None)
    assert lam == pytest.approx(sps.norm.ppf(0.975) + sps.norm.ppf(0.8))
    assert minimum_detectable_effect(0.12, 987) == pytest.approx(lam * 0.12 / math.sqrt(987))


@pytest.mark.parametrize("df, alpha", [(4, 0.05), (4, 0.05 / 3), (9, 0.01)])
def test_across_seed_power_is_scipys_noncentral_t(df, alpha):
    """P(|T_df(λ)| > t_crit) by integration equals scipy's noncentral t (where scipy is stable), within 1e-6,
    and the noncentrality found gives 80 % power."""
    critical = sps.t.ppf(1 - alpha / 2, df)
    for lam in (1.0, 3.0, 5.0):
        expected = sps.nct.sf(critical, df, lam) + sps.nct.cdf(-critical, df, lam)
        assert _power(lam, critical, df, 2) == pytest.approx(expected, abs=1e-6)
    lam = noncentrality(alpha, df)
    assert sps.nct.sf(critical, df, lam) + sps.nct.cdf(-critical, df, lam) == pytest.approx(0.8, abs=1e-5)


def test_power_by_simulation_of_the_across_seed_test():
    """5 seeds of n = 400 examples, sd 0.3, true effect = the MDE: the random-effects test (τ = 0) rejects at
    alpha 0.05 in 80 % ± 3 % of 4,000 simulated experiments."""
    from tli.seeds import random_effects

    rng = np.random.default_rng(0)
    k, n, sd = 5, 400, 0.3
    effect = minimum_detectable_effect(sd, n, seeds=k)
    rejected = 0
    for _ in range(4000):
        per_seed = rng.normal(effect, sd / math.sqrt(n), k)
        ses = sd * np.sqrt(rng.chisquare(n - 1, k) / (n - 1)) / math.sqrt(n)
        rejected += random_effects(per_seed, ses).p_value() < 0.05
    # the modified Hartung–Knapp variance never falls below the fixed-effect one: at most the nominal power
    assert 0.70 <= rejected / 4000 <= 0.83


def test_n_needed_inverts_the_mde():
    n = n_needed(0.01, 0.12, seeds=5, m=3)
    assert (
        minimum_detectable_effect(0.12, n, seeds=5, m=3)
        <= 0.01
        < minimum_detectable_effect(0.12, n - 1, seeds=5, m=3)
    )


def test_three_seeds_detect_less_than_five_and_less_than_one():
    one, three, five = (minimum_detectable_effect(0.12, 987, seeds=k, m=3) for k in (1, 3, 5))
    assert three > one > five
