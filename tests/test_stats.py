"""stats, order_stats, power and verdict: the sign-test / order-statistic decision rule, against references.

References are independent of the code under test: brute-force binomial searches,
scipy.stats.binom / binomtest / wilcoxon, and examples worked by hand in the comments.
Calibration rates (false-supported rates, coverage, power by simulation) live in
tests/calibration/, not here.
"""
import json
import math
from dataclasses import FrozenInstanceError

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats as sps

from mcis_claims import stats
from mcis_claims.errors import InputError
from mcis_claims.power import required_n, required_n_equivalence, sign_test_power, sign_test_required_n
from mcis_claims.verdict import MAX_UNDETERMINED, VERDICTS, ClaimSpec, Decision, check_family, decide, override

LOG_SESOI = math.log(1.1)

# Seven differences, worked by hand.
# sorted: -1.1 -0.5 0.7 1.5 2.5 3.5 4.2 -> median 1.5; 5 of 7 above 0.
# Sign test of median <= 0: p = P(Bin(7, 1/2) >= 5) = (21 + 7 + 1) / 128 = 29/128.
# |d| ranks: 0.5(-) 0.7(+) 1.1(-) 1.5(+) 2.5(+) 3.5(+) 4.2(+) -> R+ = 24, R- = 4:
# matched-pairs rank-biserial (24 - 4) / 28 = 5/7 (descriptive only).
D = np.array([1.5, -0.5, 2.5, 3.5, 0.7, 4.2, -1.1])
BASE = np.array([1.0, 2.0, 3.0, 0.5, 4.0, 1.5, 2.5])  # arbitrary positive condition-B values


def log_ratio_pair(d, base=None):
    """(a, b) with log(a) - log(b) = d."""
    d = np.asarray(d, dtype=float)
    base = np.linspace(0.5, 3.0, d.size) if base is None else base
    return base * np.exp(d), base


def ratio_estimate(d, **kwargs):
    return stats.paired_log_ratio(*log_ratio_pair(d), n_resamples=99, random_state=0, **kwargs)


def make_spec(**overrides):
    fields = dict(id="C1", title="Plateaus near real activations", statement="H1", source="seed",
                  null_hypothesis="median ratio <= 1.1", statistic="exact sign test of the median",
                  effect="median_ratio", sesoi=1.1, alpha=0.01)
    return ClaimSpec(**{**fields, **overrides})


def brute_rank(n, alpha):
    """Largest l in 0..n with P(Bin(n, 1/2) <= l - 1) <= alpha, by walking l upward."""
    rank = 0
    for l in range(1, n + 1):
        if sps.binom.cdf(l - 1, n, 0.5) <= alpha:
            rank = l
    return rank


def brute_power(n, q, alpha):
    """Power of the one-sided sign test: smallest critical k by search, then P(Bin(n, q) >= k)."""
    critical = next((k for k in range(n + 2) if sps.binom.sf(k - 1, n, 0.5) <= alpha), n + 1)
    return sps.binom.sf(critical - 1, n, q)


def near(center, n=40, spread=0.01):
    """n log ratios tightly around `center`, so the interval is about the center at any level used here."""
    return center + np.linspace(-spread, spread, n)


ALPHAS = st.sampled_from([0.05, 0.01, 0.01 / 32, 0.025, 1 / 64, 0.1, 0.001])
# small integers make ties with each other and with the tested value, the hard case for duality
D_WITH_TIES = st.lists(st.one_of(st.integers(-4, 4).map(float), st.floats(-4, 4)), min_size=1, max_size=60)


# ---------------------------------------------------------------- order statistics


class TestOrderStatisticRank:
    @settings(max_examples=60)
    @given(st.integers(1, 150), ALPHAS)
    def test_matches_a_brute_force_binomial_search(self, n, alpha):
        assert stats.order_statistic_rank(n, alpha) == brute_rank(n, alpha)

    def test_decision_md_example(self):
        # "With alpha = 0.01 and M = 32 ... for n = 128 that is roughly the 45th and 84th order statistics."
        assert stats.order_statistic_rank(128, 0.01 / 32) == 45
        d = np.arange(1.0, 129.0)
        assert stats.median_interval(d, alpha=0.01 / 32) == (45.0, 84.0)

    def test_too_few_units_cannot_bound_the_median(self):
        # n = 5: P(Bin(5, 1/2) <= 0) = 1/32 = 0.031 > 0.01, so no order statistic will do.
        assert stats.order_statistic_rank(5, 0.01) == 0
        assert stats.median_interval(np.arange(5.0), alpha=0.01) == (-math.inf, math.inf)
        assert stats.order_statistic_rank(0, 0.05) == 0


class TestMedianInterval:
    def test_hand_worked(self):
        # n = 10: P(B <= 1) = 11/1024 = 0.011, P(B <= 2) = 56/1024 = 0.055 <= 0.06 -> l = 3: [d_(3), d_(8)].
        assert stats.median_interval(np.arange(1.0, 11.0)[::-1], alpha=0.06) == (3.0, 8.0)
        # at 0.05 only l = 2 qualifies: [d_(2), d_(9)]
        assert stats.median_interval(np.arange(1.0, 11.0), alpha=0.05) == (2.0, 9.0)

    def test_lower_end_from_low_bounds_upper_end_from_high_bounds(self):
        low = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        high = low.copy()
        assert stats.median_interval(low, high, alpha=0.06) == (3.0, 8.0)  # l = 3: [d_(3), d_(8)]
        high[[0, 9]] = np.inf  # two right-censored units: sorted highs 2..9, inf, inf -> 8th is 9
        assert stats.median_interval(low, high, alpha=0.06) == (3.0, 9.0)
        high[[1, 2]] = np.inf  # four: sorted highs 4..9, inf x 4 -> the 8th is inf
        assert stats.median_interval(low, high, alpha=0.06) == (3.0, math.inf)

    @settings(max_examples=300)
    @given(D_WITH_TIES, st.one_of(st.integers(-4, 4).map(float), st.floats(-5, 5)), ALPHAS)
    def test_dual_to_the_one_sided_sign_test(self, d, value, alpha):
        """lo > v exactly when the sign test of median <= v rejects at alpha; hi < v mirrors it."""
        d = np.array(d)
        low, high = stats.median_interval(d, alpha=alpha)
        _, p_greater = stats.sign_test(d, value, alternative="greater")
        _, p_less = stats.sign_test(d, value, alternative="less")
        assert (low > value) == (p_greater <= alpha)
        assert (high < value) == (p_less <= alpha)

    @given(arrays(np.float64, st.integers(1, 60), elements=st.floats(-100, 100)), ALPHAS)
    def test_ends_are_order_statistics_and_bracket_the_median(self, d, alpha):
        low, high = stats.median_interval(d, alpha=alpha)
        rank = brute_rank(d.size, alpha)
        if rank == 0:
            assert (low, high) == (-math.inf, math.inf)
        else:
            ordered = np.sort(d)
            assert (low, high) == (ordered[rank - 1], ordered[d.size - rank])
            assert low <= np.median(d) <= high


class TestSignTest:
    def test_hand_worked(self):
        assert stats.sign_test([1.0, 2, 3, 4, 5, 6], 0.0) == (6, 1 / 64)
        assert stats.sign_test(D, 0.0) == (5, pytest.approx(29 / 128))
        assert stats.sign_test(D, 0.0, alternative="less") == (2, pytest.approx(120 / 128))  # P(B >= 2) = 1 - 8/128

    @settings(max_examples=200)
    @given(D_WITH_TIES, st.integers(-4, 4).map(float), st.sampled_from(["greater", "less"]))
    def test_matches_scipy_binomtest_with_ties_counted_against(self, d, value, alternative):
        d = np.array(d)
        count, p = stats.sign_test(d, value, alternative=alternative)
        beyond = d > value if alternative == "greater" else d < value
        assert count == int(beyond.sum())
        # Ties at `value` stay in n as failures (what keeps the test dual to the interval) ...
        assert p == pytest.approx(sps.binomtest(count, d.size, 0.5, alternative="greater").pvalue, rel=1e-9)
        # ... which is conservative against the textbook test that drops them.
        untied = int(np.count_nonzero(d != value))
        if untied:
            assert p >= sps.binomtest(count, untied, 0.5, alternative="greater").pvalue - 1e-12

    def test_is_one_sided_only(self):
        with pytest.raises(InputError, match="alternative='two-sided'"):
            stats.sign_test(D, 0.0, alternative="two-sided")


class TestPowerAndRequiredN:
    @settings(max_examples=60)
    @given(st.integers(1, 120), st.floats(0.3, 1.0), ALPHAS)
    def test_power_matches_brute_force(self, n, q, alpha):
        assert sign_test_power(n, q, alpha)[0] == pytest.approx(brute_power(n, q, alpha), abs=1e-12)

    @settings(max_examples=15)  # each call scans n = 1..MAX_REQUIRED_N: about 0.5 s
    @given(st.floats(0.56, 1.0), ALPHAS, st.sampled_from([0.8, 0.9, 0.5]))
    def test_required_n_is_the_smallest_n_with_the_power(self, q, alpha, power):
        n = sign_test_required_n(q, alpha, power)
        assert n is not None
        assert sign_test_power(n, q, alpha)[0] >= power
        assert np.all(sign_test_power(np.arange(1, n), q, alpha) < power)  # hence n - 1 too

    def test_equivalence_power_is_the_bonferroni_bound_of_both_tests(self):
        q, q_other, alpha = 0.7, 0.8, 0.01
        n = sign_test_required_n(q, alpha, 0.8, q_other=q_other)
        both = lambda m: 1 - (1 - brute_power(m, q, alpha)) - (1 - brute_power(m, q_other, alpha))
        assert both(n) >= 0.8 and all(both(m) < 0.8 for m in range(1, n))
        assert n >= sign_test_required_n(q, alpha, 0.8)

    @pytest.mark.parametrize("q", [0.5, 0.3, 0.0])
    def test_no_n_suffices_when_q_is_at_most_a_half(self, q):
        assert sign_test_required_n(q, 0.01) is None

    def test_bad_levels(self):
        with pytest.raises(InputError, match="alpha=0, power=0.8"):
            sign_test_required_n(0.7, 0)
        with pytest.raises(InputError, match="power=1"):
            sign_test_required_n(0.7, 0.01, 1)

    def test_required_n_of_a_sample_hand_worked(self):
        # d = 0..9, SESOI 2: shifted so the median is 1.5 x 2 = 3, i.e. d - 1.5 = -1.5..7.5;
        # q = P(shifted > 2) = 6/10. The answer is the brute-force smallest n with power 0.8 at q = 0.6.
        sample = stats.paired_difference(np.arange(10.0), np.zeros(10)).sample
        n = required_n(sample, sesoi=2.0, alpha=0.05, power=0.8)
        expected = next(m for m in range(1, 2000) if brute_power(m, 0.6, 0.05) >= 0.8)
        assert n == expected
        # "less": shifted = d - 4.5 - 3 = -7.5..1.5; q = P(shifted < -2) = 6/10 again.
        assert required_n(sample, sesoi=-2.0, alpha=0.05, alternative="less") == expected

    def test_required_n_equivalence_hand_worked(self):
        # d = 0..9 centred: -4.5..4.5; margin 2: q = P(> -2) = 7/10, q_other = P(< 2) = 7/10.
        sample = stats.paired_difference(np.arange(10.0), np.zeros(10)).sample
        n = required_n_equivalence(sample, margin=2.0, alpha=0.05)
        assert n == sign_test_required_n(0.7, 0.05, 0.8, q_other=0.7)
        assert 1 - 2 * (1 - brute_power(n, 0.7, 0.05)) >= 0.8

    def test_inconclusive_quotes_the_n_of_the_test_actually_used(self):
        """The n quoted is at the family-adjusted level alpha / M, and reaches power 0.8 there."""
        rng = np.random.default_rng(4)
        d = rng.normal(LOG_SESOI, 0.3, 30)
        decision = decide(make_spec(), ratio_estimate(d), family=32)
        assert decision.verdict == "inconclusive" and decision.required_n is not None
        shifted = d - np.median(d) + 1.5 * LOG_SESOI
        q = float(np.mean(shifted > LOG_SESOI))
        assert brute_power(decision.required_n, q, 0.01 / 32) >= 0.8
        assert brute_power(decision.required_n - 1, q, 0.01 / 32) < 0.8
        assert f"about {decision.required_n} base prompts" in decision.reason

    def test_settled_verdicts_quote_no_n(self):
        assert decide(make_spec(), ratio_estimate(near(math.log(1.5))), family=1).required_n is None


# ---------------------------------------------------------------- paired estimates


class TestPairedLogRatio:
    def test_hand_worked(self):
        est = stats.paired_log_ratio(*log_ratio_pair(D, BASE), random_state=0)
        assert est.name == "median_ratio" and est.null_value == 1.0
        assert est.value == pytest.approx(math.exp(1.5))
        assert (est.statistic, est.pvalue) == (5.0, pytest.approx(29 / 128))  # no SESOI: tested against 1
        assert est.n == 7 and est.alternative == "greater" and est.extra["n_dropped"] == 0
        assert "sign test" in est.statistic_name and "order statistics" in est.ci_method
        # n = 7, 95%: P(B <= 0) = 1/128 <= 0.025 < P(B <= 1) -> l = 1: [min, max]
        assert est.confidence_interval == pytest.approx((math.exp(-1.1), math.exp(4.2)))

    def test_tests_the_median_against_the_sesoi(self):
        # sorted D: 0.7 is the only one in (0, 1); against log SESOI = 1 only 4 of 7 lie above.
        est = stats.paired_log_ratio(*log_ratio_pair(D, BASE), sesoi=math.e)
        assert est.statistic == 4.0
        assert est.pvalue == pytest.approx(sps.binomtest(4, 7, 0.5, alternative="greater").pvalue)
        assert est.extra["tested_value"] == pytest.approx(math.e)
        assert "required_n" in est.extra

    @settings(max_examples=30)
    @given(arrays(np.float64, st.integers(5, 60), elements=st.floats(-3, 3)),
           st.sampled_from([0.9, 0.95, 0.98]))
    def test_interval_is_exp_of_the_order_statistic_interval(self, d, level):
        est = stats.paired_log_ratio(np.exp(d), np.ones_like(d), confidence_level=level, n_resamples=9)
        low, high = stats.median_interval(d, alpha=(1 - level) / 2)
        assert est.confidence_interval == pytest.approx((math.exp(low), math.exp(high)))
        assert est.confidence_level == level

    def test_two_sided_is_twice_the_smaller_one_sided_p(self):
        est = stats.paired_log_ratio(*log_ratio_pair(D, BASE), alternative="two-sided")
        assert est.pvalue == pytest.approx(2 * 29 / 128)

    def test_descriptive_numbers_are_scipy_and_named_as_such(self):
        rng = np.random.default_rng(3)
        d = rng.normal(0.2, 1, 40)
        est = stats.paired_log_ratio(np.exp(d), np.ones(40), n_resamples=199, random_state=0)
        desc = est.extra["descriptive"]
        assert "descriptive only" in desc["note"]
        assert desc["wilcoxon_two_sided_p"] == pytest.approx(sps.wilcoxon(d).pvalue, rel=1e-6)
        assert desc["rank_biserial"] == pytest.approx(stats.matched_pairs_rank_biserial(d))
        assert desc["d_z"] == pytest.approx(stats.cohens_dz(d))
        assert desc["bootstrap_method"].startswith("percentile bootstrap over base prompts")
        assert est.pvalue == pytest.approx(sps.binomtest(int((d > 0).sum()), 40, 0.5, alternative="greater").pvalue)

    def test_non_finite_pairs_are_dropped_and_counted(self):
        a, b = log_ratio_pair(D, BASE)
        dirty = stats.paired_log_ratio(np.append(a, [np.nan, 2.0, np.inf]), np.append(b, [1.0, np.nan, 1.0]),
                                       random_state=1)
        clean = stats.paired_log_ratio(a, b, random_state=1)
        assert dirty.extra["n_dropped"] == 3 and dirty.n == 7
        assert (dirty.value, dirty.confidence_interval, dirty.pvalue) == (clean.value, clean.confidence_interval,
                                                                         clean.pvalue)

    def test_all_zero_differences(self):
        est = stats.paired_log_ratio(np.full(8, 3.0), np.full(8, 3.0))
        assert est.value == 1.0 and est.pvalue == 1.0  # ties count against: P(B >= 0) = 1
        assert est.confidence_interval == (1.0, 1.0)
        assert est.extra["descriptive"]["n_zero"] == 8

    def test_deterministic_at_a_fixed_seed(self):
        """Only the descriptive bootstrap draws random numbers; the decision never depends on the seed."""
        rng = np.random.default_rng(11)
        a, b = np.exp(rng.normal(size=30)), np.exp(rng.normal(size=30))
        first = stats.paired_log_ratio(a, b, n_resamples=499, random_state=42)
        again = stats.paired_log_ratio(a, b, n_resamples=499, random_state=42)
        other = stats.paired_log_ratio(a, b, n_resamples=499, random_state=43)
        assert first == again and first.to_dict() == again.to_dict()
        assert first.extra["descriptive"]["bootstrap_ci"] != other.extra["descriptive"]["bootstrap_ci"]
        assert (first.value, first.confidence_interval, first.pvalue) == (other.value, other.confidence_interval,
                                                                         other.pvalue)
        spec = make_spec()
        assert decide(spec, first, family=4) == decide(spec, other, family=4)

    def test_result_is_frozen(self):
        est = ratio_estimate(D)
        with pytest.raises(FrozenInstanceError):
            est.value = 2.0

    @settings(max_examples=25)
    @given(arrays(np.float64, st.integers(6, 30), elements=st.floats(-3, 3)))
    def test_swapping_a_and_b_mirrors_everything(self, d):
        a, b = np.exp(d), np.ones_like(d)
        forward = stats.paired_log_ratio(a, b, alternative="greater", n_resamples=9)
        backward = stats.paired_log_ratio(b, a, alternative="less", n_resamples=9)
        assert forward.value * backward.value == pytest.approx(1.0)
        assert forward.pvalue == pytest.approx(backward.pvalue)
        assert forward.confidence_interval.low * backward.confidence_interval.high == pytest.approx(1.0)
        assert forward.confidence_interval.high * backward.confidence_interval.low == pytest.approx(1.0)


class TestPairedDifference:
    def test_hand_worked(self):
        est = stats.paired_difference(D + 10.0, np.full(7, 10.0))
        assert est.name == "median_difference" and est.null_value == 0.0
        assert est.value == pytest.approx(1.5)
        assert est.pvalue == pytest.approx(29 / 128)

    def test_less_is_the_mirror_of_greater(self):
        up = stats.paired_difference(D, np.zeros(7), alternative="greater")
        down = stats.paired_difference(-D, np.zeros(7), alternative="less")
        assert up.pvalue == pytest.approx(down.pvalue) and up.value == -down.value

    def test_accepts_signed_values(self):
        est = stats.paired_difference([-3.0, -1, 0, 2, 5], [0.0, 0, 0, 0, 0])
        assert est.value == 0.0 and est.n == 5


# ---------------------------------------------------------------- censoring


class TestCensoring:
    """A right-censored radius is a lower bound; a pair counts only where its bound decides its side."""

    def test_censored_a_with_a_bound_above_the_sesoi_counts_for_the_claim(self):
        a, b = np.full(12, 1.5), np.ones(12)
        censored = np.zeros(12, dtype=bool)
        censored[:3] = True
        a[:3] = 1.3  # the curve never crossed by radius 1.3: ratio > 1.3 > SESOI 1.1, sign known
        est = stats.paired_log_ratio(a, b, censored_a=censored, sesoi=1.1)
        assert est.statistic == 12 and est.pvalue == pytest.approx(0.5 ** 12)
        assert est.sample.censored == {"a": 0.25, "b": 0.0}
        decision = decide(make_spec(), est, family=1)
        assert decision.verdict == "supported" and decision.undetermined_fraction == 0.0
        assert decision.censored_fraction == {"a": 0.25, "b": 0.0}

    def test_an_undetermined_pair_counts_against_the_claim(self):
        # Two of 12 censored at ratio > 1.05: they may lie either side of 1.1, so they count below it.
        # k = 10 of 12: p = P(B >= 10) = (66 + 12 + 1) / 4096. Undetermined 2/12 = 17 % <= 20 %.
        a, b = np.full(12, 1.5), np.ones(12)
        censored = np.zeros(12, dtype=bool)
        censored[:2] = True
        a[:2] = 1.05
        est = stats.paired_log_ratio(a, b, censored_a=censored, sesoi=1.1)
        assert est.statistic == 10 and est.pvalue == pytest.approx(79 / 4096)
        decision = decide(make_spec(), est, family=1)
        assert decision.p_value == pytest.approx(79 / 4096)
        assert decision.undetermined_fraction == pytest.approx(2 / 12)
        # n = 12 at alpha 0.01: l = 2; lo = 2nd smallest lower bound = log 1.05 < SESOI; hi = inf.
        assert decision.interval == pytest.approx((1.05, math.inf))
        assert decision.verdict == "inconclusive"

    def test_too_many_undetermined_pairs_make_the_cell_inconclusive(self):
        # 3 of 12 = 25 % > MAX_UNDETERMINED: even a clear interval does not decide.
        a, b = np.full(12, 3.0), np.ones(12)
        censored = np.zeros(12, dtype=bool)
        censored[:3] = True
        a[:3] = 1.05
        decision = decide(make_spec(alpha=0.05), stats.paired_log_ratio(a, b, censored_a=censored), family=1)
        assert MAX_UNDETERMINED == 0.2
        assert decision.verdict == "inconclusive" and decision.required_n is None
        assert "censoring leaves the side of the SESOI 1.1 open for 25% of units" in decision.reason

    def test_censored_b_is_an_upper_bound_that_can_decide_a_less_claim(self):
        # b censored at 2: ratio a/b < 1/2 < SESOI 0.9, so it counts for "less" (and against "greater").
        a, b = np.full(12, 0.5), np.ones(12)
        censored = np.zeros(12, dtype=bool)
        censored[:3] = True
        b[:3] = 1.0  # a = 0.5, b censored at 1.0 -> ratio < 0.5
        est = stats.paired_log_ratio(a, b, censored_b=censored, alternative="less", sesoi=0.9)
        assert est.statistic == 12 and est.sample.censored == {"a": 0.0, "b": 0.25}
        assert np.isneginf(est.sample.low[:3]).all() and np.allclose(est.sample.high[:3], math.log(0.5))
        assert decide(make_spec(sesoi=0.9, alternative="less"), est, family=1).verdict == "supported"

    def test_both_censored_units_are_unknown_and_count_against_every_finding(self):
        # 18 units at ratio 0.5 (reversed for a "greater" claim), 2 with both arms censored.
        a, b = np.full(20, 0.5), np.ones(20)
        both = np.zeros(20, dtype=bool)
        both[:2] = True
        est = stats.paired_log_ratio(a, b, censored_a=both, censored_b=both)
        assert np.isnan(est.sample.point[:2]).all()
        assert est.value == pytest.approx(0.5)  # the median of what is known
        assert est.sample.undetermined_fraction(0.0) == pytest.approx(0.1)
        decision = decide(make_spec(), est, family=1)
        # the reversal test counts 18 of 20 below 0, not 20: P(B(20) >= 18) = (190 + 20 + 1) / 2^20
        assert decision.other_tests["reversed_p_adjusted"] == pytest.approx(211 / 2 ** 20)
        assert decision.verdict == "reversed"  # still clear: l = 5 at n = 20, hi = 5th largest upper bound
        assert decision.censored_fraction == {"a": 0.1, "b": 0.1}

    def test_censored_a_counts_against_negligible(self):
        """Worst-case placement for the refutation: an open upper bound lies above the SESOI."""
        a, b = np.full(12, 1.02), np.ones(12)
        censored = np.zeros(12, dtype=bool)
        censored[:2] = True  # bounds 1.02: may be above 1.1
        est = stats.paired_log_ratio(a, b, censored_a=censored)
        decision = decide(make_spec(), est, family=1)
        # negligible test: 10 of 12 below log 1.1 -> p = 79/4096 > 0.01; at l = 2 hi = inf.
        assert decision.other_tests["negligible_p_adjusted"] == pytest.approx(79 / 4096)
        assert decision.verdict == "inconclusive"
        uncensored = decide(make_spec(), stats.paired_log_ratio(a, b), family=1)
        assert uncensored.verdict == "negligible"

    def test_censoring_flags_are_validated(self):
        with pytest.raises(InputError, match="censored_a must be 6 booleans"):
            stats.paired_log_ratio(np.ones(6), np.ones(6), censored_a=[1, 0, 0, 0, 0, 0])
        with pytest.raises(InputError, match="censored_b must be 6 booleans"):
            stats.paired_log_ratio(np.ones(6), np.ones(6), censored_b=np.zeros(5, dtype=bool))


class TestByDocument:
    """Windows of one document are not independent: the sign test's unit is the document."""

    DOCS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 4, 5])
    D = np.array([1.0, 2, 9, 4, 5, 6, -1, -2, -3, 7, 8, 0.5])  # doc medians 2, 5, -2, 7, 8, 0.5

    def test_one_unit_per_document_at_its_median(self):
        est = stats.paired_difference(self.D, np.zeros(12), documents=self.DOCS, n_resamples=99)
        units = est.sample.by_document()
        np.testing.assert_array_equal(units.low, [2, 5, -2, 7, 8, 0.5])
        np.testing.assert_array_equal(units.high, units.low)
        assert units.n == units.n_documents == 6 and est.sample.n_documents == 6
        assert est.n == 6 and est.statistic == 5  # 5 of 6 document medians above 0
        assert est.pvalue == pytest.approx(7 / 64)
        assert decide(make_spec(effect="median_difference", sesoi=0.1), est, family=1).n == 6
        assert "cluster bootstrap over 6 documents" in est.extra["descriptive"]["bootstrap_method"]

    def test_a_censored_window_can_be_settled_by_its_documents_median(self):
        # Windows d = (>= 3 censored, 1, 2): whatever the censored value, the document's median is 2.
        censored = np.zeros(12, dtype=bool)
        censored[2] = True
        d = self.D.copy()
        d[2] = 3.0
        est = stats.paired_difference(d, np.zeros(12), censored_a=censored, documents=self.DOCS)
        units = est.sample.by_document()
        assert (units.low[0], units.high[0]) == (2.0, 2.0)

    def test_distinct_documents_change_nothing(self):
        sample = stats.paired_difference(self.D, np.zeros(12), documents=np.arange(12)).sample
        assert sample.by_document() is sample
        assert stats.paired_difference(self.D, np.zeros(12)).sample.by_document().n == 12

    def test_documents_must_match_the_pairs(self):
        with pytest.raises(InputError, match="documents has 11 entries and a has 12"):
            stats.paired_difference(self.D, np.zeros(12), documents=self.DOCS[:11])


# ---------------------------------------------------------------- the four verdicts


class TestDirectional:
    GREATER = make_spec(sesoi=1.1, alternative="greater")
    LESS = make_spec(sesoi=0.9, alternative="less")

    @pytest.mark.parametrize("ratio, verdict", [
        (1.5, "supported"),  # interval above 1.1
        (1.05, "negligible"),  # wholly between the null and the SESOI
        (0.7, "reversed"),  # wholly below the null
    ])
    def test_greater(self, ratio, verdict):
        decision = decide(self.GREATER, ratio_estimate(near(math.log(ratio))), family=1)
        assert decision.verdict == verdict, decision.reason
        assert decision.refuted == (verdict in ("negligible", "reversed"))
        assert "\n" not in decision.reason

    @pytest.mark.parametrize("ratio, verdict", [(0.7, "supported"), (0.95, "negligible"), (1.3, "reversed")])
    def test_less_mirrors_greater(self, ratio, verdict):
        est = ratio_estimate(near(math.log(ratio)), alternative="less")
        assert decide(self.LESS, est, family=1).verdict == verdict

    def test_inconclusive_when_the_interval_straddles_the_sesoi(self):
        decision = decide(self.GREATER, ratio_estimate(near(LOG_SESOI, spread=0.2)), family=1)
        assert decision.verdict == "inconclusive" and "straddles SESOI 1.1" in decision.reason

    def test_reasons_name_the_numbers(self):
        decision = decide(self.GREATER, ratio_estimate(near(math.log(1.5))), family=1)
        assert "lies above SESOI 1.1" in decision.reason and "p_adj=" in decision.reason
        assert "(M=1)" in decision.reason
        assert "opposite direction" in decide(self.GREATER, ratio_estimate(near(math.log(0.7))), family=1).reason

    def test_difference_effects_use_the_same_rule(self):
        spec = make_spec(effect="median_difference", sesoi=0.2)
        est = stats.paired_difference(near(0.5), np.zeros(40))
        decision = decide(spec, est, family=1)
        assert decision.verdict == "supported" and decision.interval == pytest.approx((0.49, 0.51), abs=0.01)

    def test_estimate_of_the_wrong_kind_is_a_usage_error(self):
        est = stats.paired_difference(near(0.5), np.zeros(40))
        with pytest.raises(InputError, match="use paired_log_ratio for a ratio effect"):
            decide(self.GREATER, est, family=1)

    def test_a_health_check_makes_it_inconclusive_with_that_reason(self):
        decision = decide(self.GREATER, ratio_estimate(near(math.log(1.5))), family=1, problem="60% censored")
        assert decision.verdict == "inconclusive" and decision.reason == "60% censored"

    def test_override_keeps_the_numbers(self):
        decision = decide(self.GREATER, ratio_estimate(near(LOG_SESOI, spread=0.2)), family=1)
        changed = override(decision, "negligible", "precondition false")
        assert (changed.verdict, changed.reason, changed.required_n) == ("negligible", "precondition false", None)
        assert changed.interval == decision.interval and changed.p_value == decision.p_value

    @settings(max_examples=80)
    @given(arrays(np.float64, st.integers(5, 80), elements=st.floats(-1, 1)),
           st.sampled_from(["greater", "less"]), st.sampled_from([1, 2, 7, 32]))
    def test_verdict_and_adjusted_p_values_agree(self, d, alternative, family):
        """The p-value is the interval's decision in another form, for each of the three findings."""
        greater = alternative == "greater"
        spec = make_spec(sesoi=1.1 if greater else 1 / 1.1, alternative=alternative)
        decision = decide(spec, stats.paired_log_ratio(np.exp(d), np.ones_like(d), alternative=alternative,
                                                       n_resamples=9), family=family)
        assert decision.verdict in VERDICTS
        assert (decision.verdict == "supported") == (decision.p_adjusted <= spec.alpha)
        assert (decision.verdict == "reversed") == (decision.other_tests["reversed_p_adjusted"] <= spec.alpha)
        if decision.verdict != "reversed":
            assert ((decision.verdict == "negligible")
                    == (decision.other_tests["negligible_p_adjusted"] <= spec.alpha))


class TestExistence:
    SPEC = make_spec(kind="existence", sesoi=1.0)

    @pytest.mark.parametrize("ratio, verdict", [(1.05, "supported"), (0.95, "reversed"), (1.0, "inconclusive")])
    def test_against_the_null(self, ratio, verdict):
        decision = decide(self.SPEC, ratio_estimate(near(math.log(ratio), spread=0.02)), family=1)
        assert decision.verdict == verdict and "the null 1" in decision.reason

    def test_never_negligible(self):
        # 1.05 would be "negligible" against a SESOI of 1.1; an existence claim has no SESOI above the null.
        decision = decide(self.SPEC, ratio_estimate(near(math.log(1.05))), family=1)
        assert decision.verdict == "supported" and "negligible_p_adjusted" not in decision.other_tests

    def test_less(self):
        spec = make_spec(kind="existence", sesoi=1.0, alternative="less")
        assert decide(spec, ratio_estimate(near(math.log(0.9)), alternative="less"), family=1).verdict == "supported"
        assert decide(spec, ratio_estimate(near(math.log(1.1)), alternative="less"), family=1).verdict == "reversed"
        with pytest.raises(InputError, match="alternative='less' but the estimate was built with alternative='greater'"):
            decide(spec, ratio_estimate(near(math.log(0.9))), family=1)  # an authoring slip is an error, not a verdict

    def test_an_estimate_of_another_effect_is_refused(self):
        spec = make_spec(effect="median_difference", sesoi=0.1)
        with pytest.raises(InputError, match="effect='median_difference' but the estimate is a ratio"):
            decide(spec, ratio_estimate(near(0.5)), family=1)


class TestEquivalence:
    # Ratio effect, margin 0.1: equivalence region (1/1.1, 1.1) = (0.909, 1.1).
    SPEC = make_spec(kind="equivalence", sesoi=0.1)

    def estimate(self, d):
        return stats.equivalence_log_ratio(*log_ratio_pair(d), margin=0.1, alpha=0.01, n_resamples=9)

    @pytest.mark.parametrize("center, verdict", [
        (0.0, "supported"),
        (math.log(1.5), "reversed"),  # "the effect is still there", above
        (math.log(0.7), "reversed"),  # ... or below
        (math.log(1.1), "inconclusive"),  # on the edge of the margin
    ])
    def test_ratio_margin_is_multiplicative(self, center, verdict):
        decision = decide(self.SPEC, self.estimate(near(center)), family=1)
        assert decision.verdict == verdict, decision.reason
        assert "margin (0.909, 1.1)" in decision.reason
        if verdict == "reversed":
            assert "still there" in decision.reason
        if verdict == "inconclusive":
            assert decision.required_n is not None

    def test_difference_margin_is_additive(self):
        spec = make_spec(kind="equivalence", sesoi=0.2, effect="median_difference")
        inside = stats.paired_difference(near(0.0), np.zeros(40))
        outside = stats.paired_difference(near(0.5), np.zeros(40))
        assert decide(spec, inside, family=1).verdict == "supported"
        decision = decide(spec, outside, family=1)
        assert decision.verdict == "reversed" and "margin (-0.2, 0.2)" in decision.reason

    def test_tost_p_values_are_two_sign_tests(self):
        rng = np.random.default_rng(8)
        d = rng.normal(0.0, 0.05, 30)
        est = self.estimate(d)
        margin = math.log(1.1)
        p_lower = sps.binomtest(int((d > -margin).sum()), 30, 0.5, alternative="greater").pvalue
        p_upper = sps.binomtest(int((d < margin).sum()), 30, 0.5, alternative="greater").pvalue
        assert est.extra["p_lower"] == pytest.approx(p_lower) and est.extra["p_upper"] == pytest.approx(p_upper)
        assert est.pvalue == pytest.approx(max(p_lower, p_upper))
        assert est.extra["margin"] == pytest.approx((1 / 1.1, 1.1))
        decision = decide(self.SPEC, est, family=3)
        assert decision.p_adjusted == pytest.approx(min(1.0, 3 * max(p_lower, p_upper)))

    @settings(max_examples=8)  # an equivalence estimate computes required_n (about 1 s); tost_paired below
    @given(arrays(np.float64, st.integers(5, 60), elements=st.floats(-0.3, 0.3)), st.sampled_from([1, 4, 32]))
    def test_supported_exactly_when_both_adjusted_sign_tests_reject(self, d, family):
        decision = decide(self.SPEC, self.estimate(d), family=family)
        assert (decision.verdict == "supported") == (decision.p_adjusted <= self.SPEC.alpha)


class TestTostPaired:
    # All seven within (-1, 1): both one-sided sign tests have every unit in their favour,
    # so p_lower = p_upper = 1/2^7. At alpha 0.05, n = 7: l = 1 (P(B <= 0) = 1/128), interval [min, max].
    SMALL = np.array([0.1, -0.2, 0.3, -0.1, 0.05, 0.2, -0.15])

    def test_hand_worked(self):
        result = stats.tost_paired(self.SMALL, margin=1.0, alpha=0.05)
        assert (result.p_lower, result.p_upper, result.pvalue) == pytest.approx((1 / 128, 1 / 128, 1 / 128))
        assert result.equivalent and result.confidence_level == pytest.approx(0.90)
        assert result.estimate == pytest.approx(0.05)
        assert result.confidence_interval == (-0.2, 0.3)

    def test_not_equivalent_when_the_effect_is_large(self):
        result = stats.tost_paired(self.SMALL + 3.0, margin=1.0)
        assert result.p_upper == pytest.approx(1.0) and not result.equivalent

    def test_confidence_level_sets_alpha(self):
        result = stats.tost_paired(self.SMALL, margin=1.0, confidence_level=0.98)
        assert result.alpha == pytest.approx(0.01) and result.confidence_level == pytest.approx(0.98)
        json.dumps(result.to_dict(), allow_nan=False)

    @given(arrays(np.float64, st.integers(5, 60), elements=st.floats(-2, 2)), st.floats(0.05, 2), ALPHAS)
    def test_equivalent_exactly_when_the_interval_lies_inside_the_margin(self, d, margin, alpha):
        result = stats.tost_paired(d, margin=margin, alpha=alpha)
        low, high = result.confidence_interval
        assert result.equivalent == (-margin < low and high < margin)


# ---------------------------------------------------------------- the family


class TestFamily:
    # n = 40, 28 units at ratio 1.5 and 12 at 1.0: p = P(Bin(40, 1/2) >= 28) = 0.0083.
    # Alone (M = 1) that clears alpha = 0.01; in a 32-cell family 32 p = 0.27 does not.
    D_NEAR = np.r_[np.full(28, math.log(1.5)), np.zeros(12)]

    def test_supported_alone_becomes_inconclusive_in_a_family_of_32(self):
        est = ratio_estimate(self.D_NEAR)
        alone, in_grid = decide(make_spec(), est, family=1), decide(make_spec(), est, family=32)
        p = sps.binom.sf(27, 40, 0.5)
        assert alone.verdict == "supported" and alone.p_value == pytest.approx(p)
        assert in_grid.verdict == "inconclusive" and in_grid.p_adjusted == pytest.approx(32 * p)
        assert (alone.family, in_grid.family) == (1, 32) and "(M=32)" in in_grid.reason

    @settings(max_examples=40)
    @given(arrays(np.float64, st.integers(5, 80), elements=st.floats(-1, 1)), st.integers(1, 64))
    def test_the_interval_is_at_one_minus_two_alpha_over_m(self, d, family):
        spec = make_spec()
        decision = decide(spec, stats.paired_log_ratio(np.exp(d), np.ones_like(d), n_resamples=9), family=family)
        low, high = stats.median_interval(d, alpha=spec.alpha / family)
        assert decision.level == pytest.approx(1 - 2 * spec.alpha / family)
        assert decision.interval == pytest.approx((math.exp(low), math.exp(high)))
        assert decision.p_adjusted == pytest.approx(min(1.0, family * decision.p_value))
        assert f"{100 * decision.level:.4g}% CI" in decision.reason

    @pytest.mark.parametrize("family", [0, -1, 2.5, True, None, "32"])
    def test_family_must_be_a_positive_integer(self, family):
        est = ratio_estimate(self.D_NEAR)
        with pytest.raises(InputError, match=r"^family=") as info:
            decide(make_spec(), est, family=family)
        assert "\n" not in str(info.value)
        with pytest.raises(InputError, match="family="):
            check_family(family)


# ---------------------------------------------------------------- ClaimSpec


class TestClaimSpec:
    @pytest.mark.parametrize("overrides, field", [
        ({"id": " "}, "id"),
        ({"alpha": 0.5}, "alpha"),
        ({"alpha": 0}, "alpha"),
        ({"alpha": 0.7}, "alpha"),
        ({"alpha": -0.01}, "alpha"),
        ({"kind": "causal"}, "kind"),
        ({"alternative": "two-sided"}, "alternative"),
        ({"sesoi": float("nan")}, "sesoi"),
        ({"kind": "equivalence", "sesoi": 0.0}, "sesoi"),
        ({"sesoi": 0.9}, "sesoi"),  # a "greater" ratio claim with its SESOI below the null
        ({"sesoi": 1.0}, "sesoi"),  # ... or at it
        ({"sesoi": 1.1, "alternative": "less"}, "sesoi"),
        ({"sesoi": -0.1, "effect": "median_difference"}, "sesoi"),
        ({"sesoi": 0.1, "effect": "median_difference", "alternative": "less"}, "sesoi"),
        ({"sesoi": -2.0}, "sesoi"),  # a ratio SESOI must be positive
    ])
    def test_fails_at_construction_in_one_line_naming_the_field(self, overrides, field):
        with pytest.raises(InputError, match=rf"{field}=") as info:
            make_spec(**overrides)
        assert "\n" not in str(info.value)

    def test_wrong_side_message_says_where(self):
        with pytest.raises(InputError, match="sesoi=0.9 must lie above the null 1 for alternative='greater'"):
            make_spec(sesoi=0.9)

    @pytest.mark.parametrize("overrides", [
        {"sesoi": 0.9, "alternative": "less"},
        {"kind": "existence", "sesoi": 1.0},
        {"kind": "equivalence", "sesoi": 0.1},
        {"effect": "median_difference", "sesoi": 0.2},
    ])
    def test_valid_specs(self, overrides):
        assert make_spec(**overrides).ci_level == pytest.approx(0.98)

    def test_to_dict_round_trips(self):
        spec = make_spec()
        assert ClaimSpec(**spec.to_dict()) == spec
        json.dumps(spec.to_dict(), allow_nan=False)


# ---------------------------------------------------------------- JSON


class TestToDict:
    """Records go to results.json: no NaN or inf may reach it."""

    def test_estimate_with_censoring_and_nan_descriptives_is_strict_json(self):
        a, b = np.full(6, 2.0), np.ones(6)  # d_z is NaN: sd is 0
        censored = np.array([True, False, False, False, False, False])
        est = stats.paired_log_ratio(a, b, censored_a=censored, confidence_level=0.99)  # n = 6: interval open
        payload = json.loads(json.dumps(est.to_dict(), allow_nan=False))
        assert payload["extra"]["descriptive"]["d_z"] is None
        assert payload["confidence_interval"]["high"] is None  # inf
        assert payload["sample"]["censored_fraction"] == {"a": pytest.approx(1 / 6), "b": 0.0}

    def test_equivalence_estimate_is_strict_json(self):
        est = stats.equivalence_log_ratio(np.full(6, 2.0), np.ones(6), margin=0.1, alpha=0.01)
        payload = json.loads(json.dumps(est.to_dict(), allow_nan=False))
        assert payload["statistic"] is None  # NaN: TOST has no single statistic

    def test_decision_with_finite_numbers_is_strict_json(self):
        decision = decide(make_spec(), ratio_estimate(near(math.log(1.5))), family=2)
        payload = json.loads(json.dumps(decision.to_dict(), allow_nan=False))
        assert payload["verdict"] == "supported" and payload["family"] == 2

    def test_decision_with_an_open_interval_is_strict_json(self):
        # n = 6 at family 32: no order statistic bounds the median, the interval is (0, inf).
        decision = decide(make_spec(), stats.paired_log_ratio(np.full(6, 2.0), np.ones(6)), family=32)
        assert decision.interval == (0.0, math.inf)
        json.dumps(decision.to_dict(), allow_nan=False)


# ---------------------------------------------------------------- input validation


class TestInputValidation:
    @pytest.mark.parametrize("fn", [stats.paired_log_ratio, stats.paired_difference])
    @pytest.mark.parametrize("a, b, message", [
        (np.ones((3, 4)), np.ones((3, 4)), r"a has shape \(3, 4\): pass a 1-D array"),
        (np.ones(6), np.ones(7), "a has 6 values and b has 7"),
        (np.ones(4), np.ones(4), r"only 4 finite pairs \(of 4\): need at least 5"),
        ([1, 2, np.nan, 4, 5, 6], [1, 2, 3, np.inf, np.nan, 6], r"only 3 finite pairs \(of 6\)"),
        (np.full(6, np.nan), np.ones(6), "all 6 pairs are non-finite"),
        (["x"] * 6, np.ones(6), "a is not numeric"),
    ])
    def test_bad_pairs(self, fn, a, b, message):
        with pytest.raises(InputError, match=message) as info:
            fn(a, b)
        assert "\n" not in str(info.value)

    def test_log_ratio_needs_positive_values(self):
        with pytest.raises(InputError, match=r"b\[3\] = -1: a log ratio needs positive values"):
            stats.paired_log_ratio(np.ones(6), [1, 2, 3, -1, 5, 6])
        with pytest.raises(InputError, match=r"a\[0\] = 0:"):
            stats.paired_log_ratio([0, 2, 3, 4, 5, 6], np.ones(6))
        with pytest.raises(InputError, match="sesoi=0"):
            stats.paired_log_ratio(np.ones(6), np.ones(6), sesoi=0)

    @pytest.mark.parametrize("kwargs, message", [
        ({"alternative": "bigger"}, "alternative='bigger'"),
        ({"confidence_level": 95}, "confidence_level=95"),
        ({"n_resamples": 0}, "n_resamples=0"),
    ])
    def test_bad_options(self, kwargs, message):
        with pytest.raises(InputError, match=message):
            stats.paired_difference(np.arange(6.0), np.zeros(6), **kwargs)

    def test_effect_size_helpers_reject_nan(self):
        with pytest.raises(InputError, match="d contains NaN or inf"):
            stats.cohens_dz([1.0, np.nan, 2.0])

    def test_tost_margin_and_alpha(self):
        with pytest.raises(InputError, match="margin=0"):
            stats.tost_paired(D, margin=0)
        with pytest.raises(InputError, match="alpha=0.6"):
            stats.tost_paired(D, margin=1.0, alpha=0.6)
        with pytest.raises(InputError, match="give one; the CI level is 1 - 2\\*alpha"):
            stats.tost_paired(D, margin=1.0, alpha=0.05, confidence_level=0.9)

    def test_decide_needs_the_per_unit_sample(self):
        est = ratio_estimate(D)
        from dataclasses import replace
        with pytest.raises(InputError, match="carries no per-unit sample"):
            decide(make_spec(), replace(est, sample=None), family=1)


# ---------------------------------------------------------------- descriptive effect sizes (unchanged)


class TestEffectSizes:
    def test_rank_biserial_hand_worked(self):
        assert stats.matched_pairs_rank_biserial([1.0, -2, 3, 4]) == pytest.approx(0.6)  # (8 - 2) / 10
        assert stats.matched_pairs_rank_biserial(D) == pytest.approx(5 / 7)

    def test_rank_biserial_drops_zeros_and_saturates(self):
        assert stats.matched_pairs_rank_biserial([0.0, 1, 2, 3]) == 1.0
        assert stats.matched_pairs_rank_biserial([-1.0, -2, 0]) == -1.0
        assert math.isnan(stats.matched_pairs_rank_biserial([0.0, 0.0]))

    @given(arrays(np.float64, st.integers(2, 40), elements=st.floats(-100, 100), unique=True))
    def test_rank_biserial_matches_scipy_wilcoxon_statistic(self, d):
        # Closed form: r = 2 R+ / T - 1 with T = n'(n'+1)/2 over the n' nonzero differences.
        nonzero = d[d != 0]
        assume(nonzero.size > 0)
        r_plus = sps.wilcoxon(nonzero, alternative="greater").statistic
        total = nonzero.size * (nonzero.size + 1) / 2
        assert stats.matched_pairs_rank_biserial(d) == pytest.approx(2 * r_plus / total - 1)
        assert stats.matched_pairs_rank_biserial(-d) == pytest.approx(-stats.matched_pairs_rank_biserial(d))

    def test_cohens_dz_closed_form(self):
        assert stats.cohens_dz([1.0, 2, 3]) == pytest.approx(2.0)  # mean 2, sd 1
        assert math.isnan(stats.cohens_dz([4.0, 4, 4]))

    @given(arrays(np.float64, st.integers(3, 40), elements=st.floats(-10, 10)))
    def test_cohens_dz_is_one_sample_t_over_sqrt_n(self, d):
        assume(np.std(d) >= 1e-6)
        t = sps.ttest_1samp(d, 0.0).statistic
        assert stats.cohens_dz(d) == pytest.approx(t / math.sqrt(d.size), rel=1e-9, abs=1e-12)


# ---------------------------------------------------------------- multiplicity helpers (unchanged)


class TestAdjustPvalues:
    # Holm, worked by hand for p = (0.01, 0.04, 0.03, 0.005), m = 4:
    #   sorted   0.005  0.01  0.03  0.04
    #   x m-i+1  4      3     2     1
    #   product  0.02   0.03  0.06  0.04
    #   cummax   0.02   0.03  0.06  0.06
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm")  ->  0.03 0.06 0.06 0.02
    RAW = [0.01, 0.04, 0.03, 0.005]

    def test_holm_hand_worked(self):
        np.testing.assert_allclose(stats.adjust_pvalues(self.RAW, "holm"), [0.03, 0.06, 0.06, 0.02])

    def test_holm_caps_at_one(self):
        np.testing.assert_allclose(stats.adjust_pvalues([0.6, 0.7], "holm"), [1.0, 1.0])

    def test_nan_passes_through_and_is_not_counted(self):
        adjusted = stats.adjust_pvalues([0.01, np.nan, 0.04, 0.03, 0.005], "holm")
        assert math.isnan(adjusted[1])
        np.testing.assert_allclose(np.delete(adjusted, 1), [0.03, 0.06, 0.06, 0.02])
        assert np.isnan(stats.adjust_pvalues([np.nan, np.nan], "bh")).all()

    def test_none_returns_the_raw_values(self):
        np.testing.assert_array_equal(stats.adjust_pvalues(self.RAW, "none"), self.RAW)

    def test_bad_inputs(self):
        with pytest.raises(InputError, match="method='bonferoni'"):
            stats.adjust_pvalues(self.RAW, "bonferoni")
        with pytest.raises(InputError, match=r"pvalues\[1\] = 1.5: p-values must lie in \[0, 1\]"):
            stats.adjust_pvalues([0.1, 1.5])

    pvalue_lists = st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=1, max_size=30)

    @given(pvalue_lists)
    def test_holm_bounds_and_monotone_in_rank(self, raw):
        raw = np.array(raw)
        adjusted = stats.adjust_pvalues(raw, "holm")
        known = ~np.isnan(raw)
        np.testing.assert_array_equal(np.isnan(adjusted), ~known)
        p, adj = raw[known], adjusted[known]
        assert np.all(adj >= p) and np.all(adj <= np.minimum(1.0, p * p.size) + 1e-15)  # Bonferroni bound
        order = np.argsort(p, kind="stable")
        assert np.all(np.diff(adj[order]) >= 0)

    @given(pvalue_lists)
    def test_bh_is_scipy_false_discovery_control(self, raw):
        raw = np.array(raw)
        adjusted = stats.adjust_pvalues(raw, "bh")
        known = ~np.isnan(raw)
        if known.any():
            np.testing.assert_allclose(adjusted[known], sps.false_discovery_control(raw[known], method="bh"))
        assert np.isnan(adjusted[~known]).all()


def test_end_to_end_supported_in_a_32_cell_family():
    """The verdict.py doctest's case, on skewed data: the decision needs no symmetry."""
    rng = np.random.default_rng(5)
    d = rng.exponential(1.0, 80) - math.log(2) + 0.5  # median exactly 0.5, skewed
    decision = decide(make_spec(), stats.paired_log_ratio(np.exp(d), np.ones(80), n_resamples=99), family=32)
    assert decision.verdict == "supported", decision.reason
    assert isinstance(decision, Decision)
