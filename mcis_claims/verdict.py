"""`ClaimSpec` and the rule that turns an effect estimate into a verdict.

A claim is judged on two things at once: the multiplicity-adjusted p-value (is there an
effect at all?) and the effect's confidence interval against the smallest effect size of
interest, SESOI (is it big enough to matter, or demonstrably too small?). So a verdict can
be "refuted" without any significant p-value: a narrow interval below the SESOI refutes.

directional  supported: p_adj < alpha and the whole CI lies beyond the SESOI
             refuted:   the whole CI lies short of the SESOI (this includes the wrong direction)
existence    as directional, with the null value in place of the SESOI
equivalence  supported: p_adj (the TOST p) < alpha and the whole CI lies inside the margin
             refuted:   the whole CI lies outside the margin
             The margin m = spec.sesoi is around estimate.null_value: (null/(1+m), null*(1+m))
             for a ratio effect (name ending in "ratio"; symmetric on the log scale, so
             margin=log(1+m) in `stats.tost_paired` matches it), (null-m, null+m) otherwise.
Anything else is inconclusive, and so is a NaN effect, CI or p-value.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from .errors import InputError

if TYPE_CHECKING:  # runtime import not needed: keeps `ClaimSpec` free of scipy at collection time
    from .stats import EffectEstimate

Verdict = Literal["supported", "refuted", "inconclusive"]

_KINDS = ("directional", "equivalence", "existence")
_ALTERNATIVES = ("greater", "less")


@dataclass(frozen=True)
class ClaimSpec:
    """A claim stated before any data is seen, like a pre-registration."""

    id: str  # "C1"
    title: str
    statement: str  # H1 in one or two sentences
    source: str
    null_hypothesis: str
    statistic: str
    effect: str  # the EffectEstimate name it is judged on, e.g. "median_ratio"
    sesoi: float  # on the effect's own scale; for kind="equivalence", the margin around the null
    alpha: float = 0.01
    kind: Literal["directional", "equivalence", "existence"] = "directional"
    alternative: Literal["greater", "less"] = "greater"
    needs_sae: bool = False  # cells only at layers that have an SAE (--sae's hook, else --sae-layers)

    def __post_init__(self):
        if not isinstance(self.id, str) or not self.id.strip():
            raise InputError(f"ClaimSpec id={self.id!r}: give a non-empty id such as 'C1'")
        if not (isinstance(self.alpha, (int, float)) and 0 < self.alpha < 0.5):
            raise InputError(f"ClaimSpec {self.id}: alpha={self.alpha!r} must lie in (0, 0.5), e.g. 0.01")
        if self.kind not in _KINDS:
            raise InputError(f"ClaimSpec {self.id}: kind={self.kind!r}; choose one of {', '.join(_KINDS)}")
        if self.alternative not in _ALTERNATIVES:
            raise InputError(f"ClaimSpec {self.id}: alternative={self.alternative!r}; "
                             f"choose one of {', '.join(_ALTERNATIVES)}")
        if not (isinstance(self.sesoi, (int, float)) and math.isfinite(self.sesoi)):
            raise InputError(f"ClaimSpec {self.id}: sesoi={self.sesoi!r} must be a finite number")
        if self.kind == "equivalence" and self.sesoi <= 0:
            raise InputError(f"ClaimSpec {self.id}: sesoi={self.sesoi!r} is the equivalence margin "
                             "and must be positive, e.g. 0.1")

    @property
    def ci_level(self) -> float:
        """1 - 2 alpha: a CI wholly beyond the SESOI is then a one-sided test at alpha against it
        (a 95% interval at alpha = 0.01 lets 2.5% of boundary effects through; calibration tests)."""
        return 1 - 2 * self.alpha

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str  # one line, with the numbers
    required_n: int | None  # inconclusive only: the n a power estimate says would settle it

    def to_dict(self) -> dict:
        return asdict(self)


def decide(spec: ClaimSpec, estimate: EffectEstimate, p_adjusted: float, *,
           required_n: int | None = None) -> Decision:
    """The verdict for one cell; the CI is read at the level stored in the estimate.

    >>> from mcis_claims.stats import ConfidenceInterval, EffectEstimate
    >>> spec = ClaimSpec(id="C1", title="t", statement="s", source="src", null_hypothesis="h0",
    ...                  statistic="wilcoxon", effect="median_ratio", sesoi=1.1)
    >>> est = EffectEstimate("median_ratio", 1.42, ConfidenceInterval(1.31, 1.55), 0.95, 64,
    ...                      "wilcoxon_signed_rank", 2000.0, 3e-13, "greater", 1.0, "BCa")
    >>> decide(spec, est, p_adjusted=3e-12).reason
    'median ratio 1.42, 95% CI [1.31, 1.55] lies above SESOI 1.1; p_adj=3e-12 < alpha 0.01'
    """
    low, high = estimate.confidence_interval
    label = estimate.name.replace("_", " ")
    summary = f"{label} {_num(estimate.value)}, {_level(estimate)} CI [{_num(low)}, {_num(high)}]"
    missing = _missing_numbers(estimate.value, low, high, p_adjusted)
    if missing:
        return _decision("inconclusive", f"{label}: {missing} is NaN, so the data cannot be judged "
                                         f"(n={estimate.n})", required_n)
    if spec.kind == "equivalence":
        return _decide_equivalence(spec, estimate, p_adjusted, summary, required_n)
    if spec.kind == "existence":
        return _decide_beyond(spec, estimate.null_value, "the null", p_adjusted, low, high, summary, required_n)
    side = 1 if spec.alternative == "greater" else -1
    if side * (spec.sesoi - estimate.null_value) < 0:
        raise InputError(f"ClaimSpec {spec.id}: sesoi={spec.sesoi} lies on the wrong side of the null "
                         f"{estimate.null_value} for alternative={spec.alternative!r}")
    return _decide_beyond(spec, spec.sesoi, "SESOI", p_adjusted, low, high, summary, required_n)


def _decide_beyond(spec, boundary, boundary_name, p_adjusted, low, high, summary, required_n) -> Decision:
    """Directional rule against `boundary` (the SESOI, or the null for existence claims)."""
    above = spec.alternative == "greater"
    near, far = (low, high) if above else (high, low)  # CI ends nearest to / farthest from H0
    beyond = (lambda x: x > boundary) if above else (lambda x: x < boundary)
    short_of = (lambda x: x < boundary) if above else (lambda x: x > boundary)
    where, opposite = ("above", "below") if above else ("below", "above")
    bound = f"{boundary_name} {_num(boundary)}"
    p_text = f"p_adj={_p(p_adjusted)}"
    if beyond(near) and p_adjusted < spec.alpha:
        return _decision("supported", f"{summary} lies {where} {bound}; {p_text} < alpha {spec.alpha:g}", None)
    if short_of(far):
        return _decision("refuted", f"{summary} lies {opposite} {bound}: the effect, if any, "
                                    f"is smaller than claimed; {p_text}", None)
    if beyond(near):
        why = f"{summary} lies {where} {bound} but {p_text} >= alpha {spec.alpha:g}"
    else:
        why = f"{summary} straddles {bound}; {p_text}"
    return _decision("inconclusive", why, required_n)


def _decide_equivalence(spec, estimate, p_adjusted, summary, required_n) -> Decision:
    lower, upper = _equivalence_bounds(estimate, spec.sesoi)
    low, high = estimate.confidence_interval
    bounds = f"margin ({_num(lower)}, {_num(upper)})"
    p_text = f"TOST p_adj={_p(p_adjusted)}"
    if lower < low and high < upper and p_adjusted < spec.alpha:
        return _decision("supported", f"{summary} lies inside the {bounds}; {p_text} < alpha {spec.alpha:g}",
                         None)
    if high < lower or low > upper:
        return _decision("refuted", f"{summary} lies outside the {bounds}: the effect is still there; {p_text}",
                         None)
    if lower < low and high < upper:
        why = f"{summary} lies inside the {bounds} but {p_text} >= alpha {spec.alpha:g}"
    else:
        why = f"{summary} overlaps the edge of the {bounds}; {p_text}"
    return _decision("inconclusive", why, required_n)


def _equivalence_bounds(estimate, margin) -> tuple[float, float]:
    """Multiplicative margin for a ratio effect (symmetric in log space), additive otherwise."""
    null = estimate.null_value
    if estimate.name.endswith("ratio"):
        return null / (1 + margin), null * (1 + margin)
    return null - margin, null + margin


def _decision(verdict, reason, required_n) -> Decision:
    settle = required_n if verdict == "inconclusive" else None
    if settle is not None:
        reason = f"{reason}; about {settle} base prompts would settle it"
    return Decision(verdict=verdict, reason=reason, required_n=settle)


def _missing_numbers(value, low, high, p_adjusted) -> str:
    names = {"the effect": value, "the CI": low if _is_nan(low) else high, "p_adj": p_adjusted}
    return " and ".join(name for name, x in names.items() if _is_nan(x))


def _is_nan(x) -> bool:
    return x is None or math.isnan(float(x))


def _level(estimate) -> str:
    return f"{100 * estimate.confidence_level:.4g}%"


def _num(x) -> str:
    return f"{x:.3g}"


def _p(p) -> str:
    return f"{p:.2g}"
