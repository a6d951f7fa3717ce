"""Calibration of the whole decision procedure under simulated nulls (run with -s for the table).

What a verdict promises (`verdict.py`, claims.md "Verdicts"): over a family of M cells, a
claim whose true effect lies exactly at its SESOI is called `supported` with probability at
most alpha / M, whatever the shape of the per-unit values (symmetric, skewed, censored), and
the family-wise rate of any false `supported` is at most alpha. These tests simulate that,
like Hypothesis' `tests/quality/`: the rates must lie within 2 standard errors of the bound.

Speed: the verdict of a sign-test/order-statistic rule depends only on how many units fall
on each side of the SESOI, so the bulk of the draws is judged by a vectorised count
(`_supported_fast`); for the first draws of every scenario the real `stats` + `decide` path
runs too, and the two must agree draw for draw.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from mcis_claims import stats
from mcis_claims.power import required_n, sign_test_power, sign_test_required_n
from mcis_claims.verdict import ClaimSpec, decide

ALPHA = 0.01
M = 32  # the default grid's family size
SESOI = 1.1
DELTA = math.log(SESOI)
DRAWS = 20_000  # per scenario: SE of a rate near alpha/M = 3.1e-4 is about 1.2e-4
CHECKED = 150  # draws per scenario also judged by the real decide(): must agree with the fast path
GRIDS = 4_000  # simulated 32-cell grids for the family-wise rate

SPEC = ClaimSpec(id="CAL", title="calibration", statement="s", source="simulation", null_hypothesis="h0",
                 statistic="sign test", effect="median_ratio", sesoi=SESOI, alpha=ALPHA)
ROWS: list[tuple] = []  # the printed table


def _noise(shape_name: str, rng, size):
    """Zero-median noise of one shape (scaled so a typical log-ratio spread results)."""
    if shape_name == "symmetric":
        return 0.5 * rng.standard_normal(size)
    if shape_name == "exponential":
        return 0.5 * (rng.exponential(1.0, size) - math.log(2))
    if shape_name == "lognormal":
        return 0.3 * (rng.lognormal(0.0, 1.0, size) - 1.0)
    raise ValueError(shape_name)


def _draw(scenario: str, n: int, draws: int, shift: float, rng):
    """-> (a, b, censored_a, censored_b), each (draws, n): radii whose log ratio has median `shift`.

    Censored scenarios cap an arm at its 70th percentile: 30 % of that arm's values are then
    only lower bounds, as radii whose curve never crossed the threshold by the schedule's end.
    """
    shape_name = "symmetric" if scenario.startswith("censored") else scenario
    d = shift + _noise(shape_name, rng, (draws, n))
    b = rng.lognormal(0.0, 0.5, (draws, n))
    a = b * np.exp(d)
    censored_a = np.zeros_like(a, dtype=bool)
    censored_b = np.zeros_like(b, dtype=bool)
    if scenario == "censored_a":
        cap = np.quantile(a, 0.7)
        censored_a = a > cap
        a = np.minimum(a, cap)
    elif scenario == "censored_b":
        cap = np.quantile(b, 0.7)
        censored_b = b > cap
        b = np.minimum(b, cap)
    return a, b, censored_a, censored_b


def _supported_fast(a, b, censored_a, censored_b, family=M) -> np.ndarray:
    """The verdict rule on counts: lower bound low_i beyond delta for enough units, few undetermined."""
    n = a.shape[1]
    d = np.log(a) - np.log(b)
    low = np.where(censored_b, -np.inf, d)
    high = np.where(censored_a, np.inf, d)
    rank = stats.order_statistic_rank(n, ALPHA / family)
    at_or_below = np.count_nonzero(low <= DELTA, axis=1)
    undetermined = ((low <= DELTA) & (high > DELTA)) | ((low <= 0) & (high > 0))
    undetermined &= low != high
    healthy = undetermined.mean(axis=1) <= 0.2
    return (at_or_below <= rank - 1) & healthy


def _decide(a, b, ca, cb, family=M):
    estimate = stats.paired_log_ratio(a, b, sesoi=SESOI, censored_a=ca, censored_b=cb, n_resamples=50,
                                      random_state=0)
    return decide(SPEC, estimate, family=family)


def _bound(rate_bound: float, draws: int) -> float:
    return rate_bound + 2 * math.sqrt(rate_bound * (1 - rate_bound) / draws)


@pytest.fixture(scope="module", autouse=True)
def print_table():
    yield
    print("\n\ncalibration of the decision rule (alpha = 0.01, family M = 32, SESOI ratio 1.1)")
    print(f"{'what':<44} {'scenario':<12} {'n':>5} {'rate':>10} {'bound':>10}")
    for row in ROWS:
        print(f"{row[0]:<44} {row[1]:<12} {row[2]:>5} {row[3]:>10.3g} {row[4]:>10.3g}")


SCENARIOS = ("symmetric", "exponential", "lognormal", "censored_a", "censored_b")


@pytest.mark.parametrize("n", [16, 48, 128])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_false_supported_at_the_sesoi(scenario, n):
    """True median log ratio exactly log(SESOI): `supported` at most alpha / M (+ 2 SE)."""
    rng = np.random.default_rng([n, SCENARIOS.index(scenario)])
    a, b, ca, cb = _draw(scenario, n, DRAWS, DELTA, rng)
    fast = _supported_fast(a, b, ca, cb)
    for i in range(CHECKED):  # the fast count is the real procedure
        assert fast[i] == (_decide(a[i], b[i], ca[i], cb[i]).verdict == "supported")
    rate, bound = fast.mean(), _bound(ALPHA / M, DRAWS)
    ROWS.append(("false supported per cell, effect at SESOI", scenario, n, rate, bound))
    assert rate <= bound


def test_wilcoxon_would_not_be_calibrated_under_skew():
    """Why the sign test decides: the issue's simulation, Exp(1) - ln 2, n = 128, one-sided alpha 0.01."""
    rng = np.random.default_rng(7)
    d = rng.exponential(1.0, (500, 128)) - math.log(2)
    wilcoxon = np.mean([sps.wilcoxon(row, alternative="greater").pvalue < 0.01 for row in d])
    sign = np.mean([stats.sign_test(row, 0.0)[1] < 0.01 for row in d])
    ROWS.append(("median-0 rejection: Wilcoxon (descriptive only)", "exponential", 128, wilcoxon, 0.01))
    ROWS.append(("median-0 rejection: sign test (decides)", "exponential", 128, sign, 0.01))
    assert wilcoxon > 0.2  # the pseudo-median test rejects a zero median under skew
    assert sign <= _bound(0.01, 500)


def test_family_wise_false_supported_over_a_32_cell_grid():
    """Every cell's effect at its SESOI (the global null's worst case), shapes mixed: P(any supported) <= alpha."""
    rng = np.random.default_rng(2024)
    any_supported = np.zeros(GRIDS, dtype=bool)
    for cell in range(M):
        scenario = SCENARIOS[cell % len(SCENARIOS)]
        a, b, ca, cb = _draw(scenario, 128, GRIDS, DELTA, rng)
        any_supported |= _supported_fast(a, b, ca, cb)
    rate, bound = any_supported.mean(), _bound(ALPHA, GRIDS)
    ROWS.append(("family-wise: any false supported in 32 cells", "mixed", 128, rate, bound))
    assert rate <= bound


@pytest.mark.parametrize("scenario", ["symmetric", "exponential", "censored_b"])
def test_false_refutation_when_the_effect_is_at_the_sesoi(scenario):
    """True effect at the SESOI: `negligible` (hi < SESOI) and `reversed` (hi < null) at most alpha / M each."""
    rng = np.random.default_rng([99, len(scenario)])
    draws = 4_000
    a, b, ca, cb = _draw(scenario, 48, draws, DELTA, rng)
    verdicts = [_decide(a[i], b[i], ca[i], cb[i]).verdict for i in range(draws)]
    negligible, reversed_ = (np.mean([v == w for v in verdicts]) for w in ("negligible", "reversed"))
    bound = _bound(ALPHA / M, draws)
    ROWS.append(("false negligible, effect at SESOI", scenario, 48, negligible, bound))
    ROWS.append(("false reversed, effect at SESOI", scenario, 48, reversed_, bound))
    assert negligible <= bound and reversed_ <= bound


@pytest.mark.parametrize("scenario", ["symmetric", "lognormal", "censored_a"])
def test_interval_coverage_at_the_level_used(scenario):
    """The decision interval (level 1 - 2 alpha/M, censoring-widened) misses the true median at most 2 alpha/M."""
    rng = np.random.default_rng([5, len(scenario)])
    draws, n = 20_000, 48
    a, b, ca, cb = _draw(scenario, n, draws, DELTA, rng)
    d = np.log(a) - np.log(b)
    low = np.sort(np.where(cb, -np.inf, d), axis=1)
    high = np.sort(np.where(ca, np.inf, d), axis=1)
    rank = stats.order_statistic_rank(n, ALPHA / M)
    lo, hi = low[:, rank - 1], high[:, n - rank]
    for i in range(20):  # the vectorised ends are median_interval's
        interval = stats.median_interval(np.where(cb[i], -np.inf, d[i]), np.where(ca[i], np.inf, d[i]),
                                         alpha=ALPHA / M)
        assert (interval.low, interval.high) == (lo[i], hi[i])
    miss = np.mean((lo > DELTA) | (hi < DELTA))
    bound = _bound(2 * ALPHA / M, draws)
    ROWS.append(("interval misses the true median", scenario, n, miss, bound))
    assert miss <= bound


@pytest.mark.parametrize("scenario", ["symmetric", "exponential"])
def test_power_at_1_5_sesoi_and_required_n(scenario):
    """Power at 1.5 x SESOI (n = 48, 128) matches the binomial formula, and the required_n an
    inconclusive record quotes (estimated from a sample at the SESOI) reaches power 0.8."""
    rng = np.random.default_rng([11, len(scenario)])
    target, scale = 1.5 * DELTA, 0.2
    big = target + scale / 0.5 * _noise(scenario, rng, 400_000)
    q = float(np.mean(big > DELTA))  # P(d beyond the SESOI) under the true effect
    for n in (48, 128):
        d = target + scale / 0.5 * _noise(scenario, rng, (4_000, n))
        simulated = float(np.mean(np.count_nonzero(d <= DELTA, axis=1) <= stats.order_statistic_rank(n, ALPHA / M) - 1))
        predicted = float(sign_test_power(n, q, ALPHA / M)[0])
        ROWS.append((f"power at 1.5 x SESOI (formula {predicted:.3f})", scenario, n, simulated, predicted))
        assert abs(simulated - predicted) <= 0.03
    true_n = sign_test_required_n(q, ALPHA / M, 0.8)
    # what an inconclusive record would quote: shape read off a sample of 128 at the SESOI
    quoted = []
    for _ in range(40):
        sample_d = DELTA + scale / 0.5 * _noise(scenario, rng, 128)
        estimate = stats.paired_log_ratio(np.exp(sample_d), np.ones(128), sesoi=SESOI, n_resamples=50)
        quoted.append(required_n(estimate.sample, sesoi=DELTA, alpha=ALPHA / M))
    quoted_median = float(np.median(quoted))
    d = target + scale / 0.5 * _noise(scenario, rng, (4_000, int(quoted_median)))
    achieved = float(np.mean(np.count_nonzero(d <= DELTA, axis=1)
                             <= stats.order_statistic_rank(int(quoted_median), ALPHA / M) - 1))
    ROWS.append((f"power at the quoted required_n {quoted_median:.0f} (true {true_n})", scenario,
                 int(quoted_median), achieved, 0.8))
    assert abs(quoted_median - true_n) <= 0.25 * true_n
    assert 0.7 <= achieved <= 0.9


def test_running_one_cell_alone_is_judged_as_in_the_grid():
    """The family, not the number of cells that run, sets the level: same data, same verdict and interval."""
    rng = np.random.default_rng(3)
    a, b, ca, cb = _draw("symmetric", 128, 1, 1.6 * DELTA, rng)
    in_grid = _decide(a[0], b[0], ca[0], cb[0], family=M)
    alone = _decide(a[0], b[0], ca[0], cb[0], family=M)
    unadjusted = _decide(a[0], b[0], ca[0], cb[0], family=1)
    assert (in_grid.verdict, in_grid.interval, in_grid.p_adjusted) == (alone.verdict, alone.interval, alone.p_adjusted)
    assert unadjusted.interval[0] >= in_grid.interval[0] and unadjusted.level < in_grid.level
