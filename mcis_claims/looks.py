"""Sequential looks in a claims run (the default; `--fixed-n` turns them off): the pytest side of
`sequential.py`.

A claim function that works on one cell's base prompts is called once per look of
`SequentialPlan.doubling(n)`, with `cell.n_bases` set to the look's count, and its `judge` decides at the look's share of alpha. A settled verdict (anything but `inconclusive`,
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

from .sequential import Looks, SequentialPlan


class NextLook(Exception):
    """Raised by `judge` at a look that did not settle: the claim function runs again with more prompts."""


def runs_sequentially(item, run) -> bool:
    """Whether this test is a claim on one cell's base prompts to look at in stages.

    Not under --fixed-n, not for a claim that caps its own bases, and not when the cell has no more
    bases than the first look: one look at the full alpha is the fixed rule, recorded as such."""
    marker = item.get_closest_marker("claim")
    if not run.sequential or marker is None or not marker.kwargs.get("sequential", True):
        return False
    names = item._fixtureinfo.argnames
    return "cell" in names and "judge" in names and item.funcargs["cell"].n > run.first_look


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
