"""SequentialPlan: looks and alpha shares, and one-line errors for bad plans."""
import pytest

from mcis_claims.errors import InputError
from mcis_claims.sequential import SequentialPlan


def test_doubling_looks_end_at_n_max():
    assert SequentialPlan.doubling(128).stages == (32, 64, 128)
    assert SequentialPlan.doubling(100).stages == (32, 64, 100)
    assert SequentialPlan.doubling(32).stages == (32,)
    assert SequentialPlan.doubling(16).stages == (16,)


def test_one_look_is_the_fixed_rule():
    plan = SequentialPlan.doubling(48, first=48)
    assert plan.alpha_shares == (1.0,)


def test_shares_follow_the_power_spending_function():
    plan = SequentialPlan((32, 64, 128), rho=3)
    assert plan.alpha_shares == pytest.approx((1 / 64, 1 / 8 - 1 / 64, 7 / 8))
    assert plan.to_dict()["stages"] == [32, 64, 128]


@pytest.mark.parametrize("stages", [(), (64, 32), (32, 32), (0, 8), (1.5, 3)])
def test_bad_stages_are_one_line_errors(stages):
    with pytest.raises(InputError, match="stages"):
        SequentialPlan(stages)


def test_bad_rho():
    with pytest.raises(InputError, match="rho"):
        SequentialPlan((32, 64), rho=0)
