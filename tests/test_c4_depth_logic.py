"""C4's decision over a grid, on synthetic radii: it can be supported, and it fails both ways
claims.md names ("still there late", "never beyond the margin early"), with the record saying which."""
from dataclasses import dataclass, field

import numpy as np
import pytest

from claim_harness import Judge, load_claim
from mcis_claims.config import make_config

N = 96


@dataclass
class FakeSweep:
    radius: np.ndarray
    kind: str

    def per_base_radius(self, threshold):
        return self.radius, np.zeros(len(self.radius), dtype=bool)


@dataclass
class FakeCell:
    layer: int
    gap: float  # the true ratio a / b at this layer
    config: object = field(default_factory=lambda: make_config(n_resamples=99))
    model_name: str = "fake"

    @property
    def documents(self):
        return np.arange(N)

    def sweeps(self):
        rng = np.random.default_rng(self.layer)
        b = np.exp(rng.normal(0.0, 0.3, N))
        return FakeSweep(b * self.gap * np.exp(rng.normal(0.0, 0.05, N)), "a"), FakeSweep(b, "b")


@dataclass
class FakeGrid:
    cells: list

    @property
    def layers(self):
        return [c.layer for c in self.cells]

    @property
    def early(self):
        return self.cells[0]

    @property
    def late(self):
        return self.cells[-1]


def _run(early_gap, late_gap):
    module = load_claim("test_c4_depth")
    grid = FakeGrid([FakeCell(1, early_gap), FakeCell(5, (early_gap * late_gap) ** 0.5), FakeCell(9, late_gap)])
    judge = Judge(module.SPEC_BASE, family=8)
    module.judge_depth(module.SPEC_BASE, grid, judge, lambda cell: cell.sweeps())
    return judge.decision, judge.details


def test_a_gap_that_shrinks_inside_the_margin_is_supported():
    decision, details = _run(2.0, 1.0)
    assert decision.verdict == "supported", decision.reason
    assert details["precondition"]["outcome"] == "gap beyond the margin early"
    assert details["interaction"]["verdict"] == "supported" and details["interaction"]["value"] > 1.5
    assert details["refutation"] is None


def test_a_gap_still_outside_the_margin_late_is_reversed_and_says_so():
    decision, details = _run(2.0, 2.0)
    assert decision.verdict == "reversed", decision.reason
    assert details["refutation"] == "still there late"


def test_no_gap_early_is_negligible_and_says_so():
    decision, details = _run(1.0, 1.0)
    assert decision.verdict == "negligible", decision.reason
    assert details["refutation"] == "never beyond the margin early"
    assert details["precondition"]["outcome"] == "no gap beyond the margin early"


@pytest.mark.parametrize("early_gap", [0.5, 2.0])
def test_the_interaction_follows_the_direction_of_the_early_gap(early_gap):
    decision, details = _run(early_gap, 1.0)
    assert decision.verdict == "supported", decision.reason
    assert details["interaction"]["alternative"] == ("greater" if early_gap > 1 else "less")
