"""Paired effect sizes over base prompts, built on the order statistics the verdict is decided on.

The unit of analysis is the base prompt: each function takes one value per base prompt
for condition A and for condition B (or their differences `d`) and returns a frozen
result, as scipy.stats does.

paired_log_ratio     median ratio A/B on d = log(A) - log(B); right-censored values allowed
paired_difference    median difference A - B
equivalence_log_ratio  the same sample, for an equivalence claim (TOST of the median)
PairedSample         what the verdict is decided on: per-unit bounds [low, high] of d
median_interval      order-statistic (binomial) interval of the median, one-sided level per end
sign_test            exact sign test of the median against a value (scipy.stats.binomtest's law)
adjust_pvalues       Holm, Benjamini-Hochberg, or none; NaNs pass through
matched_pairs_rank_biserial, cohens_dz   descriptive effect sizes of d

`median_interval`, `sign_test` and `order_statistic_rank` are defined in `order_stats` and
re-exported here for claim files; the n the sign test needs (`required_n`) is in `power`.

Why medians and sign tests. Radii-to-threshold are skewed and often right-censored at
the end of the radius schedule. The effect reported is the median of d, so the test that
decides is a test of the median: the exact sign test, whose dual is the order-statistic
interval (the interval lies beyond a value exactly when the sign test rejects it). Both
are distribution-free. The Wilcoxon signed-rank test (of the pseudo-median, under
symmetry) rejects a zero median under skew, so it stays in the record only as a
descriptive number (`extra["descriptive"]`), as do the rank-biserial correlation and d_z.
The interval and p-value an estimate carries are at the level it was built with; the
verdict re-reads the same sample at the family-adjusted level (`verdict.decide`).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats as _sps

from .errors import InputError
# order_statistic_rank is not used here: it is re-exported, as stats.X, with the others
from .order_stats import ConfidenceInterval, median_interval, order_statistic_rank, sign_test  # noqa: F401
from .power import required_n, required_n_equivalence

MIN_PAIRS = 5  # below this no test or interval means much
_ALTERNATIVES = ("greater", "less", "two-sided")
_ADJUST_METHODS = ("holm", "bh", "none")
_SIGN_TEST = "exact sign test of the median (binomial), paired over base prompts"


@dataclass(frozen=True)
class PairedSample:
    """Per-unit paired values d on the decision scale (log ratio or difference), as bounds.

    low[i] <= d_i <= high[i]; low == high where both arms were observed. A right-censored
    arm A (the curve never crossed) makes high[i] = +inf; a censored arm B makes low[i] =
    -inf; both censored: nothing is known. Every verdict is computed with each pair placed
    where it hurts the claim being made: the lower end of the interval from `low`, the
    upper end from `high` (decision.md, "Censoring").
    """

    low: np.ndarray
    high: np.ndarray
    log_scale: bool  # True: d = log(A/B), the effect is reported as exp(median)
    censored: dict  # arm -> fraction of units whose value is only a lower bound
    documents: np.ndarray | None = None  # the document each unit came from, when known
    n_documents: int | None = None
    arm_a: np.ndarray | None = None  # each unit's arm A and arm B values (a censored arm at its bound),
    arm_b: np.ndarray | None = None  # kept so --log-samples can show what d was made of

    @property
    def n(self) -> int:
        return int(self.low.size)

    @property
    def point(self) -> np.ndarray:
        """Each unit's value, a censored one at its bound; NaN where both arms are censored."""
        low_known, high_known = np.isfinite(self.low), np.isfinite(self.high)
        return np.where(low_known, self.low, np.where(high_known, self.high, np.nan))

    def undetermined_fraction(self, *boundaries: float) -> float:
        """Fraction of units whose side of any of `boundaries` censoring leaves open."""
        open_ = np.zeros(self.n, dtype=bool)
        for boundary in boundaries:
            open_ |= (self.low <= boundary) & (self.high > boundary) & (self.low != self.high)
        return float(open_.mean()) if self.n else float("nan")

    def by_document(self) -> "PairedSample":
        """One unit per document (the median of its bounds) when documents repeat; else self.

        The sign test needs independent units; windows of one document are not.
        """
        if self.documents is None or np.unique(self.documents).size == self.n:
            return self
        docs = np.unique(self.documents)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # inf - inf inside a median
            low = np.array([np.median(self.low[self.documents == g]) for g in docs])
            high = np.array([np.median(self.high[self.documents == g]) for g in docs])
        low = np.where(np.isnan(low), -np.inf, low)
        high = np.where(np.isnan(high), np.inf, high)
        return replace(self, low=low, high=high, documents=docs, n_documents=int(docs.size))

    def to_dict(self) -> dict:
        return _jsonable({"n": self.n, "log_scale": self.log_scale, "censored_fraction": self.censored,
                          "n_documents": self.n_documents})


@dataclass(frozen=True)
class EffectEstimate:
    """A paired effect with its interval and test, on the effect's own scale (a ratio or a difference).

    `confidence_interval` and `pvalue` are at the level the estimate was built with;
    `sample` holds the per-unit values the verdict is decided on at the family level.
    """

    name: str  # "median_ratio" | "median_difference"
    value: float
    confidence_interval: ConfidenceInterval
    confidence_level: float
    n: int  # units used
    statistic_name: str
    statistic: float  # the sign test's count of units beyond the tested value
    pvalue: float  # raw, not multiplicity-corrected
    alternative: str
    null_value: float  # the effect under H0: 1.0 for a ratio, 0.0 for a difference
    ci_method: str
    extra: dict = field(default_factory=dict)
    sample: PairedSample | None = field(default=None, compare=False, repr=False)

    def to_effect_scale(self, x: float) -> float:
        return math.exp(x) if self.sample is not None and self.sample.log_scale else float(x)

    def to_d_scale(self, x: float) -> float:
        """An effect-scale value (e.g. a SESOI ratio 1.1) on the scale of d (log 1.1)."""
        if self.sample is not None and self.sample.log_scale:
            if not x > 0:
                raise InputError(f"{x!r} is not a positive ratio, so it has no log; "
                                 "a ratio effect needs a positive SESOI")
            return math.log(x)
        return float(x)

    def to_dict(self) -> dict:
        return _jsonable({
            "name": self.name, "value": self.value,
            "confidence_interval": {"low": self.confidence_interval.low, "high": self.confidence_interval.high},
            "confidence_level": self.confidence_level, "n": self.n,
            "statistic_name": self.statistic_name, "statistic": self.statistic, "pvalue": self.pvalue,
            "alternative": self.alternative, "null_value": self.null_value, "ci_method": self.ci_method,
            "extra": self.extra, "sample": self.sample.to_dict() if self.sample is not None else None,
        })


@dataclass(frozen=True)
class EquivalenceResult:
    """Nonparametric TOST: is the median of d within (-margin, +margin)? Two sign tests."""

    pvalue: float  # max(p_lower, p_upper): equivalence is shown only if both one-sided nulls fall
    p_lower: float  # H0: median(d) <= -margin
    p_upper: float  # H0: median(d) >= +margin
    margin: float
    estimate: float  # median(d)
    confidence_interval: ConfidenceInterval  # order statistics at 1 - 2 * alpha: the dual of TOST at alpha
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


# ---------------------------------------------------------------- paired estimates


def paired_log_ratio(a, b, *, alternative="greater", confidence_level=0.95, n_resamples=9999,
                     random_state=None, sesoi=None, censored_a=None, censored_b=None,
                     documents=None) -> EffectEstimate:
    """Median ratio a/b over base prompts, on d = log(a) - log(b).

    a, b: (n,) positive values per base prompt for conditions A and B. `censored_a` /
    `censored_b`: (n,) bools, True where the value is only a lower bound (a curve that never
    reached the threshold: the truth lies above). `documents`: (n,) the document of each
    base, when bases may share one. Pairs with a NaN or inf on either side are dropped and
    counted in extra["n_dropped"]. The test is the sign test against log(sesoi) (against 0
    without a SESOI); the interval is the order-statistic one at `confidence_level`.

    >>> est = paired_log_ratio([2.0, 4, 3, 5, 2.5, 6], [1.0, 2, 2, 2, 2, 2])
    >>> round(est.value, 3), est.n, est.null_value
    (2.0, 6, 1.0)
    """
    a, b, ca, cb, docs, n_dropped = _paired_iv(a, b, alternative, confidence_level, n_resamples, censored_a,
                                               censored_b, documents, positive=True)
    low = np.where(cb, -np.inf, np.log(a) - np.log(b))
    high = np.where(ca, np.inf, np.log(a) - np.log(b))
    sample = _sample(low, high, True, ca, cb, docs, a, b)
    return _paired_estimate(sample, "median_ratio", 1.0, alternative, confidence_level, n_resamples,
                            random_state, n_dropped, None if sesoi is None else _log_sesoi(sesoi))


def paired_difference(a, b, *, alternative="greater", confidence_level=0.95, n_resamples=9999,
                      random_state=None, sesoi=None, censored_a=None, censored_b=None,
                      documents=None) -> EffectEstimate:
    """Median difference a - b over base prompts (censoring as in `paired_log_ratio`).

    >>> est = paired_difference([3.0, 4, 5, 6, 7], [1.0, 1, 1, 1, 1])
    >>> est.value, est.n, est.null_value
    (4.0, 5, 0.0)
    """
    a, b, ca, cb, docs, n_dropped = _paired_iv(a, b, alternative, confidence_level, n_resamples, censored_a,
                                               censored_b, documents, positive=False)
    low = np.where(cb, -np.inf, a - b)
    high = np.where(ca, np.inf, a - b)
    sample = _sample(low, high, False, ca, cb, docs, a, b)
    return _paired_estimate(sample, "median_difference", 0.0, alternative, confidence_level, n_resamples,
                            random_state, n_dropped, sesoi)


def _log_sesoi(sesoi) -> float:
    if not (isinstance(sesoi, (int, float, np.floating)) and sesoi > 0):
        raise InputError(f"sesoi={sesoi!r}: a ratio effect's SESOI must be a positive ratio, e.g. 1.1")
    return math.log(sesoi)


def _sample(low, high, log_scale, ca, cb, docs, a=None, b=None) -> PairedSample:
    n_docs = None if docs is None else int(np.unique(docs).size)
    return PairedSample(low=low, high=high, log_scale=log_scale,
                        censored={"a": float(np.mean(ca)), "b": float(np.mean(cb))},
                        documents=docs, n_documents=n_docs, arm_a=a, arm_b=b)


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


def tost_paired(d, *, margin, alpha=None, confidence_level=None) -> EquivalenceResult:
    """Two one-sided sign tests that the median of d lies inside (-margin, +margin).

    p_lower tests median(d) > -margin, p_upper tests median(d) < +margin; equivalence needs
    both, so pvalue = max(p_lower, p_upper). The interval is the order-statistic one at
    1 - 2*alpha, which lies inside the margin exactly when TOST rejects at alpha. Give
    `alpha` (default 0.05) or `confidence_level`, not both. For a ratio effect with a
    multiplicative margin m, pass d = log(a) - log(b) and margin = log(1 + m). Non-finite d
    are dropped; n counts the rest.
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
    d = _as_float_array(d, "d")
    d = _enough_pairs(d[np.isfinite(d)], int(d.size))
    _, p_lower = sign_test(d, -margin, alternative="greater")
    _, p_upper = sign_test(d, margin, alternative="less")
    pvalue = max(p_lower, p_upper)
    return EquivalenceResult(
        pvalue=pvalue, p_lower=p_lower, p_upper=p_upper, margin=float(margin), estimate=float(np.median(d)),
        confidence_interval=median_interval(d, alpha=alpha), confidence_level=1 - 2 * alpha, alpha=float(alpha),
        equivalent=bool(pvalue <= alpha), n=int(d.size), ci_method=_ORDER_CI,
    )


def equivalence_log_ratio(a, b, *, margin, alpha, n_resamples=9999, random_state=None, censored_a=None,
                          censored_b=None, documents=None) -> EffectEstimate:
    """The median ratio a/b for an equivalence claim: TOST within (1/(1+margin), 1+margin).

    The form `judge` takes for `kind="equivalence"`: the same sample as `paired_log_ratio`,
    with pvalue the TOST p (the larger of the two one-sided sign-test p-values) and the
    interval at 1 - 2*alpha, both on the ratio scale.
    """
    if not (isinstance(margin, (int, float, np.floating)) and math.isfinite(margin) and margin > 0):
        raise InputError(f"margin={margin!r}: must be a positive finite number (a ratio margin m: 1/(1+m)..1+m)")
    a, b, ca, cb, docs, n_dropped = _paired_iv(a, b, "two-sided", 1 - 2 * alpha, n_resamples, censored_a,
                                               censored_b, documents, positive=True)
    d = np.log(a) - np.log(b)
    sample = _sample(np.where(cb, -np.inf, d), np.where(ca, np.inf, d), True, ca, cb, docs)
    return equivalence_estimate(sample, "median_ratio", 1.0, math.log1p(margin), alpha,
                                n_resamples=n_resamples, random_state=random_state, n_dropped=n_dropped)


def equivalence_estimate(sample: PairedSample, name: str, null_value: float, margin_d: float, alpha: float, *,
                         n_resamples=9999, random_state=None, n_dropped=0) -> EffectEstimate:
    """TOST of the median of a sample within (-margin_d, margin_d) on d's scale, as an EffectEstimate."""
    unit = sample.by_document()
    interval = median_interval(unit.low, unit.high, alpha=alpha)
    _, p_lower = sign_test(unit.low, -margin_d, alternative="greater")
    _, p_upper = sign_test(unit.high, margin_d, alternative="less")
    to_effect = math.exp if sample.log_scale else float
    margins = ((to_effect(-margin_d), to_effect(margin_d)))
    return EffectEstimate(
        name=name, value=to_effect(_point_median(sample)),
        confidence_interval=ConfidenceInterval(to_effect(interval.low), to_effect(interval.high)),
        confidence_level=1 - 2 * alpha, n=unit.n, statistic_name="TOST: two one-sided exact sign tests of the median",
        statistic=float("nan"), pvalue=max(p_lower, p_upper), alternative="two-sided", null_value=null_value,
        ci_method=_ORDER_CI,
        extra={"p_lower": p_lower, "p_upper": p_upper, "margin": margins, "n_dropped": int(n_dropped),
               "required_n": required_n_equivalence(unit, margin=margin_d, alpha=alpha),
               "descriptive": _descriptive(sample, n_resamples, random_state, 1 - 2 * alpha)},
        sample=sample,
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


# ---------------------------------------------------------------- internals

_ORDER_CI = "order statistics of the median (exact binomial; distribution-free)"


def _point_median(sample: PairedSample) -> float:
    point = sample.point
    point = point[np.isfinite(point)]
    return float(np.median(point)) if point.size else float("nan")


def _paired_estimate(sample, name, null_value, alternative, confidence_level, n_resamples, random_state,
                     n_dropped, sesoi_d) -> EffectEstimate:
    """Shared core: median of d, order-statistic interval, sign test against the SESOI (else the null)."""
    unit = sample.by_document()
    alpha = (1 - confidence_level) / 2
    interval = median_interval(unit.low, unit.high, alpha=alpha)
    to_effect = math.exp if sample.log_scale else float
    tested = 0.0 if sesoi_d is None else sesoi_d
    if alternative == "two-sided":
        k_up, p_up = sign_test(unit.low, tested, alternative="greater")
        k_down, p_down = sign_test(unit.high, tested, alternative="less")
        count, pvalue = (k_up, p_up) if p_up <= p_down else (k_down, p_down)
        pvalue = min(1.0, 2 * pvalue)
    else:
        values = unit.low if alternative == "greater" else unit.high  # censoring placed against the claim
        count, pvalue = sign_test(values, tested, alternative=alternative)
    extra = {"tested_value": to_effect(tested), "n_dropped": int(n_dropped),
             "descriptive": _descriptive(sample, n_resamples, random_state, confidence_level)}
    if sesoi_d is not None and alternative != "two-sided":
        extra["required_n"] = required_n(unit, sesoi=sesoi_d, alpha=alpha, alternative=alternative)
    return EffectEstimate(
        name=name, value=to_effect(_point_median(sample)),
        confidence_interval=ConfidenceInterval(to_effect(interval.low), to_effect(interval.high)),
        confidence_level=float(confidence_level), n=unit.n, statistic_name=_SIGN_TEST, statistic=float(count),
        pvalue=pvalue, alternative=alternative, null_value=null_value, ci_method=_ORDER_CI, extra=extra,
        sample=sample,
    )


def _descriptive(sample: PairedSample, n_resamples, random_state, confidence_level) -> dict:
    """Read-outs beside the decision, never deciding: Wilcoxon, rank-biserial, d_z, a bootstrap CI.

    On the units' point values (censored ones at their bound). The bootstrap resamples
    documents when bases share them (a cluster bootstrap), else base prompts.
    """
    point = sample.point
    keep = np.isfinite(point)
    d = point[keep]
    out = {"note": "descriptive only: the verdict is decided by the sign test and order-statistic interval"}
    if d.size < MIN_PAIRS:
        return out
    statistic, pvalue, method = _signed_rank_test(d, "two-sided")
    to_effect = math.exp if sample.log_scale else float
    docs = None if sample.documents is None or sample.n_documents == sample.n else sample.documents[keep]
    ci, ci_method = _bootstrap_median_ci(d, docs, confidence_level, min(n_resamples, 1999),
                                         np.random.default_rng(random_state))
    out.update({"wilcoxon_two_sided_p": pvalue, "wilcoxon_statistic": statistic, "wilcoxon_method": method,
                "rank_biserial": matched_pairs_rank_biserial(d), "d_z": cohens_dz(d),
                "bootstrap_ci": [to_effect(ci.low), to_effect(ci.high)], "bootstrap_method": ci_method,
                "n_zero": int(np.count_nonzero(d == 0))})
    return out


def _signed_rank_test(d, alternative) -> tuple[float, float, str]:
    """(statistic, p, method): scipy's Wilcoxon (descriptive), with the degenerate cases scipy cannot handle."""
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return 0.0, 1.0, "all differences zero: p = 1"
    n_up = int(np.count_nonzero(nonzero > 0))
    if np.ptp(np.abs(nonzero)) == 0:
        pvalue = _sps.binomtest(n_up, nonzero.size, 0.5, alternative=alternative).pvalue
        return float(n_up), float(pvalue), "exact sign test (all |d| tie)"
    result = _sps.wilcoxon(d, alternative=alternative)
    return float(result.statistic), float(result.pvalue), "scipy.stats.wilcoxon"


def _bootstrap_median_ci(d, documents, confidence_level, n_resamples, rng) -> tuple[ConfidenceInterval, str]:
    """Percentile bootstrap of median(d), resampling documents (clusters) when given, else units."""
    if np.ptp(d) == 0:
        return ConfidenceInterval(float(d[0]), float(d[0])), "none (all values equal)"
    if documents is None:
        index = rng.integers(0, d.size, size=(n_resamples, d.size))
        medians = np.median(d[index], axis=1)
        how = f"percentile bootstrap over base prompts ({n_resamples} resamples)"
    else:
        groups = [d[documents == g] for g in np.unique(documents)]
        medians = np.empty(n_resamples)
        for r in range(n_resamples):
            chosen = rng.integers(0, len(groups), size=len(groups))
            medians[r] = np.median(np.concatenate([groups[i] for i in chosen]))
        how = f"percentile cluster bootstrap over {len(groups)} documents ({n_resamples} resamples)"
    tail = 100 * (1 - confidence_level) / 2
    low, high = np.percentile(medians, [tail, 100 - tail])
    return ConfidenceInterval(float(low), float(high)), how


def _holm(p) -> np.ndarray:
    """Holm step-down: sorted p_(i) times (m - i + 1), made monotone by a running max, capped at 1."""
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    adjusted = np.empty_like(p)
    adjusted[order] = stepped
    return adjusted


def _paired_iv(a, b, alternative, confidence_level, n_resamples, censored_a, censored_b, documents, *,
               positive):
    """Validate paired inputs like scipy's _bootstrap_iv; drop non-finite pairs.

    -> (a, b, censored_a, censored_b, documents or None, n_dropped)
    """
    if alternative not in _ALTERNATIVES:
        raise InputError(f"alternative={alternative!r}: choose one of {', '.join(_ALTERNATIVES)}")
    _check_level(confidence_level)
    _check_resamples(n_resamples)
    a, b = _as_float_array(a, "a"), _as_float_array(b, "b")
    if a.shape != b.shape:
        raise InputError(f"a has {a.size} values and b has {b.size}: pass one value per base prompt for each")
    flags = []
    for name, flag in (("censored_a", censored_a), ("censored_b", censored_b)):
        flag = np.zeros(a.shape, dtype=bool) if flag is None else np.asarray(flag)
        if flag.shape != a.shape or flag.dtype != bool:
            raise InputError(f"{name} must be {a.size} booleans (True: the value is only a lower bound); "
                             f"got shape {flag.shape}, dtype {flag.dtype}")
        flags.append(flag)
    if documents is not None:
        documents = np.asarray(documents)
        if documents.shape != a.shape:
            raise InputError(f"documents has {documents.size} entries and a has {a.size}: one per base prompt")
    finite = np.isfinite(a) & np.isfinite(b)
    if positive and np.any((a[finite] <= 0) | (b[finite] <= 0)):
        side, values = ("a", a) if np.any(a[finite] <= 0) else ("b", b)
        index = int(np.flatnonzero(finite & (values <= 0))[0])
        raise InputError(f"{side}[{index}] = {values[index]:g}: a log ratio needs positive values; "
                         "use paired_difference for signed data")
    _enough_pairs(a[finite], a.size)
    docs = None if documents is None else documents[finite]
    return (a[finite], b[finite], flags[0][finite], flags[1][finite], docs,
            int(a.size - np.count_nonzero(finite)))


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
