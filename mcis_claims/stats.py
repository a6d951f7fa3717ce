"""Paired effect sizes and tests over base prompts, built on scipy.stats.

The unit of analysis is the base prompt: each function takes one value per base prompt
for condition A and for condition B (or their differences `d`) and returns a frozen
result, as scipy.stats does.

paired_log_ratio     median ratio A/B, BCa CI, Wilcoxon signed-rank on log(A) - log(B)
paired_difference    median difference A - B, BCa CI, Wilcoxon signed-rank on A - B
tost_paired          equivalence of d to 0 within +-margin (two one-sided Wilcoxon tests)
adjust_pvalues       Holm, Benjamini-Hochberg, or none; NaNs pass through
required_n           the n a power estimate says would settle an inconclusive result
matched_pairs_rank_biserial, cohens_dz   effect sizes of d

Medians, not means: radii-to-threshold are skewed and often censored at the end of the
radius schedule, so the median and a rank test are the robust pair. Differences equal to
zero (e.g. both radii censored) are dropped by the signed-rank test (scipy's "wilcox"
zero method) but kept for the median and its CI.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
from scipy import stats as _sps

from .errors import InputError

MIN_PAIRS = 5  # below this neither the signed-rank test nor a bootstrap CI means much
_ALTERNATIVES = ("greater", "less", "two-sided")
_ADJUST_METHODS = ("holm", "bh", "none")
_WILCOXON = "wilcoxon_signed_rank"


class ConfidenceInterval(NamedTuple):
    low: float
    high: float


@dataclass(frozen=True)
class EffectEstimate:
    """A paired effect with its CI and test, on the effect's own scale (a ratio or a difference)."""

    name: str  # "median_ratio" | "median_difference"
    value: float
    confidence_interval: ConfidenceInterval
    confidence_level: float
    n: int  # finite pairs used (zero differences included)
    statistic_name: str
    statistic: float  # scipy's: R+ for a one-sided test, min(R+, R-) for two-sided
    pvalue: float  # raw, not multiplicity-corrected
    alternative: str
    null_value: float  # the effect under H0: 1.0 for a ratio, 0.0 for a difference
    ci_method: str
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return _jsonable({
            "name": self.name, "value": self.value,
            "confidence_interval": {"low": self.confidence_interval.low, "high": self.confidence_interval.high},
            "confidence_level": self.confidence_level, "n": self.n,
            "statistic_name": self.statistic_name, "statistic": self.statistic, "pvalue": self.pvalue,
            "alternative": self.alternative, "null_value": self.null_value, "ci_method": self.ci_method,
            "extra": self.extra,
        })


@dataclass(frozen=True)
class EquivalenceResult:
    """Nonparametric TOST: is the median of d within (-margin, +margin)?"""

    pvalue: float  # max(p_lower, p_upper): equivalence is shown only if both one-sided nulls fall
    p_lower: float  # H0: median(d) <= -margin
    p_upper: float  # H0: median(d) >= +margin
    margin: float
    estimate: float  # median(d)
    confidence_interval: ConfidenceInterval  # at 1 - 2 * alpha, the interval TOST at alpha matches
    confidence_level: float
    alpha: float
    equivalent: bool
    n: int
    ci_method: str

    def to_dict(self) -> dict:
        return _jsonable({
            "pvalue": self.pvalue, "p_lower": self.p_lower, "p_upper": self.p_upper, "margin": self.margin,
            "estimate": self.estimate,
            "confidence_interval": {"low": self.confidence_interval.low, "high": self.confidence_interval.high},
            "confidence_level": self.confidence_level, "alpha": self.alpha, "equivalent": self.equivalent,
            "n": self.n, "ci_method": self.ci_method,
        })


def paired_log_ratio(a, b, *, alternative="greater", confidence_level=0.95, n_resamples=9999,
                     random_state=None, sesoi=None) -> EffectEstimate:
    """Median ratio a/b over base prompts, tested on d = log(a) - log(b) against 0.

    a, b: (n,) positive values per base prompt for conditions A and B. Pairs with a NaN or
    inf on either side are dropped and counted in extra["n_dropped"].

    >>> est = paired_log_ratio([2.0, 4, 3, 5, 2.5, 6], [1.0, 2, 2, 2, 2, 2], random_state=0)
    >>> round(est.value, 3), est.n, est.null_value
    (2.0, 6, 1.0)
    """
    a, b, n_dropped = _paired_iv(a, b, alternative, confidence_level, n_resamples, positive=True)
    d = np.log(a) - np.log(b)
    estimate = _paired_estimate(d, "median_ratio", math.exp, 1.0, alternative,
                                confidence_level, n_resamples, random_state, n_dropped)
    return _with_required_n(estimate, d, None if sesoi is None else math.log(sesoi))


def paired_difference(a, b, *, alternative="greater", confidence_level=0.95, n_resamples=9999,
                      random_state=None, sesoi=None) -> EffectEstimate:
    """Median difference a - b over base prompts, Wilcoxon signed-rank against 0.

    >>> est = paired_difference([3.0, 4, 5, 6, 7], [1.0, 1, 1, 1, 1], random_state=0)
    >>> est.value, est.n, est.null_value
    (4.0, 5, 0.0)
    """
    a, b, n_dropped = _paired_iv(a, b, alternative, confidence_level, n_resamples, positive=False)
    estimate = _paired_estimate(a - b, "median_difference", float, 0.0, alternative,
                                confidence_level, n_resamples, random_state, n_dropped)
    return _with_required_n(estimate, a - b, sesoi)


def _with_required_n(estimate: EffectEstimate, d, sesoi_on_d) -> EffectEstimate:
    """With a SESOI, also say how many base prompts would settle the claim (extra["required_n"])."""
    if sesoi_on_d is None or estimate.alternative == "two-sided":
        return estimate
    n = required_n(d, sesoi=sesoi_on_d, alpha=(1 - estimate.confidence_level) / 2,
                   alternative=estimate.alternative)
    return replace(estimate, extra={**estimate.extra, "required_n": n})


def matched_pairs_rank_biserial(d) -> float:
    """(R+ - R-) / (R+ + R-) over the nonzero differences: +1 all up, -1 all down, NaN if all zero.

    The effect size that goes with the signed-rank test (Kerby 2014).

    >>> matched_pairs_rank_biserial([1.0, -2, 3, 4])  # ranks 1..4; R+ = 8, R- = 2
    0.6
    """
    d = _one_d_finite(d, "d")
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return float("nan")
    ranks = _sps.rankdata(np.abs(nonzero))
    r_plus, r_minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    return float((r_plus - r_minus) / (r_plus + r_minus))


def cohens_dz(d) -> float:
    """mean(d) / sd(d) (ddof=1): the standardised paired effect that power analyses use. NaN if sd is 0.

    >>> cohens_dz([1.0, 2, 3])
    2.0
    """
    d = _one_d_finite(d, "d")
    if d.size < 2:
        return float("nan")
    sd = float(np.std(d, ddof=1))
    return float(np.mean(d)) / sd if sd > 0 else float("nan")


def tost_paired(d, *, margin, alpha=None, confidence_level=None, n_resamples=9999,
                random_state=None) -> EquivalenceResult:
    """Two one-sided Wilcoxon tests that the median of d lies inside (-margin, +margin).

    p_lower tests d + margin > 0, p_upper tests d - margin < 0; equivalence needs both, so
    pvalue = max(p_lower, p_upper). The CI is at level 1 - 2*alpha, the interval that
    TOST at alpha matches. Give `alpha` (default 0.05) or `confidence_level`, not both:
    alpha = (1 - confidence_level) / 2. For a ratio effect with a multiplicative margin m,
    pass d = log(a) - log(b) and margin = log(1 + m). Non-finite d are dropped; n counts the rest.
    """
    if alpha is not None and confidence_level is not None:
        raise InputError(f"alpha={alpha!r} and confidence_level={confidence_level!r}: give one; "
                         "the CI level is 1 - 2*alpha")
    if confidence_level is not None:
        _check_level(confidence_level)
        alpha = (1 - confidence_level) / 2
    elif alpha is None:
        alpha = 0.05
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 0.5):
        raise InputError(f"alpha={alpha!r}: must be a number in (0, 0.5)")
    if not (isinstance(margin, (int, float, np.floating)) and math.isfinite(margin) and margin > 0):
        raise InputError(f"margin={margin!r}: must be a positive finite number on d's scale")
    _check_resamples(n_resamples)
    d = _as_float_array(d, "d")
    finite = np.isfinite(d)
    d = _enough_pairs(d[finite], int(d.size))
    _, p_lower, _ = _signed_rank_test(d + margin, "greater")
    _, p_upper, _ = _signed_rank_test(d - margin, "less")
    pvalue = max(p_lower, p_upper)
    level = 1 - 2 * alpha
    ci, ci_method = _median_ci(d, level, n_resamples, np.random.default_rng(random_state))
    return EquivalenceResult(
        pvalue=pvalue, p_lower=p_lower, p_upper=p_upper, margin=float(margin), estimate=float(np.median(d)),
        confidence_interval=ci, confidence_level=level, alpha=float(alpha), equivalent=bool(pvalue < alpha),
        n=int(d.size), ci_method=ci_method,
    )


def equivalence_log_ratio(a, b, *, margin, alpha, n_resamples=9999, random_state=None) -> EffectEstimate:
    """TOST that the median ratio a/b lies within (1/(1+margin), 1+margin), as an EffectEstimate.

    The form `judge` and `decide(kind="equivalence")` take: pvalue is the TOST p (the larger
    of the two one-sided Wilcoxon p-values), the interval is at 1 - 2*alpha, the level that
    TOST at alpha matches, both on the ratio scale.
    """
    a, b, n_dropped = _paired_iv(a, b, "two-sided", 1 - 2 * alpha, n_resamples, positive=True)
    d = np.log(a) - np.log(b)
    tost = tost_paired(d, margin=math.log1p(margin), alpha=alpha, n_resamples=n_resamples,
                       random_state=random_state)
    low, high = tost.confidence_interval
    return EffectEstimate(
        name="median_ratio", value=math.exp(tost.estimate),
        confidence_interval=ConfidenceInterval(math.exp(low), math.exp(high)),
        confidence_level=tost.confidence_level, n=tost.n, statistic_name="TOST (two one-sided Wilcoxon signed-rank)",
        statistic=float("nan"), pvalue=tost.pvalue, alternative="two-sided", null_value=1.0, ci_method=tost.ci_method,
        extra={"p_lower": tost.p_lower, "p_upper": tost.p_upper, "margin_ratio": (1 / (1 + margin), 1 + margin),
               "n_dropped": n_dropped, "rank_biserial": matched_pairs_rank_biserial(d), "d_z": cohens_dz(d)},
    )


def adjust_pvalues(pvalues, method="holm") -> np.ndarray:
    """Multiplicity-adjusted p-values; NaNs pass through and do not count in the family size.

    "holm": step-down Holm (controls the family-wise error rate under any dependence).
    "bh": Benjamini-Hochberg via scipy.stats.false_discovery_control (false discovery rate).
    "none": the raw p-values.

    >>> adjust_pvalues([0.01, 0.04, 0.03]).round(4).tolist()
    [0.03, 0.06, 0.06]
    """
    if method not in _ADJUST_METHODS:
        raise InputError(f"method={method!r}: choose one of {', '.join(_ADJUST_METHODS)}")
    p = _as_float_array(pvalues, "pvalues", what="one p-value per test")
    known = ~np.isnan(p)
    outside = known & ((p < 0) | (p > 1))
    if outside.any():
        index = int(np.flatnonzero(outside)[0])
        raise InputError(f"pvalues[{index}] = {p[index]:g}: p-values must lie in [0, 1] (or be NaN)")
    adjusted = p.copy()
    if method == "none" or not known.any():
        return adjusted
    if method == "bh":
        adjusted[known] = _sps.false_discovery_control(p[known], method="bh")
        return adjusted
    adjusted[known] = _holm(p[known])
    return adjusted


def required_n(d, *, sesoi, alpha, power=0.8, alternative="greater") -> int | None:
    """Base prompts needed to settle an inconclusive result, if the observed effect is the truth.

    Normal approximation for a one-sample test on d with the observed mean and sd, inflated
    by pi/3 (the Wilcoxon test's asymptotic relative efficiency against the t-test for
    normal data is 3/pi): the CI must clear `sesoi` (on d's own scale: np.log(1.1) for a
    ratio SESOI of 1.1) by z_alpha + z_power standard errors. Conservative when the CI is
    at a level wider than 1 - 2*alpha. None where it cannot be estimated (fewer than two
    finite values, zero sd, or a mean exactly at the SESOI).
    """
    if alternative not in _ALTERNATIVES:
        raise InputError(f"alternative={alternative!r}: choose one of {', '.join(_ALTERNATIVES)}")
    if not (0 < alpha < 1) or not (0 < power < 1):
        raise InputError(f"alpha={alpha!r}, power={power!r}: both must lie in (0, 1)")
    d = _as_float_array(d, "d")
    d = d[np.isfinite(d)]
    if d.size < 2 or not math.isfinite(sesoi):
        return None
    sd, distance = float(np.std(d, ddof=1)), abs(float(np.mean(d)) - sesoi)
    if sd == 0 or distance == 0:
        return None
    z_alpha = _sps.norm.ppf(1 - alpha / 2 if alternative == "two-sided" else 1 - alpha)
    n = (math.pi / 3) * ((z_alpha + _sps.norm.ppf(power)) * sd / distance) ** 2
    return max(MIN_PAIRS, math.ceil(n))


# ---------------------------------------------------------------- internals


def _paired_estimate(d, name, to_effect_scale, null_value, alternative, confidence_level, n_resamples,
                     random_state, n_dropped) -> EffectEstimate:
    """Shared core: median of d, BCa CI resampling base prompts, signed-rank test against 0."""
    rng = np.random.default_rng(random_state)
    ci, ci_method = _median_ci(d, confidence_level, n_resamples, rng)
    statistic, pvalue, pvalue_method = _signed_rank_test(d, alternative)
    return EffectEstimate(
        name=name, value=to_effect_scale(float(np.median(d))),
        confidence_interval=ConfidenceInterval(to_effect_scale(ci.low), to_effect_scale(ci.high)),
        confidence_level=float(confidence_level), n=int(d.size), statistic_name=_WILCOXON,
        statistic=statistic, pvalue=pvalue, alternative=alternative, null_value=null_value,
        ci_method=ci_method,
        extra={"rank_biserial": matched_pairs_rank_biserial(d), "d_z": cohens_dz(d),
               "n_dropped": int(n_dropped), "n_zero": int(np.count_nonzero(d == 0)),
               "pvalue_method": pvalue_method},
    )


def _signed_rank_test(d, alternative) -> tuple[float, float, str]:
    """(statistic, p, method): scipy's Wilcoxon, with the degenerate cases scipy cannot handle.

    All d zero: no evidence either way, p = 1. All nonzero |d| equal: every rank ties, so
    the signed-rank test reduces exactly to the sign test; use its exact binomial p.
    """
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return 0.0, 1.0, "all differences zero: p = 1"
    n_up = int(np.count_nonzero(nonzero > 0))
    if np.ptp(np.abs(nonzero)) == 0:
        pvalue = _sps.binomtest(n_up, nonzero.size, 0.5, alternative=alternative).pvalue
        rank = (nonzero.size + 1) / 2  # the shared rank of every tied |d|
        r_plus, r_minus = rank * n_up, rank * (nonzero.size - n_up)
        statistic = min(r_plus, r_minus) if alternative == "two-sided" else r_plus
        return float(statistic), float(pvalue), "exact sign test (all |d| tie)"
    result = _sps.wilcoxon(d, alternative=alternative)
    return float(result.statistic), float(result.pvalue), "scipy.stats.wilcoxon"


def _median_ci(d, confidence_level, n_resamples, rng) -> tuple[ConfidenceInterval, str]:
    """BCa bootstrap CI of median(d), resampling base prompts; percentile where BCa is degenerate."""
    point = float(np.median(d))
    if np.ptp(d) == 0:
        return ConfidenceInterval(point, point), "none (all differences equal; the interval is the point)"
    method = f"BCa bootstrap over base prompts ({n_resamples} resamples)"
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # BCa's bias correction (or its jackknife acceleration) is undefined when most
        # values tie; scipy warns and returns NaN, and we fall back to the percentile method.
        warnings.simplefilter("ignore", _sps.DegenerateDataWarning)
        result = _sps.bootstrap((d,), np.median, n_resamples=n_resamples, vectorized=True, axis=-1,
                                confidence_level=confidence_level, method="BCa", rng=rng)
    low, high = result.confidence_interval
    if not (np.isfinite(low) and np.isfinite(high)):
        # Same bootstrap distribution, read with the percentile method (no new resamples).
        result = _sps.bootstrap((d,), np.median, n_resamples=0, vectorized=True, axis=-1,
                                confidence_level=confidence_level, method="percentile",
                                bootstrap_result=result, rng=rng)
        low, high = result.confidence_interval
        method = f"percentile (BCa degenerate) bootstrap over base prompts ({n_resamples} resamples)"
    return ConfidenceInterval(float(low), float(high)), method


def _holm(p) -> np.ndarray:
    """Holm step-down: sorted p_(i) times (m - i + 1), made monotone by a running max, capped at 1."""
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    adjusted = np.empty_like(p)
    adjusted[order] = stepped
    return adjusted


def _paired_iv(a, b, alternative, confidence_level, n_resamples, *, positive):
    """Validate paired inputs like scipy's _bootstrap_iv; drop non-finite pairs -> (a, b, n_dropped)."""
    if alternative not in _ALTERNATIVES:
        raise InputError(f"alternative={alternative!r}: choose one of {', '.join(_ALTERNATIVES)}")
    _check_level(confidence_level)
    _check_resamples(n_resamples)
    a, b = _as_float_array(a, "a"), _as_float_array(b, "b")
    if a.shape != b.shape:
        raise InputError(f"a has {a.size} values and b has {b.size}: pass one value per base prompt for each")
    finite = np.isfinite(a) & np.isfinite(b)
    if positive and np.any((a[finite] <= 0) | (b[finite] <= 0)):
        side, values = ("a", a) if np.any(a[finite] <= 0) else ("b", b)
        index = int(np.flatnonzero(finite & (values <= 0))[0])
        raise InputError(f"{side}[{index}] = {values[index]:g}: a log ratio needs positive values; "
                         "use paired_difference for signed data")
    _enough_pairs(a[finite], a.size)
    return a[finite], b[finite], int(a.size - np.count_nonzero(finite))


def _enough_pairs(finite_values, n_total):
    if finite_values.size == 0:
        raise InputError(f"all {n_total} pairs are non-finite (NaN or inf): nothing to test")
    if finite_values.size < MIN_PAIRS:
        raise InputError(f"only {finite_values.size} finite pairs (of {n_total}): need at least {MIN_PAIRS}")
    return finite_values


def _as_float_array(x, name, what="one value per base prompt") -> np.ndarray:
    try:
        array = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} is not numeric: pass a 1-D array of numbers") from None
    if array.ndim != 1:
        raise InputError(f"{name} has shape {array.shape}: pass a 1-D array, {what}")
    return array


def _one_d_finite(d, name) -> np.ndarray:
    d = _as_float_array(d, name)
    if not np.isfinite(d).all():
        raise InputError(f"{name} contains NaN or inf: drop those pairs first")
    return d


def _check_level(confidence_level):
    if not (isinstance(confidence_level, (int, float)) and 0 < confidence_level < 1):
        raise InputError(f"confidence_level={confidence_level!r}: must be a number in (0, 1), e.g. 0.95")


def _check_resamples(n_resamples):
    if not (isinstance(n_resamples, (int, np.integer)) and n_resamples > 0):
        raise InputError(f"n_resamples={n_resamples!r}: must be a positive integer, e.g. 9999")


def _jsonable(value):
    """Plain Python types for JSON: numpy scalars to Python, NaN and inf to None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
