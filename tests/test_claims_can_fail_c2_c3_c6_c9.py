"""Each of C2, C2b, C3, C3b, C6 and C9 can fail: the claim's own test function, run on synthetic
inputs (a fake cell with hand-made KL curves, hand-made optima, or a hand-built read-off), gives
negligible or reversed where the data say so, and supported where they say that.

The claim functions are imported from `claims/` and called with a stand-in `cell` and a
`judge` that applies the project's one decision rule (`verdict.decide`, family of 1). Nothing
here loads a language model.
"""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from claim_harness import Judge, load_claim
from mcis_claims.activations import SiteStats
from mcis_claims.cell import ClaimCell, KindSweep
from mcis_claims.config import RunConfig
from mcis_claims.optima import OptimaRun, pair_angles_degrees
from mcis_claims.optimize import OptimizedDirections
from mcis_claims.verdict import decide

RADII = np.concatenate([[0.0], np.geomspace(0.02, 4.0, 20)])  # the default schedule's shape
N = 40  # base prompts


c2, c3, c6, c9 = (load_claim(s) for s in ("test_c2_sensitive_directions", "test_c3_optimized_directions",
                                          "test_c6_story0_margin", "test_c9_near_orthogonality"))


def curves_crossing_at(radius, k=2, jitter=0.02, seed=0):
    """(n, k, S) KL curves 0.1 (r / radius)^2: each crosses 0.1 nats at its base's radius (+- jitter)."""
    rng = np.random.default_rng(seed)
    r_cross = np.asarray(radius, dtype=float)[:, None] * np.exp(jitter * rng.standard_normal((len(radius), k)))
    return torch.tensor(0.1 * (RADII[None, None, :] / r_cross[..., None]) ** 2)


def kind_sweep(name, radius, margin=None, seed=0):
    result = SimpleNamespace(clean_margin=torch.as_tensor(margin if margin is not None else np.ones(len(radius))))
    return KindSweep(kind=name, kl=curves_crossing_at(radius, seed=seed), radii_rel=RADII, result=result, seconds=0.0)


def fake_cell(sweeps=None, **extra):
    """sweeps: {(kind name, base): KindSweep}."""
    cell = SimpleNamespace(config=RunConfig(n_resamples=200), model_name="synthetic", layer=1,
                           documents=np.arange(N), stats=SimpleNamespace(median_norm=1.0),
                           sweep_kind=lambda kind, base="real": sweeps[(kind.name, base)])
    cell.radius_unit = ClaimCell.radius_unit.fget(cell)
    for key, value in extra.items():
        setattr(cell, key, value)
    return cell


def run(test, spec, cell):
    judge = Judge(spec)
    test(cell, judge)
    return judge


# ------------------------------------------------------------------ C2 and C2b


def c2_cell(real, cov, iso):
    return fake_cell({("real_mixture", "real"): kind_sweep("real_mixture", real, seed=1),
                      ("cov_random_mixture", "real"): kind_sweep("cov_random_mixture", cov, seed=2),
                      ("isotropic", "real"): kind_sweep("isotropic", iso, seed=3)})


BASE_RADIUS = np.geomspace(0.3, 1.2, N)  # spread over bases, like real prompts


@pytest.mark.parametrize("iso_over_cov, verdict", [(2.0, "supported"), (1.0, "negligible"), (0.5, "reversed")])
def test_c2b_judges_isotropic_over_cov_random(iso_over_cov, verdict):
    cell = c2_cell(real=BASE_RADIUS, cov=BASE_RADIUS, iso=iso_over_cov * BASE_RADIUS)
    judge = run(c2.test_c2b_cov_random_vs_isotropic, c2.SPEC_ISOTROPIC, cell)
    assert judge.decision.verdict == verdict, judge.decision.reason
    assert judge.estimate.value == pytest.approx(iso_over_cov, rel=0.05)
    assert set(judge.record["details"]["at_kl_thresholds"]) == {"0.01", "0.1", "1"}


@pytest.mark.parametrize("real_over_cov, verdict", [(0.5, "supported"), (1.0, "negligible"), (2.0, "reversed")])
def test_c2_judges_real_mixture_over_cov_random(real_over_cov, verdict):
    cell = c2_cell(real=real_over_cov * BASE_RADIUS, cov=BASE_RADIUS, iso=2 * BASE_RADIUS)
    judge = run(c2.test_c2_sensitive_directions, c2.SPEC, cell)
    assert judge.decision.verdict == verdict, judge.decision.reason


# ------------------------------------------------------------------ C3 and C3b


def collapsed(n, R, d, spread, seed=0):
    """(n, R, d) unit optima: one line per base, each restart tilted off it by ~spread radians (random sign)."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.randn(n, 1, d, generator=g, dtype=torch.float64)
    noise = torch.randn(n, R, d, generator=g, dtype=torch.float64)
    sign = torch.where(torch.rand(n, R, 1, generator=g) < 0.5, -1.0, 1.0).double()
    axis = axis / axis.norm(dim=-1, keepdim=True)
    noise = noise - (noise * axis).sum(-1, keepdim=True) * axis
    noise = noise / noise.norm(dim=-1, keepdim=True)
    return sign * (math.cos(spread) * axis + math.sin(spread) * noise)


@pytest.mark.parametrize("spread_rad, verdict", [(0.15, "negligible"), (math.pi / 2, "supported")])
def test_c3b_collapsed_restarts_are_negligible(spread_rad, verdict):
    # spread 0.15 rad: pairs ~12 degrees apart, one direction found four times; pi/2: orthogonal optima
    u = collapsed(24, 4, 64, spread_rad)
    decision = decide(c3.SPEC_DISTINCT, c3.distinctness(u, n_resamples=200, random_state=0), family=1)
    assert decision.verdict == verdict, decision.reason


def test_c3b_pair_angles_are_lines_not_vectors():
    u = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]])
    np.testing.assert_allclose(pair_angles_degrees(u), [[0.0, 90.0, 90.0]], atol=1e-6)


def c3_cell(r_optimized, r_random, u, converged, init=None):
    """A cell whose cached optimisation (what `optimized` returns) is synthetic; init: the starts (default far)."""
    m, R, d = u.shape
    kl = torch.full((m, R), 0.2)
    opt = OptimizedDirections(directions=u.float(), kl=kl, initial_kl=kl / 4, trajectory=torch.stack([kl / 4, kl]),
                              radius=0.3, steps=30, lr=0.3, seconds=0.0,
                              init=(collapsed(m, R, d, 1.5, seed=9) if init is None else init).float(),
                              steps_taken=torch.full((m, R), 12), converged=torch.full((m, R), converged),
                              last_relative_change=torch.full((m, R), 0.005), tol=0.01, window=5)
    run_ = OptimaRun(m=m, random=kind_sweep("cov_random_mixture", r_random), r_random=r_random,
                     censored_random=np.zeros(m, bool), r_opt=0.3, opt=opt,
                     swept=SimpleNamespace(kl=curves_crossing_at(r_optimized, k=R)), r_optimized=r_optimized,
                     censored_optimized=np.zeros(m, bool), seconds=0.0)
    cov = torch.eye(d, dtype=torch.float64)
    return fake_cell(workspace=SimpleNamespace(cached=lambda key, compute: run_), radii_rel=RADII,
                     model=SimpleNamespace(d_model=d), stats=SimpleNamespace(median_norm=1.0, cov=cov, n_fit=1000),
                     base_activations=lambda: torch.randn(m, d, generator=torch.Generator().manual_seed(1)),
                     directions=lambda kind: collapsed(m, 2, d, 1.5, seed=3))


@pytest.mark.parametrize("opt_over_random, verdict", [(0.25, "supported"), (0.8, "negligible"), (1.5, "reversed")])
def test_c3_optimized_no_more_sensitive_fails(opt_over_random, verdict):
    r_random = BASE_RADIUS[:24]
    cell = c3_cell(opt_over_random * r_random, r_random, collapsed(24, 4, 64, 1.5), converged=True)
    judge = run(c3.test_c3_optimized_directions, c3.SPEC, cell)
    assert judge.decision.verdict == verdict, judge.decision.reason
    assert judge.record["details"]["convergence"]["steps_median"] == 12
    assert judge.record["details"]["convergence"]["precision"] == "float32"  # the stand-in's directions


def test_c3b_claim_function_collapse_and_health_check():
    r = BASE_RADIUS[:24]
    judge = run(c3.test_c3b_distinct_optima, c3.SPEC_DISTINCT, c3_cell(r / 4, r, collapsed(24, 4, 64, 0.1), True))
    assert judge.decision.verdict == "negligible", judge.decision.reason
    details = judge.record["details"]
    assert details["pairwise_abs_cos"]["median"] > 0.9 and "top10_pc_share" in details
    # optima still at their random starts: distinctness is inherited, so it cannot be judged
    u = collapsed(24, 4, 64, 1.5)
    judge = run(c3.test_c3b_distinct_optima, c3.SPEC_DISTINCT, c3_cell(r / 4, r, u, False, init=u))
    assert judge.decision.verdict == "inconclusive" and "near their random starts" in judge.decision.reason


# ------------------------------------------------------------------ C6


def c6_cell(ratio_low, ratio_high):
    margin = np.linspace(0.1, 8.0, N)  # the first half is the low-margin half
    low = margin <= np.median(margin)
    r_gauss = BASE_RADIUS
    r_real = np.where(low, ratio_low, ratio_high) * r_gauss
    return fake_cell({("cov_random_mixture", "real"): kind_sweep("cov_random_mixture", r_real, margin, seed=1),
                      ("cov_random_mixture", "gaussian"): kind_sweep("cov_random_mixture@gaussian_base", r_gauss,
                                                                     margin / 2, seed=2)})


@pytest.mark.parametrize("ratio_low, verdict", [(2.0, "supported"), (1.0, "negligible"), (0.5, "reversed")])
def test_c6_plateau_only_at_high_margin_fails(ratio_low, verdict):
    # Story 0's world: a large plateau (ratio 2) at high margin; at low margin none (1) or reversed (0.5)
    judge = run(c6.test_c6_story0_margin, c6.SPEC, c6_cell(ratio_low, 2.0))
    assert judge.decision.verdict == verdict, judge.decision.reason
    details = judge.record["details"]
    interaction = details["interaction_low_vs_high"]
    assert interaction["ratio_of_median_ratios_low_over_high"] == pytest.approx(ratio_low / 2.0, rel=0.1)
    if ratio_low < 2.0:
        assert interaction["mood_median_test_p"] < 0.01
        assert interaction["conservative_interval_log"][1] < 0
    assert details["median_margin_gaussian_arm"]["all"] == pytest.approx(np.median(np.linspace(0.1, 8.0, N)) / 2)


# ------------------------------------------------------------------ C9


def c9_cell(aligned_base: bool, d=64, d_mlp=96, n=N, seed=0):
    """A one-block 'model' whose MLP gate rows are read through an RMSNorm with unit gain.

    aligned_base=True: every gate row is one direction w and every base lies almost along w
    (cos^2 ~ 0.95); the norm removes what a perturbation adds along the base, so the aligned
    change nearly vanishes and a random direction moves the read-off far more than 1/sqrt(d) of it.
    """
    g = torch.Generator().manual_seed(seed)
    rows = torch.randn(d_mlp, d, generator=g, dtype=torch.float64)
    noise = torch.randn(n, d, generator=g, dtype=torch.float64)
    if aligned_base:
        w = rows[0] / rows[0].norm()
        rows = w.expand(d_mlp, d).clone()
        noise = noise - (noise @ w)[:, None] * w
        x = 10 * w + 10 * math.sqrt(0.05 / 0.95) * noise / noise.norm(dim=-1, keepdim=True)
    else:
        x = noise * 3
    model = SimpleNamespace(arch="llama", d_model=d, stack=SimpleNamespace(
        eps=1e-6, layers=[{"norm2": torch.ones(d), "gate": rows.float()}]))
    acts = torch.randn(400, d, generator=g, dtype=torch.float64) * torch.linspace(0.2, 3, d, dtype=torch.float64)
    cov = torch.cov(acts.T) + 1e-6 * torch.eye(d, dtype=torch.float64)
    stats = SiteStats(layer=0, site="blocks.0.hook_resid_pre", activations=acts, mean=acts.mean(0), cov=cov,
                      cov_factor=torch.linalg.cholesky(cov), median_norm=float(x.norm(dim=-1).median()),
                      eigen_clipped=0)
    return fake_cell(model=model, layer=0, stats=stats, base_activations=lambda: x.float(),
                     generator=lambda *tags: torch.Generator().manual_seed(hash(tags) % 2**31))


@pytest.mark.parametrize("aligned_base, verdict", [(False, "supported"), (True, "reversed")])
def test_c9_readoff_along_the_base_fails(aligned_base, verdict):
    judge = run(c9.test_c9_near_orthogonality, c9.SPEC, c9_cell(aligned_base))
    assert judge.decision.verdict == verdict, judge.decision.reason
    measured = judge.record["details"]["measured_readoffs_by_kind"]
    assert set(measured) == {"isotropic", "cov_random_mixture", "real_mixture"}
    if not aligned_base:
        # the linearised covariance prediction tracks the measured cov-random read-off
        cov = measured["cov_random_mixture"]
        assert cov["median_ratio_times_sqrt_d"] == pytest.approx(cov["predicted_from_covariance_linearised"], rel=0.2)
