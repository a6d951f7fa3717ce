"""Sequential sampling: judge a cell at growing numbers of base prompts, stop once it is settled.

A cell looks at its data at stages of base prompts (by default 32, 64, ... up to the fixed
rule's n) and stops at the first look whose verdict is not `inconclusive`. Looking more than
once spends the error rate more than once, so each look k is judged by the fixed-n rule
(`verdict.decide`) at its own share alpha_k of alpha:

    alpha_k = alpha * (f(t_k) - f(t_{k-1})),   t_k = n_k / n_K,   f(t) = t ** rho   (rho = 3)

the Kim & DeMets power family of spending functions. The shares sum to alpha, and the
error of each verdict (a false `supported` at the SESOI, a false `negligible` above it, ...)
is at most the sum over looks of its per-look error, alpha_k / M at each end: the fixed
rule's bound, by Bonferroni's inequality.

Why Bonferroni spending rather than exact group-sequential boundaries (Pocock, O'Brien-
Fleming): the exact boundaries need the joint law of the statistic over looks, which for an
order-statistic interval with censored units placed where they hurt the claim has no
convenient closed form; the union bound holds whatever the dependence between looks, even if
a look re-draws its perturbations. Its cost is conservatism, kept small by rho = 3: the last
look keeps 1 - (1/2)^3 = 87.5 % of alpha when there are three looks, so a cell that needs all
its data loses little power, and only a large effect settles early.
(Kim & DeMets 1987, "Design and analysis of group sequential tests based on the type I error
spending rate function", Biometrika 74; Lan & DeMets 1983.)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from .errors import InputError
from .verdict import ClaimSpec, Decision, decide

DEFAULT_FIRST_STAGE = 32  # base prompts at the first look
DEFAULT_RHO = 3.0  # spending f(t) = t ** rho: most of alpha kept for the last look


@dataclass(frozen=True)
class SequentialPlan:
    """The looks of a sequential cell: cumulative base prompts, and the share of alpha each spends."""

    stages: tuple[int, ...]  # cumulative base prompts at each look, strictly increasing; the last is n_max
    rho: float = DEFAULT_RHO

    def __post_init__(self):
        stages = tuple(self.stages)
        if not stages or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in stages):
            raise InputError(f"stages={self.stages!r}: give positive whole numbers of base prompts, e.g. (32, 64, 128)")
        if any(b <= a for a, b in zip(stages, stages[1:])):
            raise InputError(f"stages={self.stages!r} must increase strictly, e.g. (32, 64, 128)")
        if not (isinstance(self.rho, (int, float)) and self.rho > 0):
            raise InputError(f"rho={self.rho!r}: the spending exponent must be positive, e.g. 3")
        object.__setattr__(self, "stages", stages)

    @classmethod
    def doubling(cls, n_max: int, first: int = DEFAULT_FIRST_STAGE, rho: float = DEFAULT_RHO) -> "SequentialPlan":
        """first, 2 first, 4 first, ... below n_max, then n_max: `doubling(128)` looks at 32, 64, 128."""
        if not (isinstance(n_max, int) and n_max >= 1 and isinstance(first, int) and first >= 1):
            raise InputError(f"n_max={n_max!r}, first={first!r}: give positive whole numbers of base prompts")
        stages, n = [], first
        while n < n_max:
            stages.append(n)
            n *= 2
        return cls(tuple(stages) + (n_max,), rho)

    @property
    def alpha_shares(self) -> tuple[float, ...]:
        """(K,) the fraction of alpha each look spends; they sum to 1."""
        n_max = self.stages[-1]
        spent = [(n / n_max) ** self.rho for n in self.stages]
        return tuple(b - a for a, b in zip([0.0] + spent[:-1], spent))

    def spec_at(self, spec: ClaimSpec, look: int) -> ClaimSpec:
        """The spec as look `look` judges it: the same claim at its share of alpha."""
        return dataclasses.replace(spec, alpha=spec.alpha * self.alpha_shares[look])

    def to_dict(self) -> dict:
        return {"stages": list(self.stages), "rho": self.rho, "alpha_shares": list(self.alpha_shares),
                "rule": "Bonferroni alpha spending, Kim-DeMets power family f(t) = t^rho"}


@dataclass(frozen=True)
class SequentialDecision:
    """The verdict of the look that stopped, and what every look before it said."""

    decision: Decision
    stage: int  # index of the look that stopped (0-based)
    n: int  # base prompts at that look
    plan: SequentialPlan
    looks: tuple[dict, ...]  # per look: n, verdict, level, interval

    @property
    def stopped_early(self) -> bool:
        return self.stage < len(self.plan.stages) - 1

    def to_dict(self) -> dict:
        return {"stage": self.stage, "n": self.n, "stopped_early": self.stopped_early,
                "plan": self.plan.to_dict(), "looks": list(self.looks)}


def decide_sequential(spec: ClaimSpec, estimate_at: Callable[[int], object], *, family: int, plan: SequentialPlan,
                      problem_at: Callable[[int], str | None] | None = None) -> SequentialDecision:
    """Judge look after look; stop at the first settled verdict (or the last look).

    estimate_at(n): the claim's EffectEstimate on its first n base prompts. problem_at(n): a
    failed health check at that look, or None; a look with a problem never stops the cell.

    >>> from mcis_claims import stats
    >>> spec = ClaimSpec(id="C1", title="t", statement="s", source="src", null_hypothesis="h0",
    ...                  statistic="sign test", effect="median_ratio", sesoi=1.1)
    >>> result = decide_sequential(spec, lambda n: stats.paired_log_ratio([2.0] * n, [1.0] * n),
    ...                            family=32, plan=SequentialPlan.doubling(128))
    >>> result.decision.verdict, result.n
    ('supported', 32)
    """
    looks = []
    last = len(plan.stages) - 1
    for look, n in enumerate(plan.stages):
        problem = problem_at(n) if problem_at is not None else None
        decision = decide(plan.spec_at(spec, look), estimate_at(n), family=family, problem=problem)
        looks.append({"n": n, "verdict": decision.verdict, "level": decision.level,
                      "interval": list(decision.interval), "alpha_share": plan.alpha_shares[look]})
        if (decision.verdict != "inconclusive" and problem is None) or look == last:
            return SequentialDecision(decision, look, n, plan, tuple(looks))
    raise AssertionError("unreachable: the last look always returns")
