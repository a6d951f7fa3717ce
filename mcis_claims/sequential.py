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


@dataclass
class Looks:
    """Where a sequential cell is: its plan, the look being judged, and what each look so far said.

    Shared by `decide_sequential` (a claim's estimate at any n) and a claims run's --sequential
    loop (looks.py), so both stop by the same rule and record the same thing."""

    plan: SequentialPlan
    look: int = 0
    said: list = dataclasses.field(default_factory=list)

    @property
    def n(self) -> int:
        return self.plan.stages[self.look]

    @property
    def is_last(self) -> bool:
        return self.look == len(self.plan.stages) - 1

    def spec(self, spec: ClaimSpec) -> ClaimSpec:
        """The claim as this look judges it: at its share of alpha."""
        return self.plan.spec_at(spec, self.look)

    def note(self, decision: Decision, problem: str | None = None) -> bool:
        """Keep this look's verdict; -> whether the cell stops here: a settled verdict (not
        `inconclusive`, no failed health check) or the last look."""
        self.said.append({"n": self.n, "verdict": decision.verdict, "level": decision.level,
                          "interval": list(decision.interval), "alpha_share": self.plan.alpha_shares[self.look],
                          **({"problem": problem} if problem else {})})
        return self.is_last or (decision.verdict != "inconclusive" and problem is None)

    def described(self, decision: Decision) -> Decision:
        """The decision with the look in its reason: which look of how many, its n and share of alpha."""
        share = self.plan.alpha_shares[self.look]
        return dataclasses.replace(decision, reason=f"{decision.reason}; sequential look {self.look + 1} of "
                                                    f"{len(self.plan.stages)} (n = {self.n}, {share:.1%} of alpha)")

    def to_dict(self) -> dict:
        """The stage that stopped, its n, the plan and every look (a record's `details.decision.sequential`)."""
        return {"stage": self.look, "n": self.n, "stopped_early": not self.is_last,
                "plan": self.plan.to_dict(), "looks": list(self.said)}


@dataclass(frozen=True)
class SequentialDecision:
    """The verdict of the look that stopped, and what every look before it said."""

    decision: Decision
    looks: Looks

    @property
    def stage(self) -> int:
        return self.looks.look

    @property
    def n(self) -> int:
        return self.looks.n

    @property
    def stopped_early(self) -> bool:
        return not self.looks.is_last

    def to_dict(self) -> dict:
        return self.looks.to_dict()


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
    looks = Looks(plan)
    for looks.look, n in enumerate(plan.stages):
        problem = problem_at(n) if problem_at is not None else None
        decision = decide(looks.spec(spec), estimate_at(n), family=family, problem=problem)
        if looks.note(decision, problem):
            return SequentialDecision(looks.described(decision), looks)
    raise AssertionError("unreachable: the last look always stops")
