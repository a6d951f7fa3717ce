"""Secondary read-outs of plateau claims: the log-log slope at the crossing, and the verdict at other thresholds."""
import numpy as np
import pytest
import torch

from mcis_claims import readouts, secondary
from mcis_claims.cell import KindSweep
from mcis_claims.verdict import ClaimSpec

RADII = np.geomspace(0.01, 4.0, 30)


@pytest.mark.parametrize("power", [2.0, 4.0])
def test_slope_of_a_power_law_is_its_exponent(power):
    curves = 0.05 * (RADII / RADII[10]) ** power  # crosses 0.1 between grid points
    assert readouts.loglog_slope_at_crossing(curves, RADII, 0.1) == pytest.approx(power)


def test_slope_is_nan_where_it_cannot_be_read():
    flat = np.zeros(len(RADII))
    at_once = np.ones(len(RADII))
    slopes = readouts.loglog_slope_at_crossing(np.stack([flat, at_once]), RADII, 0.1)
    assert np.isnan(slopes).all()


def _sweep(scale, n=40, k=2):
    """KL = (r / scale)^2 for every base and direction: the crossing radius of 0.1 nats is scale * sqrt(0.1)."""
    kl = torch.tensor((RADII[None, None, :] / scale[:, None, None]) ** 2).expand(n, k, -1).clone()
    return KindSweep(kind="x", kl=kl, radii_rel=RADII, result=None, seconds=0.0)


def test_verdict_at_each_threshold_follows_the_same_rule():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.2, 0.4, 40)
    spec = ClaimSpec(id="C1", title="t", statement="s", source="s", null_hypothesis="h", statistic="sign test",
                     effect="median_ratio", sesoi=1.1)
    out = secondary.at_thresholds(spec, 32, {"real": _sweep(2 * b), "gaussian": _sweep(b)})
    assert set(out) == {"0.01", "0.1", "1"}
    for threshold, r in out.items():
        assert r["effect"] == pytest.approx(2.0, rel=0.01) and r["verdict"] == "supported", threshold  # linear interpolation
        assert r["loglog_slope_at_crossing_median"]["real"] == pytest.approx(2.0, rel=0.01)
    assert secondary.summary(out, "supported")["same_verdict_at_every_threshold"]


def test_select_judges_only_the_chosen_bases():
    """C6 judges its low-margin half, C10 its first m bases: the secondary read-outs follow the same units."""
    rng = np.random.default_rng(1)
    b = rng.uniform(0.2, 0.4, 40)
    chosen = np.arange(40) < 20
    a = np.where(chosen, 2 * b, b)  # a gap only among the chosen bases
    spec = ClaimSpec(id="C6", title="t", statement="s", source="s", null_hypothesis="h", statistic="sign test",
                     effect="median_ratio", sesoi=1.1)
    arms = {"real": _sweep(a), "gaussian": _sweep(b)}
    chosen_only = secondary.at_thresholds(spec, 4, arms, documents=np.arange(40), select=chosen)["0.1"]
    everyone = secondary.at_thresholds(spec, 4, arms, documents=np.arange(40))["0.1"]
    assert chosen_only["effect"] == pytest.approx(2.0, rel=0.01) and chosen_only["verdict"] == "supported"
    assert everyone["effect"] < 2.0
