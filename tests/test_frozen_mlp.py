"""The engine's frozen-MLP mode (claim C5's causal test) against an independent reference.

`sweep(..., freeze_mlp=True)` freezes each later block's MLP nonlinearity at the clean row of the
batch, inside the hand-written stacks; `sweep_naive_frozen` runs one full HF forward per row with
forward hooks on HF's own MLP activation modules (clean value recorded on the clean run; GPT-2's
slope by reverse-mode autograd). Tiny random Llama (SwiGLU), GPT-2 (GELU, linearised) and Gemma3
(GELU-tanh gated).
"""
import pytest
import torch

import tiny_archs
from tiny_archs import tokens_for
from mcis_claims import sweep, sweep_points
from mcis_claims.engine import resid_pre, sweep_naive_frozen
from mcis_claims.errors import InputError
from mcis_claims.models import wrap_hf_model


def kl_tolerance(kl):
    return 1e-4 * kl + 1e-6  # the engine's contract, as tests/test_sweep.py


def unit(n, d, seed=0):
    u = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return u / u.norm(dim=-1, keepdim=True)


@pytest.fixture(scope="module", params=sorted(tiny_archs.FAST))
def fast_model(request, tokenizer):
    return wrap_hf_model(f"tiny-{request.param}", tiny_archs.FAST[request.param](), tokenizer)


@pytest.mark.parametrize("layer", [0, 1])
def test_frozen_engine_equals_one_hooked_hf_forward_per_row(fast_model, layer):
    tokens = tokens_for()
    u = unit(3, fast_model.d_model, seed=layer)
    base = resid_pre(fast_model, layer, tokens)[:, -1]
    radii = torch.linspace(0, 3, 6) * base.norm(dim=-1).median()
    frozen = sweep(fast_model, layer, tokens, u, radii, freeze_mlp=True, track_mlp=True)
    naive = sweep_naive_frozen(fast_model, layer, tokens, base[:, None] + radii[None, :, None] * u[:, None])
    assert ((frozen.kl - naive.kl).abs() <= kl_tolerance(naive.kl)).all(), (frozen.kl - naive.kl).abs().max()
    assert naive.kl[:, -1].min() > 0  # the perturbation reached the output
    assert torch.allclose(frozen.resid_l2, naive.resid_l2, atol=1e-4, rtol=1e-4)
    assert torch.equal(frozen.top1_changed, naive.top1_changed)
    assert frozen.mlp_flips.shape == (3, 6, 3 - layer)  # the gates still move; only their effect is frozen


def test_frozen_at_radius_zero_reads_exactly_zero(fast_model):
    tokens = tokens_for(n=4, seed=1)
    result = sweep(fast_model, 1, tokens, unit(4, fast_model.d_model), torch.tensor([0.0, 1.0]), freeze_mlp=True)
    assert torch.equal(result.kl[:, 0], torch.zeros(4))
    assert torch.equal(result.resid_l2[:, 0], torch.zeros_like(result.resid_l2[:, 0]))


def test_frozen_differs_from_live_at_large_radius_and_live_is_unchanged(fast_model):
    tokens = tokens_for(seed=2)
    u = unit(3, fast_model.d_model, seed=5)
    base = resid_pre(fast_model, 1, tokens)[:, -1]
    radii = torch.tensor([0.0, 0.01, 4.0]) * base.norm(dim=-1).median()
    live = sweep(fast_model, 1, tokens, u, radii)
    frozen = sweep(fast_model, 1, tokens, u, radii, freeze_mlp=True)
    default = sweep(fast_model, 1, tokens, u, radii, freeze_mlp=False)
    assert torch.equal(live.kl, default.kl)  # the default path is untouched
    # beyond the engine's own tolerance (1e-4 KL) for every prompt; random-init MLPs write little, so not by much
    assert ((frozen.kl[:, -1] - live.kl[:, -1]).abs() > 1e-4 * live.kl[:, -1]).all()
    if not fast_model.stack.mlp_gated:
        # GPT-2's frozen MLP is the live one's tangent: at a tiny radius the KLs agree to first order
        # (a gated MLP frozen at act(gate(x_clean)) drops the act'(gate) * up term, so it does not)
        assert torch.allclose(frozen.kl[:, 1], live.kl[:, 1], rtol=0.05, atol=1e-9)


def test_frozen_reference_point_freezes_at_the_reference(fast_model):
    """With a Gaussian base g as the reference, the MLPs freeze at g's values: points equal to g read 0."""
    tokens = tokens_for(n=2, seed=4)
    g = torch.randn(2, fast_model.d_model, generator=torch.Generator().manual_seed(0))
    result = sweep_points(fast_model, 1, tokens, g[:, None].repeat(1, 2, 1), reference=g, freeze_mlp=True)
    assert result.kl.abs().max() < 1e-10  # as the live mode's reference test: fp32 rounding of the logits


def test_the_generic_path_says_it_needs_a_fast_stack(tokenizer):
    model = wrap_hf_model("tiny-llama-generic", tiny_archs.llama(), tokenizer, engine="generic")
    with pytest.raises(InputError, match="needs a fast stack") as info:
        sweep(model, 1, tokens_for(), unit(3, model.d_model), torch.tensor([0.0, 1.0]), freeze_mlp=True)
    assert "\n" not in str(info.value)
