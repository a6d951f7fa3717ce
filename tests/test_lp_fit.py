"""C13's geometry against closed forms: planted L^p responses, the linear sign artefact, the chart."""
import math

import numpy as np
import pytest
import torch

from mcis_claims import lp_fit
from mcis_claims.errors import InputError

D = 24


def sphere_setup(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    anchor = 5 * torch.randn(n, D, generator=g, dtype=torch.float64)
    d1, d2 = torch.randn(2, n, D, generator=g, dtype=torch.float64)
    e1, e2 = lp_fit.tangent_basis(anchor, d1, d2)
    return anchor, e1, e2


def contour(response, *, n=3, refine=1):
    """Intercepts of `response(x, y)` along the 16 rays, (x, y) the chart's exact coordinates on the sphere."""
    anchor, e1, e2 = sphere_setup(n)
    rays = lp_fit.ray_grid()
    C = torch.tensor(rays.coefficients)

    def evaluate(t):  # (n, R, G)
        a1, a2 = (t * C[None, :, 0, None]).reshape(n, -1), (t * C[None, :, 1, None]).reshape(n, -1)
        points = lp_fit.exp_map_points(anchor, e1, e2, a1, a2)
        R = anchor.norm(dim=-1, keepdim=True)
        x, y = (points * e1[:, None]).sum(-1) / R, (points * e2[:, None]).sum(-1) / R
        return response(x, y).reshape(t.shape)

    def half_threshold(values):
        return (0.5 * values[..., :4, :].amax(-1).amin(-1))[..., None].expand(values.shape[:-1])

    t, censored, _ = lp_fit.find_intercepts(evaluate, (n, C.shape[0]), half_threshold, refine=refine)
    assert not censored.any()
    return t.numpy()


@pytest.mark.parametrize("p", [2.0, 3.0, 4.0])
def test_planted_lp_response_returns_its_p_in_every_quadrant(p):
    # a monotone function of the L^p norm (cubed: the read-out need not be the norm itself)
    t = contour(lambda x, y: (x.abs() ** p + y.abs() ** p) ** (3 / p))
    fitted = lp_fit.quadrant_p(t)
    assert np.all(np.abs(fitted - p) < 0.1), fitted
    assert np.all(np.abs(fitted - p) < 0.01), fitted  # in fact far tighter than the issue's +-0.1


@pytest.mark.parametrize("rho", [-0.2, -0.1, 0.1, 0.2])
def test_linear_response_with_correlated_readoffs_fakes_p_by_the_artefact_formula(rho):
    J1 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    J2 = torch.tensor([rho, math.sqrt(1 - rho ** 2)], dtype=torch.float64)
    t = contour(lambda x, y: (x[..., None] * J1 + y[..., None] * J2).norm(dim=-1))
    # the diagonal point alone is exactly the formula's: 2 u^p = 1 with u^2 2 (1 + rho) = 1
    rays = lp_fit.ray_grid()
    for q, sign in ((0, rho), (1, -rho)):
        diag = t[0, rays.interior[q][1]]
        i1, i2 = rays.axis[q]
        u = math.sin(diag) * math.cos(math.pi / 4) / math.sin(t[0, i1])
        v = math.sin(diag) * math.sin(math.pi / 4) / math.sin(t[0, i2])
        assert u == pytest.approx(v, rel=1e-6)
        assert math.log(2) / math.log(1 / u) == pytest.approx(float(lp_fit.artefact_p(sign)), abs=5e-3)
    # the three-ray fit follows it within 0.15, (+,+) with rho and (+,-) with -rho
    fitted = lp_fit.quadrant_p(t)[0]
    assert fitted[0] == pytest.approx(float(lp_fit.artefact_p(rho)), abs=0.15)
    assert fitted[1] == pytest.approx(float(lp_fit.artefact_p(-rho)), abs=0.15)
    assert fitted[3] == pytest.approx(fitted[0], abs=1e-6) and fitted[2] == pytest.approx(fitted[1], abs=1e-6)
    # dq is about 0 for the artefact: ln(1 - rho^2) / (2 ln 2)
    assert lp_fit.delta_q(fitted[0], fitted[1]) == pytest.approx(math.log(1 - rho ** 2) / (2 * math.log(2)),
                                                                abs=0.03)


def test_artefact_formula_values_and_domain():
    assert float(lp_fit.artefact_p(-0.2)) == pytest.approx(2.9495, abs=1e-4)
    assert float(lp_fit.artefact_p(0.0)) == 2.0
    assert float(lp_fit.artefact_p(0.2)) < 2
    with pytest.raises(InputError, match="rho"):
        lp_fit.artefact_p(-0.6)


def test_symmetric_lp_gives_negative_dq_the_artefact_does_not():
    assert lp_fit.delta_q(2.4, 2.4) == pytest.approx(-1 / 6)
    assert abs(lp_fit.delta_q(lp_fit.artefact_p(-0.2), lp_fit.artefact_p(0.2))) < 0.03


def test_fit_lp_recovers_points_on_an_lp_circle_and_rejects_bad_input():
    psi = np.radians([10, 30, 45, 60, 80])
    for p in (0.8, 2.0, 3.3, 7.0):
        r = lp_fit.lp_radius(psi, p)
        assert lp_fit.fit_lp(r * np.cos(psi), r * np.sin(psi)) == pytest.approx(p, abs=1e-3)
    with pytest.raises(InputError, match="one length"):
        lp_fit.fit_lp([1.0, 2.0], [1.0])
    with pytest.raises(InputError, match="finite"):
        lp_fit.fit_lp([np.nan], [1.0])


def test_exp_map_preserves_the_norm_and_moves_by_the_angle():
    anchor, e1, e2 = sphere_setup()
    assert torch.allclose((e1 * e2).sum(-1), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose((e1 * anchor).sum(-1), torch.zeros(3, dtype=torch.float64), atol=1e-9)
    a1 = torch.tensor([[0.3, 0.0, 0.2]], dtype=torch.float64).expand(3, 3)
    a2 = torch.tensor([[0.0, 0.4, 0.2]], dtype=torch.float64).expand(3, 3)
    points = lp_fit.exp_map_points(anchor, e1, e2, a1, a2)
    assert torch.allclose(points.norm(dim=-1), anchor.norm(dim=-1, keepdim=True).expand(3, 3))
    cos = (points * anchor[:, None]).sum(-1) / anchor.norm(dim=-1, keepdim=True) ** 2
    assert torch.allclose(torch.acos(cos), torch.hypot(a1, a2))


def test_censored_rays_give_nan_p():
    rays = lp_fit.ray_grid()
    t = np.full((1, len(rays.coefficients)), 0.5)
    t[0, rays.interior[1][0]] = np.nan
    p = lp_fit.quadrant_p(t)[0]
    assert np.isnan(p[1]) and np.isfinite(p[[0, 2, 3]]).all()


def test_pairs_respect_the_cosine_filter():
    dirs = torch.eye(4, dtype=torch.float64)
    dirs[1] = (dirs[0] + dirs[1]) / math.sqrt(2)  # cos 0.71 with direction 0
    pairs = lp_fit.low_cosine_pairs(dirs, 10)
    assert (0, 1) not in pairs and pairs[0] == (0, 2)
    g = torch.Generator().manual_seed(0)
    control = lp_fit.random_diff_average(torch.randn(100, D, dtype=torch.float64), 5, g)
    assert torch.allclose(control.norm(dim=-1), torch.ones(5, dtype=torch.float64))


def test_measure_lp_on_a_tiny_model(tiny_model):
    """The engine wiring: shapes, T from the axes, rho, and p near 2 for a smooth random model."""
    torch.manual_seed(0)
    tokens = torch.randint(3, 60, (5, 6))
    from mcis_claims.engine import resid_pre

    anchors = resid_pre(tiny_model, 1, tokens)[:, -1]
    g = torch.Generator().manual_seed(1)
    d = torch.randn(4, tiny_model.d_model, generator=g)
    d = d / d.norm(dim=-1, keepdim=True)
    result = lp_fit.measure_lp(tiny_model, 1, tokens, anchors, d[:2], d[2:], readout_block=tiny_model.n_layers - 1)
    assert result.p.shape == (5, 2, 4) and result.t.shape == (5, 2, 16) and result.rho.shape == (5, 2)
    assert result.rows == 5 * 2 * (16 * 4 + 16 + 3)
    assert np.all(np.abs(result.rho) < 1)
    finite = result.p[np.isfinite(result.p)]
    assert finite.size > 0 and np.all((finite >= 0.5) & (finite <= 10))
    with pytest.raises(InputError, match="must not precede"):
        lp_fit.measure_lp(tiny_model, 2, tokens, anchors, d[:2], d[2:], readout_block=1)


def test_control_pool_grows_only_where_the_first_directions_have_no_low_cosine_pair():
    """Where k = 12 difference means suffice the pool is exactly those 12 (SmolLM2's numbers stand);
    where one residual dimension dominates (Gemma-3's layer 1), more are drawn until pairs pass."""
    import torch

    from mcis_claims import lp_fit

    plain = torch.randn(1000, 64, generator=torch.Generator().manual_seed(0))
    pool = lp_fit.random_diff_average_pool(plain, 12, 3, torch.Generator().manual_seed(1))
    first = lp_fit.random_diff_average(plain, 12, torch.Generator().manual_seed(1))
    assert torch.equal(pool, first)

    massive = plain.clone()
    massive[:, 0] *= 200.0  # one dimension carries most of every difference
    first = lp_fit.random_diff_average(massive, 12, torch.Generator().manual_seed(1))
    assert len(lp_fit.low_cosine_pairs(first, 3)) < 3
    pool = lp_fit.random_diff_average_pool(massive, 12, 3, torch.Generator().manual_seed(1))
    assert pool.shape[0] > 12 and torch.equal(pool[:12], first)
    assert len(lp_fit.low_cosine_pairs(pool, 3)) == 3
