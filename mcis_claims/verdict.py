"""`ClaimSpec` and the one rule that turns a paired sample into a verdict.

Every claim kind is decided the same way (`../shared/design/claims.md`, "Verdicts";
`decision.md` beside it):

- The family is M claim cells: the whole collected grid (claims x models x layers, before
  `-k`/`-m` deselection), or the baseline's grid when there is one. Each end of the
  interval is one-sided at alpha / M, so the interval's level is 1 - 2 alpha / M.
- The interval is the order-statistic interval of the median of the per-unit values d
  (log ratios or differences), with censored units placed where they hurt the claim: the
  lower end from each unit's lower bound, the upper end from its upper bound.
- The p-value is the exact sign test of the same median against the SESOI, adjusted
  p_adj = min(1, M p). It is the interval's decision in another form, never a second gate:
  the interval lies beyond the SESOI exactly when p_adj <= alpha.

directional ("greater"; mirrored for "less"), with delta the SESOI on d's scale:
    supported     the interval lies beyond the SESOI          (lo > delta)
    reversed      it lies wholly on the other side of the null (hi < 0)
    negligible    it lies wholly short of the SESOI           (hi < delta), not reversed
existence   as directional with the null in place of the SESOI (never negligible)
equivalence supported if the interval lies inside the margin (-mu, mu) (TOST: each end a
            sign test at alpha / M); reversed ("the effect is still there": the data show
            the opposite of the claim) if it lies wholly outside; the margin m = spec.sesoi
            is multiplicative for a ratio effect, (1/(1+m), 1+m), additive otherwise
inconclusive  anything else; or a failed health check (among them: more than 20 % of the
            units' side of the SESOI left open by censoring); or a NaN

`negligible` and `reversed` together are "refuted": the claim's test fails.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

from .errors import InputError

if TYPE_CHECKING:  # runtime import not needed: keeps `ClaimSpec` free of scipy at collection time
    from .stats import EffectEstimate

Verdict = Literal["supported", "negligible", "reversed", "inconclusive"]
VERDICTS = ("supported", "negligible", "reversed", "inconclusive")
REFUTED = ("negligible", "reversed")  # the verdicts that fail a claim's test
MAX_UNDETERMINED = 0.2  # above this fraction of censoring-undetermined units a cell is inconclusive
POWER = 0.8  # the power `required_n` is quoted at, for a true effect of 1.5 x the SESOI

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
        if self.kind == "directional":
            side = 1 if self.alternative == "greater" else -1
            if self.is_ratio and self.sesoi <= 0:
                raise InputError(f"ClaimSpec {self.id}: sesoi={self.sesoi!r} must be a positive ratio "
                                 f"for effect={self.effect!r}")
            if side * (self.sesoi - self.null_value) <= 0:
                where = "above" if side > 0 else "below"
                raise InputError(f"ClaimSpec {self.id}: sesoi={self.sesoi!r} must lie {where} the null "
                                 f"{self.null_value:g} for alternative={self.alternative!r}")

    @property
    def is_ratio(self) -> bool:
        return self.effect.endswith("ratio")

    @property
    def null_value(self) -> float:
        return 1.0 if self.is_ratio else 0.0

    @property
    def ci_level(self) -> float:
        """1 - 2 alpha, the level of an estimate built before the family is known (descriptive);
        the verdict reads the same sample at 1 - 2 alpha / M (`decide`)."""
        return 1 - 2 * self.alpha

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """A verdict, with the numbers it was decided on (all at the family-adjusted level)."""

    verdict: Verdict
    reason: str  # one line, with the numbers
    required_n: int | None  # inconclusive only: units the sign test needs at 1.5 x the SESOI, power 0.8
    effect: float = float("nan")
    interval: tuple[float, float] = (float("nan"), float("nan"))  # on the effect's scale
    level: float = float("nan")  # 1 - 2 alpha / M
    p_value: float = float("nan")  # the sign test of the claim against its SESOI (or margin), raw
    p_adjusted: float = float("nan")  # min(1, M p)
    family: int = 0
    n: int = 0  # units (documents, when bases share documents)
    undetermined_fraction: float = 0.0
    censored_fraction: dict = field(default_factory=dict)
    other_tests: dict = field(default_factory=dict)  # adjusted p of the reversed / negligible tests

    @property
    def refuted(self) -> bool:
        return self.verdict in REFUTED

    def to_dict(self) -> dict:
        from .stats import _jsonable  # NaN and inf become null: strict JSON

        return _jsonable(asdict(self))


def check_family(family) -> int:
    import numbers

    if not (isinstance(family, numbers.Integral) and not isinstance(family, bool) and family >= 1):
        raise InputError(f"family={family!r}: the multiplicity family must be a positive number of claim cells")
    return int(family)


def decide(spec: ClaimSpec, estimate: EffectEstimate, *, family: int, problem: str | None = None) -> Decision:
    """The verdict for one cell of a family of `family` cells, from the estimate's per-unit sample.

    >>> from mcis_claims import stats
    >>> spec = ClaimSpec(id="C1", title="t", statement="s", source="src", null_hypothesis="h0",
    ...                  statistic="sign test", effect="median_ratio", sesoi=1.1)
    >>> est = stats.paired_log_ratio([1.5] * 40, [1.0] * 40)
    >>> decide(spec, est, family=32).verdict
    'supported'
    """
    from . import stats

    family = check_family(family)
    sample = estimate.sample
    if sample is None:
        raise InputError(f"{spec.id}: the estimate carries no per-unit sample; build it with "
                         "mcis_claims.stats (paired_log_ratio, paired_difference, equivalence_log_ratio)")
    if sample.log_scale != spec.is_ratio:
        raise InputError(f"{spec.id}: effect={spec.effect!r} but the estimate is a "
                         f"{'ratio' if sample.log_scale else 'difference'} ({estimate.name}); "
                         "use paired_log_ratio for a ratio effect, paired_difference for a difference")
    check_estimate_matches(spec, estimate)
    units = sample.by_document()
    alpha = spec.alpha / family  # one-sided, at each end
    low, high = stats.median_interval(units.low, units.high, alpha=alpha)
    to_effect = estimate.to_effect_scale
    base = dict(effect=estimate.value, interval=(to_effect(low), to_effect(high)), level=1 - 2 * alpha,
                family=family, n=units.n, censored_fraction=dict(sample.censored))
    label = estimate.name.replace("_", " ")
    summary = (f"{label} {_num(estimate.value)}, {_pct(1 - 2 * alpha)} CI [{_num(to_effect(low))}, "
               f"{_num(to_effect(high))}] (n={units.n})")
    if _is_nan(estimate.value):
        return Decision("inconclusive", f"{label} is NaN (every unit censored on both arms?), "
                                        f"so the data cannot be judged (n={units.n})", None, **base)
    if spec.kind == "equivalence":
        return _decide_equivalence(spec, estimate, units, low, high, summary, base, problem)
    delta = 0.0 if spec.kind == "existence" else estimate.to_d_scale(spec.sesoi)
    return _decide_directional(spec, estimate, units, alpha, delta, low, high, summary, base, problem)


def check_estimate_matches(spec: ClaimSpec, estimate: EffectEstimate) -> None:
    """A claim judged on an estimate built for another claim is an authoring error, not a verdict:
    the effect's name and a one-sided estimate's direction must be the spec's (an estimate built
    with alternative="greater" judged against a "less" claim would otherwise read as inconclusive)."""
    if estimate.name != spec.effect:
        raise InputError(f"{spec.id}: the spec judges effect={spec.effect!r} but the estimate is "
                         f"{estimate.name!r}; build the estimate the spec names")
    one_sided = estimate.alternative in ("greater", "less")
    if spec.kind != "equivalence" and one_sided and estimate.alternative != spec.alternative:
        raise InputError(f"{spec.id}: the spec says alternative={spec.alternative!r} but the estimate was built "
                         f"with alternative={estimate.alternative!r}; pass alternative=SPEC.alternative")


def _decide_directional(spec, estimate, units, alpha, delta, low, high, summary, base, problem) -> Decision:
    from . import power, stats

    greater = spec.alternative == "greater"
    # the claim's test uses each unit's bound that hurts the claim; the refutations the other bound
    claim_values, refute_values = (units.low, units.high) if greater else (units.high, units.low)
    opposite = "less" if greater else "greater"
    _, p = stats.sign_test(claim_values, delta, alternative=spec.alternative)
    _, p_reversed = stats.sign_test(refute_values, 0.0, alternative=opposite)
    _, p_negligible = stats.sign_test(refute_values, delta, alternative=opposite)
    family = base["family"]
    p_adj = min(1.0, family * p)
    other = {"reversed_p_adjusted": min(1.0, family * p_reversed)}
    if spec.kind == "directional":
        other["negligible_p_adjusted"] = min(1.0, family * p_negligible)
    undetermined = units.undetermined_fraction(delta, 0.0)
    base = {**base, "p_value": p, "p_adjusted": p_adj, "undetermined_fraction": undetermined,
            "other_tests": other}
    near, far = (low, high) if greater else (high, low)  # interval ends nearest to / farthest from H0
    beyond = (lambda x: x > delta) if greater else (lambda x: x < delta)
    short_of = (lambda x: x < delta) if greater else (lambda x: x > delta)
    wrong_side = (lambda x: x < 0) if greater else (lambda x: x > 0)
    where, other_side = ("above", "below") if greater else ("below", "above")
    bound = ("the null" if spec.kind == "existence" else "SESOI") + f" {_num(estimate.to_effect_scale(delta))}"
    p_text = f"sign test p_adj={_p(p_adj)} (M={family})"
    if undetermined > MAX_UNDETERMINED:
        problem = problem or (f"censoring leaves the side of the {bound} open for {undetermined:.0%} of units "
                              f"(censored: {_censored(units.censored)}; limit {MAX_UNDETERMINED:.0%}): "
                              "extend the radius schedule or lower the threshold")
    if problem is None and beyond(near):
        return Decision("supported", f"{summary} lies {where} {bound}; {p_text} <= alpha {spec.alpha:g}", None,
                        **base)
    if problem is None and wrong_side(far):
        return Decision("reversed", f"{summary} lies wholly {other_side} the null "
                                    f"{_num(estimate.null_value)}: the opposite direction; {p_text}", None, **base)
    if problem is None and spec.kind == "directional" and short_of(far):
        return Decision("negligible", f"{summary} lies wholly {other_side} {bound}: the effect, if any, "
                                      f"is smaller than claimed; {p_text}", None, **base)
    required = None if problem else power.required_n(units, sesoi=delta, alpha=alpha, power=POWER,
                                                       alternative=spec.alternative)
    why = problem or f"{summary} straddles {bound}; {p_text}"
    if required is not None:
        why += f"; about {required} base prompts would settle it (power {POWER:g} at 1.5 x the SESOI)"
    return Decision("inconclusive", why, required, **base)


def _decide_equivalence(spec, estimate, units, low, high, summary, base, problem) -> Decision:
    from . import power, stats

    alpha = spec.alpha / base["family"]
    margin = math.log1p(spec.sesoi) if spec.is_ratio else float(spec.sesoi)
    _, p_lower = stats.sign_test(units.low, -margin, alternative="greater")
    _, p_upper = stats.sign_test(units.high, margin, alternative="less")
    family = base["family"]
    p = max(p_lower, p_upper)
    p_adj = min(1.0, family * p)
    undetermined = units.undetermined_fraction(-margin, margin)
    to_effect = estimate.to_effect_scale
    bounds = f"margin ({_num(to_effect(-margin))}, {_num(to_effect(margin))})"
    base = {**base, "p_value": p, "p_adjusted": p_adj, "undetermined_fraction": undetermined,
            "other_tests": {"p_lower_adjusted": min(1.0, family * p_lower),
                            "p_upper_adjusted": min(1.0, family * p_upper)}}
    p_text = f"TOST sign tests p_adj={_p(p_adj)} (M={family})"
    if undetermined > MAX_UNDETERMINED:
        problem = problem or (f"censoring leaves the side of the {bounds} open for {undetermined:.0%} of units "
                              f"(censored: {_censored(units.censored)}; limit {MAX_UNDETERMINED:.0%})")
    if problem is None and -margin < low and high < margin:
        return Decision("supported", f"{summary} lies inside the {bounds}; {p_text} <= alpha {spec.alpha:g}",
                        None, **base)
    if problem is None and (high < -margin or low > margin):
        return Decision("reversed", f"{summary} lies wholly outside the {bounds}: the effect is still there; "
                                    f"{p_text}", None, **base)
    required = None if problem else power.required_n_equivalence(units, margin=margin, alpha=alpha, power=POWER)
    why = problem or f"{summary} overlaps the edge of the {bounds}; {p_text}"
    if required is not None:
        why += f"; about {required} base prompts would settle it (power {POWER:g} if the true effect is null)"
    return Decision("inconclusive", why, required, **base)


def override(decision: Decision, verdict: Verdict, reason: str) -> Decision:
    """The same numbers under another verdict (a failed health check, a false precondition)."""
    from dataclasses import replace

    return replace(decision, verdict=verdict, reason=reason,
                   required_n=decision.required_n if verdict == "inconclusive" else None)


def _censored(censored: dict) -> str:
    return ", ".join(f"{arm} {fraction:.0%}" for arm, fraction in censored.items())


def _is_nan(x) -> bool:
    return x is None or math.isnan(float(x))


def _pct(level: float) -> str:
    return f"{100 * level:.4g}%"


def _num(x) -> str:
    return f"{x:.3g}"


def _p(p) -> str:
    return f"{p:.2g}"
