"""stats.py and verdict.py against hand-worked numbers, closed forms and scipy itself."""
import json
import math
from dataclasses import FrozenInstanceError

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats as sps

from mcis_claims import stats
from mcis_claims.errors import InputError
from mcis_claims.stats import ConfidenceInterval, EffectEstimate
from mcis_claims.verdict import ClaimSpec, Decision, decide

# Seven differences with distinct |d|, worked by hand.
# |d| sorted: 0.5(-) 0.7(+) 1.1(-) 1.5(+) 2.5(+) 3.5(+) 4.2(+)  -> ranks 1..7
# R+ = 2+4+5+6+7 = 24, R- = 1+3 = 4, R+ + R- = 7*8/2 = 28.
# Exact one-sided p = P(R+ >= 24) = P(complement rank sum <= 4) over the 2^7 sign patterns;
# subsets of {1..7} with sum <= 4: {}, {1}, {2}, {3}, {4}, {1,2}, {1,3} -> p = 7/128.
# Matched-pairs rank-biserial = (24 - 4) / 28 = 5/7. Median = 1.5.
D = np.array([1.5, -0.5, 2.5, 3.5, 0.7, 4.2, -1.1])
BASE = np.array([1.0, 2.0, 3.0, 0.5, 4.0, 1.5, 2.5])  # arbitrary positive condition-B values


def log_ratio_pair(d, base=BASE):
    """(a, b) with log(a) - log(b) = d."""
    return base * np.exp(d), base


class TestPairedLogRatio:
    def test_hand_worked_median_ratio_and_p(self):
        est = stats.paired_log_ratio(*log_ratio_pair(D), random_state=0)
        assert est.name == "median_ratio" and est.null_value == 1.0
        assert est.value == pytest.approx(math.exp(1.5))
        assert est.pvalue == pytest.approx(7 / 128)
        assert est.statistic == 24.0 and est.statistic_name == "wilcoxon_signed_rank"
        assert est.n == 7 and est.alternative == "greater"
        assert est.extra["rank_biserial"] == pytest.approx(5 / 7)
        assert est.extra["n_dropped"] == 0

    def test_ci_is_exp_of_scipy_bca_ci_of_median_log_ratio(self):
        est = stats.paired_log_ratio(*log_ratio_pair(D), n_resamples=999, random_state=7)
        reference = sps.bootstrap((D,), np.median, n_resamples=999, method="BCa", confidence_level=0.95,
                                  rng=np.random.default_rng(7))
        assert est.confidence_interval.low == pytest.approx(math.exp(reference.confidence_interval.low))
        assert est.confidence_interval.high == pytest.approx(math.exp(reference.confidence_interval.high))
        assert est.confidence_interval.low <= est.value <= est.confidence_interval.high
        assert est.ci_method == "BCa bootstrap over base prompts (999 resamples)"

    @pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
    def test_pvalue_is_scipy_wilcoxon_of_log_ratio(self, alternative):
        rng = np.random.default_rng(3)
        a, b = np.exp(rng.normal(0.2, 1, 40)), np.exp(rng.normal(0, 1, 40))
        est = stats.paired_log_ratio(a, b, alternative=alternative, n_resamples=99, random_state=0)
        reference = sps.wilcoxon(np.log(a) - np.log(b), alternative=alternative)
        assert est.pvalue == pytest.approx(reference.pvalue)
        assert est.statistic == pytest.approx(reference.statistic)

    def test_non_finite_pairs_are_dropped_and_counted(self):
        a, b = log_ratio_pair(D)
        dirty_a, dirty_b = np.append(a, [np.nan, 2.0, np.inf]), np.append(b, [1.0, np.nan, 1.0])
        dirty = stats.paired_log_ratio(dirty_a, dirty_b, random_state=1)
        clean = stats.paired_log_ratio(a, b, random_state=1)
        assert dirty.extra["n_dropped"] == 3 and dirty.n == 7
        assert dirty.value == clean.value and dirty.confidence_interval == clean.confidence_interval
        assert dirty.pvalue == clean.pvalue

    def test_identical_nonzero_differences_use_the_sign_test(self):
        # Every |d| ties, so the signed-rank test is the sign test: p = 0.5^6 for 6 ups.
        est = stats.paired_log_ratio(np.full(6, 2.0), np.ones(6))
        assert est.value == pytest.approx(2.0)
        assert est.confidence_interval == pytest.approx((2.0, 2.0))
        assert est.pvalue == pytest.approx(0.5 ** 6)
        assert est.extra["pvalue_method"].startswith("exact sign test")

    def test_all_zero_differences_give_p_one(self):
        est = stats.paired_log_ratio(np.full(8, 3.0), np.full(8, 3.0))
        assert est.value == 1.0 and est.pvalue == 1.0
        assert est.confidence_interval == (1.0, 1.0)
        assert math.isnan(est.extra["rank_biserial"]) and est.extra["n_zero"] == 8

    def test_bca_degenerate_falls_back_to_percentile_and_says_so(self):
        # Mostly ties at the median: BCa's bias correction is undefined, scipy returns NaN.
        a = np.array([1.0, 1, 1, 1, 1, 2, 2])
        est = stats.paired_log_ratio(a, np.ones(7), n_resamples=999, random_state=0)
        assert est.ci_method.startswith("percentile (BCa degenerate)")
        assert np.isfinite(est.confidence_interval).all()
        assert est.confidence_interval.low <= est.value <= est.confidence_interval.high

    def test_deterministic_at_a_fixed_seed(self):
        rng = np.random.default_rng(11)
        a, b = np.exp(rng.normal(size=30)), np.exp(rng.normal(size=30))
        first = stats.paired_log_ratio(a, b, n_resamples=499, random_state=42)
        again = stats.paired_log_ratio(a, b, n_resamples=499, random_state=42)
        other = stats.paired_log_ratio(a, b, n_resamples=499, random_state=43)
        assert first == again
        assert first.confidence_interval != other.confidence_interval

    def test_to_dict_is_strict_json(self):
        est = stats.paired_log_ratio(np.full(6, 2.0), np.ones(6))  # d_z is NaN: sd is 0
        payload = json.loads(json.dumps(est.to_dict(), allow_nan=False))
        assert payload["extra"]["d_z"] is None
        assert payload["confidence_interval"] == {"low": 2.0, "high": 2.0}
        assert payload["pvalue"] == pytest.approx(0.5 ** 6)

    def test_result_is_frozen(self):
        est = stats.paired_log_ratio(*log_ratio_pair(D))
        with pytest.raises(FrozenInstanceError):
            est.value = 2.0

    @settings(max_examples=25)
    @given(arrays(np.float64, st.integers(6, 30), elements=st.floats(-3, 3)),
           st.integers(0, 2 ** 16))
    def test_swapping_a_and_b_inverts_the_ratio(self, d, seed):
        a, b = np.exp(d), np.ones_like(d)
        forward = stats.paired_log_ratio(a, b, alternative="greater", n_resamples=199, random_state=seed)
        backward = stats.paired_log_ratio(b, a, alternative="less", n_resamples=199, random_state=seed)
        assert forward.value * backward.value == pytest.approx(1.0)
        assert forward.pvalue == pytest.approx(backward.pvalue)
        # The same resampled indices give a mirrored bootstrap distribution on the log scale.
        assert forward.confidence_interval.low * backward.confidence_interval.high == pytest.approx(1.0)
        assert forward.confidence_interval.high * backward.confidence_interval.low == pytest.approx(1.0)


class TestPairedDifference:
    def test_hand_worked_median_difference(self):
        est = stats.paired_difference(D + 10.0, np.full(7, 10.0), random_state=0)
        assert est.name == "median_difference" and est.null_value == 0.0
        assert est.value == pytest.approx(1.5)
        assert est.pvalue == pytest.approx(7 / 128)

    def test_less_is_the_mirror_of_greater(self):
        up = stats.paired_difference(D, np.zeros(7), alternative="greater", random_state=0)
        down = stats.paired_difference(-D, np.zeros(7), alternative="less", random_state=0)
        assert up.pvalue == pytest.approx(down.pvalue)
        assert up.value == -down.value

    def test_accepts_signed_values(self):
        est = stats.paired_difference([-3.0, -1, 0, 2, 5], [0.0, 0, 0, 0, 0], random_state=0)
        assert est.value == 0.0 and est.n == 5


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
        if nonzero.size == 0:
            return
        r_plus = sps.wilcoxon(nonzero, alternative="greater").statistic
        total = nonzero.size * (nonzero.size + 1) / 2
        assert stats.matched_pairs_rank_biserial(d) == pytest.approx(2 * r_plus / total - 1)
        assert stats.matched_pairs_rank_biserial(-d) == pytest.approx(-stats.matched_pairs_rank_biserial(d))

    def test_cohens_dz_closed_form(self):
        assert stats.cohens_dz([1.0, 2, 3]) == pytest.approx(2.0)  # mean 2, sd 1
        assert math.isnan(stats.cohens_dz([4.0, 4, 4]))

    @given(arrays(np.float64, st.integers(3, 40), elements=st.floats(-10, 10)))
    def test_cohens_dz_is_one_sample_t_over_sqrt_n(self, d):
        if np.std(d) < 1e-6:
            return
        t = sps.ttest_1samp(d, 0.0).statistic
        assert stats.cohens_dz(d) == pytest.approx(t / math.sqrt(d.size), rel=1e-9, abs=1e-12)


class TestTost:
    # |d + 1| and |d - 1| are all distinct and all d lie within (-1, 1): both one-sided
    # Wilcoxon tests have every sign in their favour, so p_lower = p_upper = 1/2^7 = 1/128.
    SMALL = np.array([0.1, -0.2, 0.3, -0.1, 0.05, 0.2, -0.15])

    def test_hand_worked_equivalence(self):
        result = stats.tost_paired(self.SMALL, margin=1.0, alpha=0.05, n_resamples=999, random_state=0)
        assert result.p_lower == pytest.approx(1 / 128) and result.p_upper == pytest.approx(1 / 128)
        assert result.pvalue == pytest.approx(1 / 128)
        assert result.equivalent
        assert result.confidence_level == pytest.approx(0.90)
        assert result.estimate == pytest.approx(0.05)
        assert result.confidence_interval.low <= result.estimate <= result.confidence_interval.high

    def test_not_equivalent_when_the_margin_is_narrow(self):
        result = stats.tost_paired(self.SMALL, margin=0.01, alpha=0.05, random_state=0)
        assert not result.equivalent and result.pvalue > 0.05

    def test_not_equivalent_when_the_effect_is_large(self):
        result = stats.tost_paired(self.SMALL + 3.0, margin=1.0, random_state=0)
        assert result.p_upper == pytest.approx(1.0) and not result.equivalent

    def test_confidence_level_sets_alpha(self):
        result = stats.tost_paired(self.SMALL, margin=1.0, confidence_level=0.98, n_resamples=99, random_state=0)
        assert result.alpha == pytest.approx(0.01) and result.confidence_level == pytest.approx(0.98)
        json.dumps(result.to_dict(), allow_nan=False)


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


class TestRequiredN:
    def test_closed_form(self):
        # d = (-1, 0, 1, 2, 3): mean 1, sd sqrt(2.5) = 1.5811; SESOI 0, alpha 0.05, power 0.8:
        # n = (pi/3) * ((1.6449 + 0.8416) * 1.5811 / 1)^2 = 1.0472 * 15.456 = 16.19 -> 17.
        assert stats.required_n([-1.0, 0, 1, 2, 3], sesoi=0.0, alpha=0.05, power=0.8) == 17

    def test_two_sided_needs_more(self):
        d = [-1.0, 0, 1, 2, 3]
        assert (stats.required_n(d, sesoi=0.0, alpha=0.05, alternative="two-sided")
                > stats.required_n(d, sesoi=0.0, alpha=0.05))

    def test_never_below_the_minimum_the_tests_accept(self):
        assert stats.required_n([10.0, 11, 12], sesoi=0.0, alpha=0.05) == stats.MIN_PAIRS

    @pytest.mark.parametrize("d, sesoi", [([2.0, 2, 2, 2], 0.0), ([1.0, 2, 3], 2.0), ([1.0], 0.0)])
    def test_none_where_it_cannot_be_estimated(self, d, sesoi):
        assert stats.required_n(d, sesoi=sesoi, alpha=0.05) is None


def make_spec(**overrides):
    fields = dict(id="C1", title="Plateaus near real activations", statement="H1", source="seed",
                  null_hypothesis="median ratio <= 1", statistic="Wilcoxon signed-rank on log ratio",
                  effect="median_ratio", sesoi=1.1, alpha=0.01)
    return ClaimSpec(**{**fields, **overrides})


def make_estimate(value, low, high, *, name="median_ratio", null_value=1.0, level=0.95):
    return EffectEstimate(name=name, value=value, confidence_interval=ConfidenceInterval(low, high),
                          confidence_level=level, n=64, statistic_name="wilcoxon_signed_rank",
                          statistic=1.0, pvalue=0.001, alternative="greater", null_value=null_value,
                          ci_method="BCa")


class TestClaimSpec:
    @pytest.mark.parametrize("overrides, message", [
        ({"id": " "}, "ClaimSpec id=' '"),
        ({"alpha": 0.5}, "alpha=0.5 must lie in"),
        ({"alpha": 0}, "alpha=0 must lie in"),
        ({"kind": "causal"}, "kind='causal'"),
        ({"alternative": "two-sided"}, "alternative='two-sided'"),
        ({"sesoi": float("nan")}, "sesoi=nan"),
        ({"kind": "equivalence", "sesoi": 0.0}, "equivalence margin"),
    ])
    def test_validation(self, overrides, message):
        with pytest.raises(InputError, match=message):
            make_spec(**overrides)

    def test_to_dict_round_trips(self):
        spec = make_spec()
        assert ClaimSpec(**spec.to_dict()) == spec
        json.dumps(spec.to_dict())


class TestDecideDirectional:
    GREATER = make_spec(sesoi=1.1, alternative="greater")
    LESS = make_spec(sesoi=0.9, alternative="less")

    def test_supported(self):
        decision = decide(self.GREATER, make_estimate(1.42, 1.31, 1.55), 3e-12)
        assert decision == Decision(
            "supported", "median ratio 1.42, 95% CI [1.31, 1.55] lies above SESOI 1.1; p_adj=3e-12 < alpha 0.01",
            None)

    def test_refuted_includes_the_wrong_direction(self):
        assert decide(self.GREATER, make_estimate(1.02, 0.98, 1.06), 0.2).verdict == "refuted"
        decision = decide(self.GREATER, make_estimate(0.7, 0.6, 0.8), 1.0)
        assert decision.verdict == "refuted" and "below SESOI 1.1" in decision.reason

    def test_inconclusive_when_the_ci_straddles_the_sesoi(self):
        decision = decide(self.GREATER, make_estimate(1.2, 1.05, 1.4), 1e-4, required_n=180)
        assert decision.verdict == "inconclusive" and decision.required_n == 180
        assert "straddles SESOI 1.1" in decision.reason and "about 180 base prompts" in decision.reason

    def test_inconclusive_when_the_ci_clears_the_sesoi_but_p_does_not_clear_alpha(self):
        decision = decide(self.GREATER, make_estimate(1.3, 1.15, 1.5), 0.03)
        assert decision.verdict == "inconclusive" and "p_adj=0.03 >= alpha 0.01" in decision.reason

    def test_required_n_is_dropped_for_settled_verdicts(self):
        assert decide(self.GREATER, make_estimate(1.42, 1.31, 1.55), 1e-6, required_n=99).required_n is None

    @pytest.mark.parametrize("ci, p, verdict", [
        ((0.7, 0.8), 1e-6, "supported"),
        ((0.95, 1.2), 0.5, "refuted"),
        ((0.85, 0.95), 1e-6, "inconclusive"),
        ((0.7, 0.8), 0.05, "inconclusive"),
    ])
    def test_less_mirrors_greater(self, ci, p, verdict):
        assert decide(self.LESS, make_estimate(sum(ci) / 2, *ci), p).verdict == verdict

    def test_touching_the_sesoi_is_not_enough_either_way(self):
        assert decide(self.GREATER, make_estimate(1.2, 1.1, 1.3), 1e-9).verdict == "inconclusive"
        assert decide(self.GREATER, make_estimate(1.0, 0.9, 1.1), 0.5).verdict == "inconclusive"

    def test_sesoi_on_the_wrong_side_of_the_null_is_a_usage_error(self):
        with pytest.raises(InputError, match="sesoi=0.9 lies on the wrong side of the null 1.0"):
            decide(make_spec(sesoi=0.9, alternative="greater"), make_estimate(1.2, 1.1, 1.3), 1e-6)

    @pytest.mark.parametrize("value, ci, p, missing", [
        (float("nan"), (1.2, 1.3), 1e-6, "the effect"),
        (1.25, (float("nan"), 1.3), 1e-6, "the CI"),
        (1.25, (1.2, 1.3), float("nan"), "p_adj"),
    ])
    def test_nan_is_inconclusive_and_says_so(self, value, ci, p, missing):
        decision = decide(self.GREATER, make_estimate(value, *ci), p)
        assert decision.verdict == "inconclusive"
        assert f"{missing} is NaN" in decision.reason

    def test_difference_effects_use_the_same_rule(self):
        spec = make_spec(effect="median_difference", sesoi=0.2)
        estimate = make_estimate(0.5, 0.3, 0.7, name="median_difference", null_value=0.0)
        assert decide(spec, estimate, 1e-5).verdict == "supported"


class TestDecideExistence:
    SPEC = make_spec(kind="existence", sesoi=1.0, alternative="greater")

    @pytest.mark.parametrize("ci, p, verdict", [
        ((1.01, 1.2), 1e-4, "supported"),
        ((0.8, 0.95), 0.99, "refuted"),
        ((0.95, 1.2), 0.2, "inconclusive"),
        ((1.01, 1.2), 0.02, "inconclusive"),
    ])
    def test_branches(self, ci, p, verdict):
        decision = decide(self.SPEC, make_estimate(sum(ci) / 2, *ci), p)
        assert decision.verdict == verdict and "the null 1" in decision.reason

    def test_less(self):
        spec = make_spec(kind="existence", sesoi=1.0, alternative="less")
        assert decide(spec, make_estimate(0.9, 0.85, 0.95), 1e-4).verdict == "supported"
        assert decide(spec, make_estimate(1.1, 1.05, 1.15), 0.9).verdict == "refuted"


class TestDecideEquivalence:
    # Ratio effect, margin 0.1: equivalence region (1/1.1, 1.1) = (0.909, 1.1).
    RATIO = make_spec(kind="equivalence", sesoi=0.1)

    @pytest.mark.parametrize("ci, p, verdict", [
        ((0.95, 1.05), 1e-3, "supported"),
        ((0.95, 1.05), 0.2, "inconclusive"),
        ((0.85, 1.05), 1e-3, "inconclusive"),
        ((1.2, 1.5), 1.0, "refuted"),
        ((0.5, 0.9), 1.0, "refuted"),
        ((0.8, 1.3), 1.0, "inconclusive"),
    ])
    def test_ratio_margin_is_multiplicative(self, ci, p, verdict):
        decision = decide(self.RATIO, make_estimate(sum(ci) / 2, *ci), p)
        assert decision.verdict == verdict
        assert "margin (0.909, 1.1)" in decision.reason

    def test_difference_margin_is_additive(self):
        spec = make_spec(kind="equivalence", sesoi=0.2, effect="median_difference")
        inside = make_estimate(0.0, -0.15, 0.15, name="median_difference", null_value=0.0)
        outside = make_estimate(0.5, 0.3, 0.7, name="median_difference", null_value=0.0)
        assert decide(spec, inside, 1e-3).verdict == "supported"
        decision = decide(spec, outside, 0.9)
        assert decision.verdict == "refuted" and "margin (-0.2, 0.2)" in decision.reason


def test_decide_on_a_real_estimate_end_to_end():
    rng = np.random.default_rng(5)
    real = np.exp(rng.normal(0.5, 0.3, 80))  # median ratio about e^0.5 = 1.65
    est = stats.paired_log_ratio(real, np.ones(80), n_resamples=999, random_state=0)
    decision = decide(make_spec(), est, stats.adjust_pvalues([est.pvalue, 0.2, 0.5])[0])
    assert decision.verdict == "supported", decision.reason
