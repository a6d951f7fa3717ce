"""Sequential looks in a claims run (`--sequential`): the pytest side of `sequential.py`.

Under --sequential a claim function that works on one cell's base prompts is called once per
look of `SequentialPlan.doubling(n)`, with `cell.n_bases` set to the look's count, and its
`judge` decides at the look's share of alpha. A settled verdict (anything but `inconclusive`,
with no failed health check) is recorded and ends the cell; otherwise the next look runs, and
the last look is recorded whatever it says. Every draw keyed by base prompt (directions, Gaussian
bases, path targets) is made for all bases and cut to the look, and sweeps are grown rather than
redone, so a look at 64 prompts sweeps only prompts 33..64 and the last look's numbers are those
of a fixed run at its alpha share.

Claims that cap their own number of bases (C3's optimised directions, C10's SAE stand-ins, C13's
anchors) say `@claim(SPEC, sequential=False)` and run at fixed n: a look past the cap would judge
the same units again. So do depth claims (a grid of layers) and C11's toy models (no base prompts).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .sequential import SequentialPlan

RULE = ("sequential looks at n = {stages}: look k judged at alpha_k = alpha (t_k^3 - t_(k-1)^3), t_k = n_k / n_K "
        "(Kim-DeMets power spending, Bonferroni over looks); the cell stops at the first settled verdict")


class NextLook(Exception):
    """Raised by `judge` at a look that did not settle: the claim function runs again with more prompts."""


@dataclass
class Looks:
    """Where a sequential cell is: its plan, the look running now, and what each earlier look said."""

    plan: SequentialPlan
    look: int = 0
    said: list = field(default_factory=list)

    @property
    def is_last(self) -> bool:
        return self.look == len(self.plan.stages) - 1

    def spec(self, spec):
        """The claim as this look judges it: at its share of alpha."""
        return self.plan.spec_at(spec, self.look)

    def note(self, decision, problem) -> bool:
        """Keep this look's verdict; -> whether the cell stops here."""
        self.said.append({"n": self.plan.stages[self.look], "verdict": decision.verdict, "level": decision.level,
                          "interval": list(decision.interval), "alpha_share": self.plan.alpha_shares[self.look],
                          **({"problem": problem} if problem else {})})
        return self.is_last or (decision.verdict != "inconclusive" and problem is None)

    def to_dict(self) -> dict:
        """The record's `details.decision.sequential`: the stage that stopped, its n, and every look."""
        return {"stage": self.look, "n": self.plan.stages[self.look], "stopped_early": not self.is_last,
                "rule": RULE.format(stages=", ".join(map(str, self.plan.stages))),
                "plan": self.plan.to_dict(), "looks": list(self.said)}


def runs_sequentially(item, run) -> bool:
    """Whether this test is a claim on one cell's base prompts that --sequential should look at in stages."""
    marker = item.get_closest_marker("claim")
    if not run.sequential or marker is None or not marker.kwargs.get("sequential", True):
        return False
    names = item._fixtureinfo.argnames
    return "cell" in names and "judge" in names


def run_looks(item, first: int) -> None:
    """Call the claim function look after look until its judge settles (or the last look)."""
    args = {name: item.funcargs[name] for name in item._fixtureinfo.argnames}
    cell, judge = args["cell"], args["judge"]
    looks = Looks(SequentialPlan.doubling(cell.n, first=first))
    judge.looks = looks
    try:
        for look, n in enumerate(looks.plan.stages):
            looks.look, cell.n_bases = look, n
            try:
                item.obj(**args)
                return
            except NextLook:
                continue
    finally:
        judge.looks, cell.n_bases = None, None
