"""Calibration of the sequential rule (`mcis_claims.sequential`) under the same nulls as the fixed rule.

Looks at 32, 64 and 128 base prompts (nested: each look adds prompts to the last), Bonferroni
alpha spending with f(t) = t^3. What it must keep: the fixed-n rule's bounds (a false
`supported` at the SESOI at most alpha / M per cell, whatever the shape; at most alpha over a
32-cell grid under the global null; a false `negligible` at most alpha / M), and what it
buys: the expected number of base prompts under a large effect. Run with -s for the table.

As in test_decision_calibration.py, the bulk of the draws is judged by a vectorised count
and the first draws of each scenario by the real `decide_sequential`; the two must agree.
"""
from __future__ import annotations

import numpy as np
import pytest
from test_decision_calibration import ALPHA, DELTA, M, SCENARIOS, SPEC, _bound, _draw, _noise

from mcis_claims import stats
from mcis_claims.sequential import SequentialPlan, decide_sequential
from mcis_claims.stats import order_statistic_rank

PLAN = SequentialPlan.doubling(128)  # looks at 32, 64, 128
DRAWS = 20_000
CHECKED = 60
GRIDS = 4_000
ROWS: list[tuple] = []


def _bounds_and_health(a, b, ca, cb, n: int):
    """-> (low, high, healthy) on the first n units: each unit's bounds on d, and the health check."""
    a, b, ca, cb = a[:, :n], b[:, :n], ca[:, :n], cb[:, :n]
    d = np.log(a) - np.log(b)
    low = np.where(cb, -np.inf, d)
    high = np.where(ca, np.inf, d)
    undetermined = (((low <= DELTA) & (high > DELTA)) | ((low <= 0) & (high > 0))) & (low != high)
    return low, high, undetermined.mean(axis=1) <= 0.2


def _supported_at(a, b, ca, cb, n: int, alpha_per_end: float) -> np.ndarray:
    """The fixed rule's `supported` on the first n units, by counts (see test_decision_calibration)."""
    low, _, healthy = _bounds_and_health(a, b, ca, cb, n)
    return (np.count_nonzero(low <= DELTA, axis=1) <= order_statistic_rank(n, alpha_per_end) - 1) & healthy


def _sequential_supported(a, b, ca, cb) -> np.ndarray:
    """`supported` at any look. A cell that settles otherwise earlier stops, so this over-counts
    `supported` (the bound is then only safer to check)."""
    hit = np.zeros(a.shape[0], dtype=bool)
    for n, share in zip(PLAN.stages, PLAN.alpha_shares):
        hit |= _supported_at(a, b, ca, cb, n, ALPHA * share / M)
    return hit


def _decide_sequential(a, b, ca, cb):
    return decide_sequential(
        SPEC, lambda n: stats.paired_log_ratio(a[:n], b[:n], sesoi=SPEC.sesoi, censored_a=ca[:n], censored_b=cb[:n],
                                               n_resamples=50, random_state=0),
        family=M, plan=PLAN)


@pytest.fixture(scope="module", autouse=True)
def print_table():
    yield
    print(f"\n\ncalibration of the sequential rule (looks {PLAN.stages}, alpha shares "
          f"{tuple(round(s, 4) for s in PLAN.alpha_shares)}, alpha = {ALPHA}, M = {M}, SESOI ratio {SPEC.sesoi})")
    print(f"{'what':<52} {'scenario':<12} {'value':>10} {'bound/ref':>10}")
    for row in ROWS:
        print(f"{row[0]:<52} {row[1]:<12} {row[2]:>10.3g} {row[3]:>10.3g}")


def test_alpha_shares_sum_to_alpha_and_keep_most_for_the_last_look():
    assert PLAN.stages == (32, 64, 128)
    assert sum(PLAN.alpha_shares) == pytest.approx(1.0)
    assert PLAN.alpha_shares[-1] == pytest.approx(1 - 0.5 ** 3)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_false_supported_at_the_sesoi(scenario):
    """True median log ratio exactly log(SESOI): `supported` at any look at most alpha / M (+ 2 SE)."""
    rng = np.random.default_rng([128, SCENARIOS.index(scenario), 1])
    a, b, ca, cb = _draw(scenario, 128, DRAWS, DELTA, rng)
    fast = _sequential_supported(a, b, ca, cb)
    for i in range(CHECKED):
        result = _decide_sequential(a[i], b[i], ca[i], cb[i])
        if result.decision.verdict == "supported":
            assert fast[i]
        elif result.decision.verdict == "inconclusive":  # ran every look and none was supported
            assert not fast[i]
    rate, bound = fast.mean(), _bound(ALPHA / M, DRAWS)
    ROWS.append(("false supported per cell, effect at SESOI", scenario, rate, bound))
    assert rate <= bound


def test_family_wise_false_supported_over_a_32_cell_grid():
    """Every cell at its SESOI, shapes mixed: P(any cell supported at any look) <= alpha."""
    rng = np.random.default_rng(2025)
    any_supported = np.zeros(GRIDS, dtype=bool)
    for cell in range(M):
        a, b, ca, cb = _draw(SCENARIOS[cell % len(SCENARIOS)], 128, GRIDS, DELTA, rng)
        any_supported |= _sequential_supported(a, b, ca, cb)
    rate, bound = any_supported.mean(), _bound(ALPHA, GRIDS)
    ROWS.append(("family-wise: any false supported in 32 cells", "mixed", rate, bound))
    assert rate <= bound


def _refuted_at(a, b, ca, cb, n: int, alpha_per_end: float) -> np.ndarray:
    """The fixed rule's `negligible` or `reversed` on the first n units: the interval's upper end
    (from each unit's upper bound) below the SESOI, by counts."""
    _, high, healthy = _bounds_and_health(a, b, ca, cb, n)
    return (np.count_nonzero(high >= DELTA, axis=1) <= order_statistic_rank(n, alpha_per_end) - 1) & healthy


@pytest.mark.parametrize("scenario", ["symmetric", "exponential", "censored_b"])
def test_false_refutation_when_the_effect_is_at_the_sesoi(scenario):
    """True effect at the SESOI: `negligible` or `reversed` at any look at most alpha / M."""
    rng = np.random.default_rng([77, len(scenario)])
    a, b, ca, cb = _draw(scenario, 128, DRAWS, DELTA, rng)
    refuted = np.zeros(DRAWS, dtype=bool)
    for n, share in zip(PLAN.stages, PLAN.alpha_shares):
        refuted |= _refuted_at(a, b, ca, cb, n, ALPHA * share / M)
    for i in range(CHECKED):  # the count is the real rule's
        verdict = _decide_sequential(a[i], b[i], ca[i], cb[i]).decision.verdict
        if verdict in ("negligible", "reversed"):
            assert refuted[i]
        elif verdict == "inconclusive":
            assert not refuted[i]
    rate, bound = refuted.mean(), _bound(ALPHA / M, DRAWS)
    ROWS.append(("false negligible or reversed, effect at SESOI", scenario, rate, bound))
    assert rate <= bound


@pytest.mark.parametrize("times_sesoi", [1.5, 3.0])
def test_expected_n_and_power_under_a_true_effect(times_sesoi):
    """Under a true effect the rule stops early; its power stays close to the fixed rule's at n = 128."""
    rng = np.random.default_rng([int(10 * times_sesoi)])
    draws = 4_000
    d = times_sesoi * DELTA + 0.4 * _noise("exponential", rng, (draws, 128))
    a, b = np.exp(d), np.ones_like(d)
    ca = cb = np.zeros_like(d, dtype=bool)
    fixed = _supported_at(a, b, ca, cb, 128, ALPHA / M).mean()
    stop_n = np.full(draws, PLAN.stages[-1])
    settled = np.zeros(draws, dtype=bool)
    for n, share in zip(PLAN.stages, PLAN.alpha_shares):
        now = _supported_at(a, b, ca, cb, n, ALPHA * share / M) & ~settled
        stop_n[now] = n
        settled |= now
    for i in range(20):  # the counted stop is the real rule's
        result = _decide_sequential(a[i], b[i], ca[i], cb[i])
        assert (result.decision.verdict == "supported") == settled[i]
        if settled[i]:
            assert result.n == stop_n[i]
    power, expected_n = settled.mean(), stop_n.mean()
    ROWS.append((f"power at {times_sesoi} x SESOI (ref: fixed n = 128)", "exponential", power, fixed))
    ROWS.append((f"expected n at {times_sesoi} x SESOI (ref: fixed)", "exponential", expected_n, 128))
    assert power >= fixed - 0.05  # most of alpha is kept for the last look
    assert expected_n < 128
    if times_sesoi >= 3:
        assert expected_n <= 48  # a large effect settles at the first look almost always


def test_a_problem_at_a_look_does_not_stop_the_cell():
    a = np.full(128, 2.0)
    b = np.ones(128)
    result = decide_sequential(SPEC, lambda n: stats.paired_log_ratio(a[:n], b[:n], n_resamples=50, random_state=0),
                               family=M, plan=PLAN, problem_at=lambda n: "too few" if n < 128 else None)
    assert (result.decision.verdict, result.n, result.stage) == ("supported", 128, 2)
    assert [look["verdict"] for look in result.to_dict()["looks"]] == ["inconclusive", "inconclusive", "supported"]
