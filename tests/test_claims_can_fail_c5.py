"""C5 and C5b can fail: the claim's own test functions, run on a stand-in cell whose sweeps are
synthetic KL curves (each crossing 0.1 nats at a chosen radius), give negligible where freezing the
MLPs leaves the radius (or the real-vs-Gaussian gap) unchanged, supported where it shrinks it, and
reversed where it grows. The judge applies the project's one decision rule (verdict.decide, family 1).
Nothing here loads a language model.
"""
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from claim_harness import Judge, load_claim
from mcis_claims.cell import ClaimCell, KindSweep
from mcis_claims.config import RunConfig

RADII = np.concatenate([[0.0], np.geomspace(0.02, 4.0, 20)])  # the default schedule's shape
N, K, BLOCKS = 40, 2, 3


c5 = load_claim("test_c5_thresholds")


def kind_sweep(name, radius, seed):
    """KL 0.1 (r / radius)^2 per base (+-2 % per direction); flips grow with r (for the secondaries)."""
    rng = np.random.default_rng(seed)
    r_cross = np.asarray(radius, dtype=float)[:, None] * np.exp(0.02 * rng.standard_normal((len(radius), K)))
    kl = torch.tensor(0.1 * (RADII[None, None, :] / r_cross[..., None]) ** 2)
    flips = torch.tensor(rng.poisson(50 * RADII[None, None, :, None], size=(len(radius), K, len(RADII), BLOCKS)))
    return KindSweep(kind=name, kl=kl, radii_rel=RADII, result=SimpleNamespace(mlp_flips=flips), seconds=0.0)


BASE_RADIUS = np.geomspace(0.3, 1.2, N)


def fake_cell(real_live, real_frozen, gauss_live, gauss_frozen):
    sweeps = {("cov_random_mixture", "real", False): kind_sweep("cov", real_live, 1),
              ("cov_random_mixture", "real", True): kind_sweep("cov+frozen", real_frozen, 2),
              ("cov_random_mixture", "gaussian", False): kind_sweep("cov@gauss", gauss_live, 3),
              ("cov_random_mixture", "gaussian", True): kind_sweep("cov@gauss+frozen", gauss_frozen, 4),
              ("toward_real", "real", False): kind_sweep("toward", real_live, 5)}
    cell = SimpleNamespace(config=RunConfig(n_resamples=200), model_name="synthetic", layer=1, radii_rel=RADII,
                           documents=np.arange(N), stats=SimpleNamespace(median_norm=1.0),
                           sweep_kind=lambda kind, base="real", freeze_mlp=False: sweeps[kind.name, base, freeze_mlp])
    # the claim's estimates through ClaimCell's own methods, on this stand-in's config, documents and seed
    cell._estimate_args = partial(ClaimCell._estimate_args, cell)
    cell.paired_ratio = partial(ClaimCell.paired_ratio, cell)
    cell.radius_unit = ClaimCell.radius_unit.fget(cell)
    return cell


def run(test, spec, cell):
    judge = Judge(spec)
    test(cell, judge)
    return judge


@pytest.mark.parametrize("frozen_over_live, verdict", [(0.5, "supported"), (1.0, "negligible"), (1.5, "reversed")])
def test_c5_judges_the_frozen_over_live_radius(frozen_over_live, verdict):
    cell = fake_cell(BASE_RADIUS, frozen_over_live * BASE_RADIUS, BASE_RADIUS / 2, BASE_RADIUS / 2)
    judge = run(c5.test_c5_thresholds, c5.SPEC, cell)
    assert judge.decision.verdict == verdict, judge.decision.reason
    assert judge.estimate.value == pytest.approx(frozen_over_live, rel=0.05)
    details = judge.record["details"]
    assert details["median_radius_live"] == pytest.approx(np.median(BASE_RADIUS), rel=0.05)
    assert details["censored_fraction_frozen"] == 0.0 and details["censored_fraction_live"] == 0.0
    assert set(details["at_kl_thresholds"]) == {"0.01", "0.1", "1"}
    assert details["secondary: KL-jump vs flip-burst alignment (circular-shift null)"]["n_shifts"] == len(RADII) - 2


@pytest.mark.parametrize("frozen_gap, verdict", [(1.0, "supported"), (2.0, "negligible"), (3.0, "reversed")])
def test_c5b_judges_the_gap_frozen_vs_live(frozen_gap, verdict):
    # live gap: real / Gaussian = 2; frozen: frozen_gap (1.0: the gap is gone; 2.0: unchanged)
    cell = fake_cell(BASE_RADIUS, BASE_RADIUS / 2, BASE_RADIUS / 2, BASE_RADIUS / 2 / frozen_gap)
    judge = run(c5.test_c5b_gap_frozen_vs_live, c5.SPEC_GAP, cell)
    assert judge.decision.verdict == verdict, judge.decision.reason
    assert judge.estimate.value == pytest.approx(frozen_gap / 2.0, rel=0.05)


def test_c5b_censoring_opens_the_side_it_should():
    """A real-frozen curve that never crosses leaves d only a lower bound: the claim ('less') cannot use it."""
    never = np.full(N, 1e3)  # crosses far beyond the schedule: censored at its end
    cell = fake_cell(BASE_RADIUS, never, BASE_RADIUS / 2, BASE_RADIUS / 2)
    judge = run(c5.test_c5b_gap_frozen_vs_live, c5.SPEC_GAP, cell)
    assert judge.record["details"]["censored_fraction"]["real_frozen"] == 1.0
    assert np.isinf(judge.estimate.sample.high).all() and np.isfinite(judge.estimate.sample.low).all()
    assert judge.decision.verdict != "supported"
