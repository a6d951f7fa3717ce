"""Gradient ascent for sensitive directions (claim C3) on tiny random models."""
import pytest
import torch

from mcis_claims import sweep
from mcis_claims.engine import resid_pre
from mcis_claims.errors import InputError
from mcis_claims.optimize import SensitivityObjective, optimize_directions


def prompts(n, T, vocab, seed=0):
    return torch.randint(3, vocab, (n, T), generator=torch.Generator().manual_seed(seed))


def radius_for(model, layer, tokens, fraction=0.5):
    return fraction * float(resid_pre(model, layer, tokens)[:, -1].norm(dim=-1).median())


@pytest.fixture
def setup(tiny_model):
    tokens = prompts(4, 6, tiny_model.stack.d_vocab, seed=5)
    return tiny_model, tokens, radius_for(tiny_model, 1, tokens)


def run(model, tokens, radius, seed=0, steps=12):
    return optimize_directions(model, 1, tokens, radius, restarts=3, steps=steps, lr=0.3,
                               generator=torch.Generator().manual_seed(seed))


def test_ascent_raises_kl_above_the_random_starts(setup):
    model, tokens, radius = setup
    opt = run(model, tokens, radius)
    assert opt.directions.shape == (4, 3, model.d_model)
    assert opt.trajectory.shape == (13, 4, 3)
    assert torch.equal(opt.trajectory[0], opt.initial_kl) and torch.equal(opt.trajectory[-1], opt.kl)
    assert (opt.kl >= opt.initial_kl).all()  # accepted steps only: never worse than the start
    assert (opt.trajectory.diff(dim=0) >= 0).all()  # monotone per row
    assert opt.kl.median() > 1.5 * opt.initial_kl.median()


def test_directions_stay_unit(setup):
    model, tokens, radius = setup
    opt = run(model, tokens, radius)
    assert opt.precision == "float64" and opt.directions.dtype == torch.float64  # the default
    assert torch.allclose(opt.directions.norm(dim=-1), torch.ones(4, 3, dtype=torch.float64), atol=1e-12)
    cos = opt.pairwise_abs_cosine()
    assert cos.shape == (4, 3) and (cos <= 1 + 1e-5).all()


def test_deterministic_at_a_seed(setup):
    model, tokens, radius = setup
    a, b = run(model, tokens, radius, seed=7, steps=4), run(model, tokens, radius, seed=7, steps=4)
    c = run(model, tokens, radius, seed=8, steps=4)
    assert torch.equal(a.directions, b.directions) and torch.equal(a.kl, b.kl)
    assert not torch.equal(a.directions, c.directions)


def test_gradient_path_kl_equals_the_engine(setup):
    """The differentiable objective reads the same KL as the no-grad sweep engine."""
    model, tokens, radius = setup
    opt = run(model, tokens, radius, steps=5)
    objective = SensitivityObjective(model, 1, tokens, radius)
    with torch.enable_grad():
        kl_grad_path = objective(opt.directions.clone().requires_grad_(True)).detach().float()
    kl_engine = sweep(model, 1, tokens, opt.directions, torch.tensor([radius])).kl[..., 0]
    assert ((kl_grad_path - kl_engine).abs() <= 1e-4 * kl_engine + 1e-6).all(), (kl_grad_path - kl_engine).abs().max()
    # and the reported final KL is the objective at the returned directions
    assert ((opt.kl - kl_engine).abs() <= 1e-4 * kl_engine + 1e-6).all()


def test_gradient_matches_finite_differences(setup):
    model, tokens, radius = setup
    objective = SensitivityObjective(model, 1, tokens[:1], radius)
    g = torch.Generator().manual_seed(3)
    u = torch.randn(1, 1, model.d_model, generator=g, dtype=torch.float32)
    u = u / u.norm()
    v = torch.randn(1, 1, model.d_model, generator=g)
    v = v - (v * u).sum() * u
    v = v / v.norm()
    uu = u.clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(objective(uu).sum(), uu)
    eps = 1e-2
    with torch.no_grad():
        fd = (objective(u + eps * v) - objective(u - eps * v)).item() / (2 * eps)
    analytic = (grad * v).sum().item()
    assert analytic == pytest.approx(fd, rel=0.05, abs=1e-6)


def test_bad_arguments_name_the_value(setup):
    model, tokens, radius = setup
    with pytest.raises(InputError, match="radius"):
        optimize_directions(model, 1, tokens, -1.0)
    with pytest.raises(InputError, match="lr"):
        optimize_directions(model, 1, tokens, radius, lr=5.0)
    with pytest.raises(InputError, match="init"):
        optimize_directions(model, 1, tokens, radius, init=torch.randn(2, 3, model.d_model))


def test_convergence_criterion_stops_and_freezes_rows(setup):
    model, tokens, radius = setup
    opt = optimize_directions(model, 1, tokens, radius, restarts=3, steps=60, lr=0.3, tol=0.05, window=3,
                              generator=torch.Generator().manual_seed(0))
    assert opt.steps_taken.shape == opt.converged.shape == opt.last_relative_change.shape == (4, 3)
    assert opt.converged.any() and (opt.steps_taken[opt.converged] < 60).all()
    assert (opt.last_relative_change[opt.converged] < 0.05).all()  # the criterion held where it stopped
    for i, j in opt.converged.nonzero().tolist():  # frozen after its last step
        t = int(opt.steps_taken[i, j])
        assert (opt.trajectory[t:, i, j] == opt.kl[i, j]).all()
        before = opt.trajectory[max(t - 3, 0), i, j]
        assert opt.last_relative_change[i, j] == pytest.approx(float((opt.kl[i, j] - before) / opt.kl[i, j]), abs=1e-6)
    assert opt.trajectory.shape[0] - 1 == int(opt.steps_taken.max())  # stops when the last row stops
    assert opt.init.shape == opt.directions.shape


def test_without_tol_every_row_runs_every_step(setup):
    model, tokens, radius = setup
    opt = run(model, tokens, radius, steps=4)
    assert (opt.steps_taken == 4).all() and not opt.converged.any() and opt.last_relative_change.shape == (4, 3)


def test_bad_convergence_arguments(setup):
    model, tokens, radius = setup
    with pytest.raises(InputError, match="tol"):
        optimize_directions(model, 1, tokens, radius, tol=-1.0)
    with pytest.raises(InputError, match="window"):
        optimize_directions(model, 1, tokens, radius, tol=0.01, window=0)
