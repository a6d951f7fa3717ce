"""Direction kinds, the Gaussian fit and the radius read-outs."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mcis_claims import directions as dirs
from mcis_claims.activations import SiteStats, nearest_positive_definite
from mcis_claims.errors import InputError
from mcis_claims.readouts import max_slope_step, radius_at_threshold, sharpness


def fake_stats(d=16, n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    acts = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(0.1, 3, d, dtype=torch.float64) + 5
    cov, clipped = nearest_positive_definite(torch.cov(acts.T))
    return SiteStats(layer=1, site="blocks.1.hook_resid_pre", activations=acts, mean=acts.mean(0), cov=cov,
                     cov_factor=torch.linalg.cholesky(cov), median_norm=float(acts.norm(dim=-1).median()),
                     eigen_clipped=clipped)


@given(seed=st.integers(0, 10_000), n=st.integers(1, 6), k=st.integers(1, 4),
       kind=st.sampled_from(["isotropic", "cov_random_mixture", "real_mixture", "toward_real", "toward_gaussian"]))
def test_every_kind_gives_unit_directions(seed, n, k, kind):
    stats = fake_stats()
    factory = dirs.KINDS.get(kind) or (lambda: dirs.toward(kind.split("_")[1]))
    bases = stats.activations[:n]
    u = factory().sample(stats, n, k, torch.Generator().manual_seed(seed), bases=bases)
    assert u.shape == (n, k, 16)
    assert torch.allclose(u.norm(dim=-1), torch.ones(n, k, dtype=u.dtype), atol=1e-12)


def test_toward_real_never_targets_an_activation_equal_to_the_base():
    stats = fake_stats(n=3)
    stats.activations[1] = stats.activations[0]  # a repeated window: two pool entries equal the base
    u = dirs.toward("real").sample(stats, 1, 50, torch.Generator().manual_seed(0), bases=stats.activations[:1])
    expected = dirs.unit(stats.activations[2] - stats.activations[0])
    assert torch.allclose(u[0], expected.expand(50, -1))


def test_cov_random_mixture_follows_the_fitted_covariance():
    stats = fake_stats()
    u = dirs.cov_random_mixture().sample(stats, 4000, 1, torch.Generator().manual_seed(0))[:, 0]
    # variance along each axis tracks the fitted variance: axis 15 (sd 3) >> axis 0 (sd 0.1)
    assert u[:, 15].var() > 50 * u[:, 0].var()
    iso = dirs.isotropic().sample(stats, 4000, 1, torch.Generator().manual_seed(0))[:, 0]
    assert float(iso[:, 15].var()) == pytest.approx(float(iso[:, 0].var()), rel=0.2)


def test_real_mixture_pairs_are_never_the_same_prompt():
    first, second = dirs.distinct_pairs(3, (10_000,), torch.Generator().manual_seed(0))
    assert (first != second).all()
    assert set(first.tolist()) == {0, 1, 2} and set(second.tolist()) == {0, 1, 2}


def test_reprs_rebuild_the_call():
    assert repr(dirs.real_mixture()) == "real_mixture()"
    assert repr(dirs.toward("gaussian")) == "toward('gaussian')"
    with pytest.raises(InputError, match="toward target"):
        dirs.toward("elsewhere")


def test_real_other_path_runs_from_base_to_target():
    base, target = torch.zeros(2, 3), torch.ones(2, 3)
    path = dirs.real_other_path(base, target, torch.tensor([0.0, 0.5, 1.0]))
    assert path.shape == (2, 3, 3)
    assert torch.equal(path[:, 0], base) and torch.equal(path[:, -1], target)


def test_nearest_positive_definite_fixes_a_singular_covariance():
    x = torch.randn(5, 10, dtype=torch.float64)  # 5 samples in 10 dims: rank <= 4
    cov, clipped = nearest_positive_definite(torch.cov(x.T))
    assert clipped >= 6
    assert torch.linalg.eigvalsh(cov).min() > 0
    torch.linalg.cholesky(cov)


def test_radius_at_threshold_interpolates_and_censors():
    radii = np.array([0.0, 1.0, 2.0, 3.0])
    curves = np.array([[0.0, 0.05, 0.15, 0.4],   # crosses 0.1 halfway between 1 and 2
                       [0.0, 0.01, 0.02, 0.03],  # never crosses: censored at 3
                       [0.2, 0.3, 0.4, 0.5]])    # already above at radius 0
    crossing = radius_at_threshold(curves, radii, 0.1)
    assert crossing.radius.tolist() == pytest.approx([1.5, 3.0, 0.0])
    assert crossing.censored.tolist() == [False, True, False]
    with pytest.raises(InputError, match="increasing"):
        radius_at_threshold(curves, radii[::-1], 0.1)


def test_sharpness_is_one_for_a_line_and_steps_minus_one_for_a_step():
    line = np.linspace(0, 1, 11)
    step = np.r_[np.zeros(6), np.ones(5)]
    assert sharpness(line) == pytest.approx(1.0)
    assert sharpness(step) == pytest.approx(10.0)
    assert max_slope_step(step) == 6
