"""Calibration: do the claim statistics keep their error rates, power and coverage?

Like Hypothesis' tests/quality/: each test simulates many datasets with a known truth and
runs them through the public functions the claims use (`paired_log_ratio`,
`paired_difference`, `tost_paired`, `required_n`, and `decide` on top). Unit tests check
that the code computes what it says; these check that what it says is statistically sound.

Bounds. A rate measured over `draws` datasets has standard error SE = sqrt(r(1-r)/draws).
A false-positive rate may exceed its nominal level by at most 2 SE (one-sided: only an
excess is a failure). Power is compared with the normal approximation for the Wilcoxon
test (asymptotic relative efficiency 3/pi against the t-test for normal data),
power = Phi(delta * sqrt(3n/pi) - z_{1-alpha}). At n = 50 that approximation runs 0.01 to
0.025 high (checked with 20 000 draws per cell for delta 0.2-0.4, alpha 0.01-0.05), so we
allow 0.05 for the approximation plus 3 SE for the simulation. Coverage must lie within
3 SE of the nominal level.

Everything is seeded, so a run is reproducible; the whole file takes well under a minute.
See the measured numbers with:  .venv/bin/python -m pytest tests/calibration -q -s
"""
import math
import zlib

import numpy as np
import pytest
from scipy import stats as sps

from mcis_claims import stats
from mcis_claims.verdict import ClaimSpec, decide

DRAWS = 1000  # simulated datasets per check
N = 50  # base prompts per dataset: about a default-profile claim cell
CHEAP_RESAMPLES = 99  # where only the p-value is measured, the bootstrap CI is irrelevant
CI_RESAMPLES = 999  # where the CI matters


def symmetric_null(name):
    """Draws (shape,) from a distribution symmetric about 0: the signed-rank null."""
    return {
        "normal": lambda rng, shape: rng.normal(size=shape),
        "t3": lambda rng, shape: rng.standard_t(3, size=shape),  # heavy tails, infinite kurtosis
    }[name]


def seeded_rng(*key):
    """One fixed stream per check, independent of test order."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def as_pairs(function, d, rng):
    """(a, b) per base prompt whose paired contrast (log ratio or difference) is exactly d."""
    if function is stats.paired_log_ratio:
        b = np.exp(rng.normal(size=d.size))  # arbitrary positive baseline radii
        return b * np.exp(d), b
    b = rng.normal(size=d.size)
    return b + d, b


def standard_error(rate, draws=DRAWS):
    return math.sqrt(rate * (1 - rate) / draws)


@pytest.fixture(scope="module")
def calibration_table():
    """Collects (check, measured, expected, bound) rows and prints them at the end of the module."""
    rows = []
    yield rows
    width = max((len(row[0]) for row in rows), default=10)
    print(f"\n\ncalibration ({DRAWS} simulated datasets per check unless noted, n={N} base prompts)")
    print(f"{'check':<{width}}  measured  expected  allowed")
    for check, measured, expected, allowed in rows:
        print(f"{check:<{width}}  {measured:8.4f}  {expected:8.4f}  {allowed}")


@pytest.fixture
def report(calibration_table, record_property):
    def _report(check, measured, expected, allowed):
        calibration_table.append((check, measured, expected, allowed))
        record_property(f"calibration: {check}", {"measured": measured, "expected": expected, "allowed": allowed})
    return _report


@pytest.mark.parametrize("function, distribution, alternative", [
    (stats.paired_log_ratio, "normal", "greater"),
    (stats.paired_log_ratio, "t3", "less"),
    (stats.paired_difference, "t3", "greater"),
], ids=lambda value: getattr(value, "__name__", value))
def test_signed_rank_false_positive_rate(function, distribution, alternative, report):
    rng = seeded_rng("fpr", function.__name__, distribution, alternative)
    draw = symmetric_null(distribution)
    pvalues = np.array([
        function(*as_pairs(function, draw(rng, N), rng), alternative=alternative,
                 n_resamples=CHEAP_RESAMPLES, random_state=i).pvalue
        for i in range(DRAWS)
    ])
    for alpha in (0.01, 0.05):
        rate, bound = float(np.mean(pvalues < alpha)), alpha + 2 * standard_error(alpha)
        report(f"{function.__name__} {alternative} false positives, {distribution} null, alpha={alpha}",
               rate, alpha, f"<= {bound:.4f}")
        assert rate <= bound, f"false-positive rate {rate:.4f} > {bound:.4f} at alpha={alpha}"


@pytest.mark.parametrize("distribution", ["normal", "t3"])
def test_tost_false_equivalence_rate(distribution, report):
    """At the edge of the margin (true median exactly +margin) equivalence is false.

    The margin is wide (1 sd) so that the lower test nearly always rejects and the rate
    measures the upper test's size; with a narrow margin TOST is conservative, which would
    hide an anti-conservative p-value.
    """
    margin, rng, draw = 1.0, seeded_rng("tost", distribution), symmetric_null(distribution)
    pvalues = np.array([
        stats.tost_paired(margin + draw(rng, N), margin=margin, alpha=0.05,
                          n_resamples=CHEAP_RESAMPLES, random_state=i).pvalue
        for i in range(DRAWS)
    ])
    for alpha in (0.01, 0.05):
        rate, bound = float(np.mean(pvalues < alpha)), alpha + 2 * standard_error(alpha)
        report(f"tost_paired false equivalence, {distribution}, median at +margin, alpha={alpha}",
               rate, alpha, f"<= {bound:.4f}")
        assert rate <= bound, f"false-equivalence rate {rate:.4f} > {bound:.4f} at alpha={alpha}"


def claim_spec(sesoi, alpha=0.01):
    return ClaimSpec(id="CAL", title="calibration", statement="ratio > sesoi", source="simulation",
                     null_hypothesis="median ratio <= sesoi", statistic="Wilcoxon on log ratio",
                     effect="median_ratio", sesoi=sesoi, alpha=alpha)


@pytest.mark.parametrize("scenario, true_ratio, sesoi, confidence_level, distribution, nominal", [
    # No minimum effect: "supported" is a plain one-sided test at alpha.
    ("no effect, SESOI at the null", 1.0, 1.0, 0.95, "t3", 0.01),
    # True effect exactly at the SESOI: the CI's low end is the gate. A 1 - 2*alpha CI
    # makes that a one-sided alpha-level test...
    ("effect at SESOI, 98% CI", 1.1, 1.1, 0.98, "normal", 0.01),
    # ... while the 95% CI the claims use by default lets up to 2.5% through at alpha=0.01.
    ("effect at SESOI, 95% CI", 1.1, 1.1, 0.95, "normal", 0.025),
])
def test_decide_false_supported_rate(scenario, true_ratio, sesoi, confidence_level, distribution, nominal,
                                     report):
    """The full pipeline: simulated radii -> paired_log_ratio -> decide, with H1 false."""
    spec, rng, draw = claim_spec(sesoi), seeded_rng("decide", scenario), symmetric_null(distribution)
    verdicts = []
    for i in range(DRAWS):
        d = math.log(true_ratio) + draw(rng, N)
        estimate = stats.paired_log_ratio(*as_pairs(stats.paired_log_ratio, d, rng), alternative="greater",
                                          confidence_level=confidence_level, n_resamples=CI_RESAMPLES,
                                          random_state=i)
        verdicts.append(decide(spec, estimate, estimate.pvalue).verdict)
    rate, bound = verdicts.count("supported") / DRAWS, nominal + 2 * standard_error(nominal)
    report(f"decide false 'supported': {scenario} ({distribution}), alpha=0.01", rate, nominal, f"<= {bound:.4f}")
    assert rate <= bound, f"false-supported rate {rate:.4f} > {bound:.4f} ({scenario})"


def wilcoxon_power_theory(delta, n, alpha):
    """Normal-approximation power of the one-sided signed-rank test for a N(delta, 1) shift."""
    return float(sps.norm.cdf(delta * math.sqrt(3 * n / math.pi) - sps.norm.ppf(1 - alpha)))


@pytest.mark.parametrize("function, delta, alpha", [
    (stats.paired_difference, 0.3, 0.05),
    (stats.paired_log_ratio, 0.4, 0.01),
], ids=lambda value: getattr(value, "__name__", value))
def test_power_matches_theory(function, delta, alpha, report):
    rng = seeded_rng("power", function.__name__, delta, alpha)
    pvalues = np.array([
        function(*as_pairs(function, delta + rng.normal(size=N), rng), alternative="greater",
                 n_resamples=CHEAP_RESAMPLES, random_state=i).pvalue
        for i in range(DRAWS)
    ])
    power, theory = float(np.mean(pvalues < alpha)), wilcoxon_power_theory(delta, N, alpha)
    tolerance = 0.05 + 3 * standard_error(theory)
    report(f"{function.__name__} power, normal shift {delta}, alpha={alpha}", power, theory,
           f"+- {tolerance:.4f}")
    assert abs(power - theory) <= tolerance, f"power {power:.4f} vs theory {theory:.4f} (tolerance {tolerance:.4f})"


def test_required_n_delivers_the_requested_power(report):
    """Simulate at the n that required_n asks for; the test should reach the requested power."""
    rng, alpha, target = seeded_rng("required_n"), 0.05, 0.8
    pilot = 0.3 + rng.normal(size=40)  # a pilot study; its mean and sd are taken as the truth below
    n = stats.required_n(pilot, sesoi=0.0, alpha=alpha, power=target)
    assert n is not None
    # (DRAWS, n): vectorised Wilcoxon; the p-value path itself is calibrated above.
    simulated = pilot.mean() + pilot.std(ddof=1) * rng.normal(size=(DRAWS, n))
    power = float(np.mean(sps.wilcoxon(simulated, alternative="greater", axis=1).pvalue < alpha))
    tolerance = 0.05 + 3 * standard_error(target)
    report(f"required_n -> n={n}: power at alpha={alpha}", power, target, f"+- {tolerance:.4f}")
    assert abs(power - target) <= tolerance, f"power {power:.4f} at required n={n}, wanted {target}"


@pytest.mark.parametrize("function, distribution, true_shift", [
    (stats.paired_log_ratio, "normal", 0.2),
    (stats.paired_difference, "t3", -0.5),
], ids=lambda value: getattr(value, "__name__", value))
def test_bootstrap_ci_coverage(function, distribution, true_shift, report):
    """The 95% BCa CI of the median should cover the true median in about 95% of datasets."""
    rng, draw, level = seeded_rng("coverage", function.__name__, distribution), symmetric_null(distribution), 0.95
    truth = math.exp(true_shift) if function is stats.paired_log_ratio else true_shift
    covered = []
    for i in range(DRAWS):
        estimate = function(*as_pairs(function, true_shift + draw(rng, N), rng), confidence_level=level,
                            n_resamples=CI_RESAMPLES, random_state=i)
        covered.append(estimate.confidence_interval.low <= truth <= estimate.confidence_interval.high)
    coverage, tolerance = float(np.mean(covered)), 3 * standard_error(level)
    report(f"{function.__name__} 95% CI coverage of the median, {distribution}", coverage, level,
           f"+- {tolerance:.4f}")
    assert abs(coverage - level) <= tolerance, f"coverage {coverage:.4f}, nominal {level} +- {tolerance:.4f}"


if __name__ == "__main__":  # python tests/calibration/test_calibration.py  prints the table too
    raise SystemExit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider"]))
