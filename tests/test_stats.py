"""Tests for tli.stats: hand-checked statistics, bootstrap, verdicts, CSV I/O, published figures."""

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from tli.errors import ConfigError
from tli.stats import (
    PairedStats,
    bootstrap_ci_mean,
    cohens_d_paired,
    format_p,
    format_stats_table,
    paired_stats,
    read_paired_csv,
    stats_from_csv,
    verdict,
)

PRE = [1.0, 2.0, 3.0, 4.0]
POST = [2.0, 2.0, 5.0, 5.0]  # d = [1, 0, 2, 1]: mean 1, sd sqrt(2/3)

PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "published_per_pair_results.csv"


# --- hand-checkable statistics ----------------------------------------------------------------


def test_paired_stats_by_hand():
    s = paired_stats(PRE, POST, n_boot=2000, rng=1)
    assert s.n == 4
    assert s.mean_pre == pytest.approx(2.5)
    assert s.mean_post == pytest.approx(3.5)
    assert s.change == pytest.approx(1.0)
    assert s.change_pct == pytest.approx(40.0)
    sd = math.sqrt(2 / 3)
    assert s.cohens_d == pytest.approx(1.0 / sd)
    assert s.t == pytest.approx(1.0 / (sd / 2))  # mean / (sd / sqrt(n))
    ref_t = sps.ttest_rel(POST, PRE)
    assert s.t == pytest.approx(ref_t.statistic)
    assert s.p_ttest == pytest.approx(ref_t.pvalue)
    assert s.p_ttest == pytest.approx(2 * sps.t.sf(s.t, df=3))
    assert s.p_wilcoxon == pytest.approx(sps.wilcoxon(POST, PRE).pvalue)
    assert s.ci95_low <= s.change <= s.ci95_high


def test_cohens_d_paired():
    assert cohens_d_paired(PRE, POST) == pytest.approx(1.0 / math.sqrt(2 / 3))
    assert cohens_d_paired(POST, PRE) == pytest.approx(-1.0 / math.sqrt(2 / 3))
    assert math.isnan(cohens_d_paired([1, 2, 3], [2, 3, 4]))  # constant difference


def test_degenerate_differences():
    s = paired_stats([1, 2, 3], [1, 2, 3], n_boot=100)
    assert s.change == 0.0
    assert math.isnan(s.p_wilcoxon)
    assert math.isnan(s.cohens_d)
    assert math.isnan(s.p_ttest)
    assert s.ci95_low == s.ci95_high == 0.0


def test_change_pct_nan_when_mean_pre_zero():
    s = paired_stats([-1.0, 1.0], [0.0, 2.0], n_boot=100)
    assert s.change == pytest.approx(1.0)
    assert math.isnan(s.change_pct)


@pytest.mark.parametrize(
    ("pre", "post", "match"),
    [
        ([1, 2, 3], [1, 2], "same length"),
        ([1], [2], "at least 2"),
        ([1, float("nan")], [1, 2], "non-finite"),
        ([1, 2], [1, float("inf")], "non-finite"),
        ([[1, 2]], [[1, 2]], "1-D"),
    ],
)
def test_validation(pre, post, match):
    with pytest.raises(ConfigError, match=match):
        paired_stats(pre, post)


def test_to_dict():
    s = paired_stats(PRE, POST, n_boot=100)
    d = s.to_dict()
    assert set(d) == {f for f in PairedStats.__dataclass_fields__}
    assert d["n"] == 4 and d["change"] == pytest.approx(1.0)


# --- bootstrap ----------------------------------------------------------------------------------


def test_bootstrap_contains_mean_and_reproducible():
    x = np.random.default_rng(5).normal(0.3, 1.0, size=200)
    a = bootstrap_ci_mean(x, n_boot=3000, confidence=0.95, rng=7)
    b = bootstrap_ci_mean(x, n_boot=3000, confidence=0.95, rng=7)
    c = bootstrap_ci_mean(x, n_boot=3000, confidence=0.95, rng=np.random.default_rng(7))
    assert a == b == c
    assert a[0] < x.mean() < a[1]
    assert bootstrap_ci_mean(x, n_boot=3000, confidence=0.95, rng=8) != a


def test_bootstrap_narrows_with_n_and_with_confidence():
    gen = np.random.default_rng(0)
    small = gen.normal(size=50)
    big = gen.normal(size=5000)
    lo_s, hi_s = bootstrap_ci_mean(small, n_boot=2000, confidence=0.95, rng=0)
    lo_b, hi_b = bootstrap_ci_mean(big, n_boot=2000, confidence=0.95, rng=0)
    assert hi_b - lo_b < 0.3 * (hi_s - lo_s)  # ~ 1/sqrt(100) ratio
    lo_90, hi_90 = bootstrap_ci_mean(small, n_boot=2000, confidence=0.90, rng=0)
    assert hi_90 - lo_90 < hi_s - lo_s


def test_bootstrap_matches_scipy_percentile():
    x = np.random.default_rng(3).gamma(2.0, 1.0, size=150)
    lo, hi = bootstrap_ci_mean(x, n_boot=20_000, confidence=0.95, rng=0)
    ref = sps.bootstrap(
        (x,), np.mean, n_resamples=20_000, confidence_level=0.95, method="percentile", rng=1
    ).confidence_interval
    width = ref.high - ref.low
    assert lo == pytest.approx(ref.low, abs=0.05 * width)
    assert hi == pytest.approx(ref.high, abs=0.05 * width)


def test_bootstrap_chunking_consistent_shape():
    # many resamples of a long vector goes through several chunks
    x = np.linspace(0, 1, 3000)
    lo, hi = bootstrap_ci_mean(x, n_boot=2000, confidence=0.95, rng=0)
    assert lo < 0.5 < hi


@pytest.mark.parametrize(
    "kwargs",
    [{"n_boot": 0}, {"confidence": 1.0}, {"confidence": 0.0}],
)
def test_bootstrap_validation(kwargs):
    with pytest.raises(ConfigError):
        bootstrap_ci_mean([1.0, 2.0], **{"n_boot": 10, "confidence": 0.95, "rng": 0, **kwargs})


# --- verdict / format_p ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "p", "expect", "want"),
    [
        (0.1, 0.2, 0.001, "increase", "supported"),
        (-0.2, -0.1, 0.001, "increase", "contradicted"),
        (-0.2, -0.1, 0.001, "decrease", "supported"),
        (0.1, 0.2, 0.001, "decrease", "contradicted"),
        (-0.1, 0.2, 0.001, "increase", "inconclusive"),  # CI contains 0
        (0.1, 0.2, 0.2, "increase", "inconclusive"),  # not significant
        (0.0, 0.2, 0.001, "increase", "inconclusive"),  # touches 0
        (0.1, 0.2, float("nan"), "increase", "inconclusive"),
        (0.1, 0.2, 0.05, "increase", "inconclusive"),  # p == alpha is not < alpha
    ],
)
def test_verdict(low, high, p, expect, want):
    assert verdict(low, high, p, expect=expect) == want


def test_verdict_alpha_and_bad_expect():
    assert verdict(0.1, 0.2, 0.03, alpha=0.01) == "inconclusive"
    assert verdict(0.1, 0.2, 0.03, alpha=0.05) == "supported"
    with pytest.raises(ConfigError, match="expect"):
        verdict(0.1, 0.2, 0.01, expect="up")


@pytest.mark.parametrize(
    ("p", "want"),
    [
        (0.0, "< 1e-300"),
        (float("nan"), "nan"),
        (1.332011276420994e-240, "1.33e-240"),
        (7.17e-27, "7.17e-27"),
        (0.0312, "0.0312"),
        (0.5, "0.5000"),
        (1.0, "1.0000"),
        (0.001, "0.0010"),
        (0.000999, "9.99e-04"),
    ],
)
def test_format_p(p, want):
    assert format_p(p) == want


# --- CSV ------------------------------------------------------------------------------------------


def _write(tmp_path, text, name="data.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_read_paired_csv_groups(tmp_path):
    p = _write(
        tmp_path,
        "w,sim_pre_tli,sim_post_tli,group\na,1,2,trained\nb,2,2,control\nc,3,5,trained\nd,4,5,control\n",
    )
    data = read_paired_csv(p)
    assert list(data) == ["trained", "control"]
    np.testing.assert_array_equal(data["trained"][0], [1, 3])
    np.testing.assert_array_equal(data["trained"][1], [2, 5])
    np.testing.assert_array_equal(data["control"][1], [2, 5])
    flat = read_paired_csv(p, group=None)
    assert list(flat) == ["all"]
    np.testing.assert_array_equal(flat["all"][0], PRE)
    absent = read_paired_csv(p, group="condition")
    assert list(absent) == ["all"]


def test_read_paired_csv_custom_columns(tmp_path):
    p = _write(tmp_path, "before,after\n1,2\n2,2\n3,5\n4,5\n")
    data = read_paired_csv(p, pre="before", post="after")
    np.testing.assert_array_equal(data["all"][1], POST)


def test_read_paired_csv_missing_column_lists_available(tmp_path):
    p = _write(tmp_path, "before,after,group\n1,2,x\n")
    with pytest.raises(ConfigError) as exc:
        read_paired_csv(p)
    msg = str(exc.value)
    assert "sim_pre_tli" in msg and "before, after, group" in msg and str(p) in msg


def test_read_paired_csv_non_numeric_names_line(tmp_path):
    p = _write(tmp_path, "sim_pre_tli,sim_post_tli\n1,2\n2,oops\n")
    with pytest.raises(ConfigError) as exc:
        read_paired_csv(p)
    msg = str(exc.value)
    assert "line 3" in msg and "sim_post_tli" in msg and "oops" in msg and str(p) in msg


def test_read_paired_csv_short_row_and_nan(tmp_path):
    with pytest.raises(ConfigError, match="line 2"):
        read_paired_csv(_write(tmp_path, "sim_pre_tli,sim_post_tli\n1\n"))
    with pytest.raises(ConfigError, match="finite"):
        read_paired_csv(_write(tmp_path, "sim_pre_tli,sim_post_tli\nnan,1\n", "n.csv"))


def test_read_paired_csv_empty_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="empty"):
        read_paired_csv(_write(tmp_path, ""))
    with pytest.raises(ConfigError, match="no data rows"):
        read_paired_csv(_write(tmp_path, "sim_pre_tli,sim_post_tli\n", "h.csv"))
    with pytest.raises(ConfigError, match="cannot read"):
        read_paired_csv(tmp_path / "nope.csv")


def test_stats_from_csv_and_table(tmp_path):
    rows = ["sim_pre_tli,sim_post_tli,group"]
    gen = np.random.default_rng(0)
    for g, n in (("trained", 30), ("control", 10)):
        pre = gen.uniform(0.2, 0.4, n)
        for a in pre:
            rows.append(f"{a},{a + 0.1 + gen.normal(0, 0.02)},{g}")
    p = _write(tmp_path, "\n".join(rows) + "\n")
    res = stats_from_csv(p, n_boot=500)
    assert list(res) == ["trained", "control", "all"]
    assert res["trained"].n == 30 and res["control"].n == 10 and res["all"].n == 40
    assert res == stats_from_csv(p, n_boot=500)  # reproducible with the default seed
    table = format_stats_table(res)
    lines = table.splitlines()
    assert len(lines) == 2 + 3
    assert lines[0].startswith("| group | n |")
    assert all(line.count("|") == 12 for line in lines)
    assert "| trained | 30 |" in table


def test_stats_from_csv_group_too_small(tmp_path):
    p = _write(tmp_path, "sim_pre_tli,sim_post_tli,group\n1,2,a\n2,3,b\n3,5,b\n")
    with pytest.raises(ConfigError, match="group 'a'.*at least 2"):
        stats_from_csv(p, n_boot=10)


# --- published figures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def published():
    if not PUBLISHED.is_file():
        pytest.skip(f"published reference file not found: {PUBLISHED}")
    return stats_from_csv(PUBLISHED, n_boot=10_000, rng=0)


@pytest.mark.parametrize(
    ("group", "n", "mean_pre", "mean_post", "pct", "p_bound"),
    [
        ("trained", 623, 0.3211, 0.4113, 28.08, 1.33e-240),
        ("control", 63, 0.3143, 0.4033, 28.32, 7.17e-27),
    ],
)
def test_reproduces_published(published, group, n, mean_pre, mean_post, pct, p_bound):
    s = published[group]
    assert s.n == n
    assert round(s.mean_pre, 4) == mean_pre
    assert round(s.mean_post, 4) == mean_post
    assert round(s.change_pct, 2) == pct
    # published "p < bound": the bound is the computed p rounded to 3 significant digits
    assert 0.0 < s.p_ttest
    assert float(f"{s.p_ttest:.2e}") == p_bound
    assert math.floor(math.log10(s.p_ttest)) == math.floor(math.log10(p_bound))
    assert s.ci95_low > 0
    assert verdict(s.ci95_low, s.ci95_high, s.p_ttest) == "supported"


def test_published_pooled(published):
    assert published["all"].n == 686
    assert set(published) == {"trained", "control", "all"}


def test_cli_stats_prints_the_published_figures(published, capsys):
    from tli.cli import main

    assert main(["stats", str(PUBLISHED), "--pre", "sim_pre_tli", "--post", "sim_post_tli"]) == 0
    table = capsys.readouterr().out
    trained = next(line for line in table.splitlines() if line.startswith("| trained "))
    control = next(line for line in table.splitlines() if line.startswith("| control "))
    assert "| 623 | 0.3211 | 0.4113 |" in trained and "+28.08" in trained and "1.33e-240" in trained
    assert "| 63 | 0.3143 | 0.4033 |" in control and "+28.32" in control and "7.17e-27" in control
