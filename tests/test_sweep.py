"""The sweep engine against the naive reference (one full TransformerLens forward per row)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mcis_claims import sweep, sweep_naive, sweep_points
from mcis_claims.errors import InputError, SiteError
from mcis_claims.engine import _clean_forward, clean_hidden_states, last_position_resid, resid_pre


def kl_tolerance(kl):
    # the engine's contract: |dKL| <= 1e-4 KL + 1e-6 nats in fp32
    return 1e-4 * kl + 1e-6


def random_directions(n, d, k=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(*(n,) if k is None else (n, k), d, generator=g)
    return u / u.norm(dim=-1, keepdim=True)


def prompts(n, T, vocab, seed=0):
    return torch.randint(3, vocab, (n, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_cached_sweep_equals_naive_full_recompute(tiny_model, layer):
    tokens = prompts(3, 7, tiny_model.stack.d_vocab)
    u = random_directions(3, tiny_model.d_model)
    base = resid_pre(tiny_model, layer, tokens)[:, -1]
    radii = torch.linspace(0, 3, 7) * base.norm(dim=-1).median()
    fast = sweep(tiny_model, layer, tokens, u, radii, track_mlp=True)
    naive = sweep_naive(tiny_model, layer, tokens, base[:, None] + radii[None, :, None] * u[:, None])
    assert fast.kl.shape == (3, 7)
    assert ((fast.kl - naive.kl).abs() <= kl_tolerance(naive.kl)).all(), (fast.kl - naive.kl).abs().max()
    assert torch.allclose(fast.resid_l2, naive.resid_l2, atol=1e-4, rtol=1e-4)
    assert torch.allclose(fast.response_l2, naive.response_l2, atol=1e-4, rtol=1e-4)  # the blocks' response
    assert torch.allclose(fast.normed_final_l2, naive.normed_final_l2, atol=1e-4, rtol=1e-4)  # after the final norm
    assert torch.allclose(fast.clean_entropy, naive.clean_entropy, atol=1e-4)
    assert torch.equal(fast.final_l2, fast.resid_l2[..., -1])
    assert torch.equal(fast.top1_changed, naive.top1_changed)
    assert torch.allclose(fast.clean_margin, naive.clean_margin, atol=1e-4)
    assert fast.mlp_flips.shape == (3, 7, tiny_model.n_layers - layer)
    assert (fast.mlp_flips[:, 0] == 0).all()  # radius 0 flips nothing


def test_engine_clean_path_reproduces_model_logits(tiny_model):
    tokens = prompts(4, 6, tiny_model.stack.d_vocab, seed=3)
    hidden = clean_hidden_states(tiny_model, tokens)
    stack = tiny_model.stack
    prefix = stack.build_prefix(hidden, 1)
    h = hidden[1][:, -1:]
    for layer in range(1, stack.n_layers):
        h, _ = stack.block(layer, h, prefix)
    with torch.no_grad():
        expected = tiny_model.hf_model(tokens).logits[:, -1]
    assert torch.allclose(stack.final_residual_to_logits(h)[:, 0], expected, atol=1e-5)


def test_clean_states_are_kept_per_token_batch_and_read_what_a_fresh_forward_reads(tiny_model):
    """The memo hands back one forward's tensors for the same tokens, computes anew for others, keeps a few."""
    memo = tiny_model.clean_states
    tokens = prompts(4, 6, tiny_model.stack.d_vocab, seed=5)
    first = clean_hidden_states(tiny_model, tokens)
    assert clean_hidden_states(tiny_model, tokens.clone()) is first  # same ids, another tensor: a hit
    fresh = _clean_forward(tiny_model, tokens)
    assert len(first) == tiny_model.n_layers and all(torch.equal(a, b) for a, b in zip(first, fresh))
    other = clean_hidden_states(tiny_model, tokens[:3])  # another batch: its own forward
    assert other is not first and other[0].shape[0] == 3
    for seed in range(memo.keep + 1):  # older batches fall out, the memo stays small
        clean_hidden_states(tiny_model, prompts(2, 6, tiny_model.stack.d_vocab, seed=100 + seed))
    assert len(memo._states) == memo.keep and clean_hidden_states(tiny_model, tokens) is not first
    budget, memo.max_bytes = memo.max_bytes, 1  # over the byte budget only the newest batch stays
    try:
        newest = clean_hidden_states(tiny_model, tokens[:2])
        assert len(memo._states) == 1 and clean_hidden_states(tiny_model, tokens[:2]) is newest
    finally:
        memo.max_bytes = budget


def test_last_position_resid_reads_every_layer_in_one_forward_bitwise(tiny_model):
    tokens = prompts(5, 6, tiny_model.stack.d_vocab, seed=6)
    layers = list(range(tiny_model.n_layers))
    every = last_position_resid(tiny_model, layers, tokens, batch_prompts=2)  # several batches
    for layer in layers:
        assert torch.equal(every[layer], resid_pre(tiny_model, layer, tokens, batch_prompts=2)[:, -1])
    with pytest.raises(SiteError):
        last_position_resid(tiny_model, [tiny_model.n_layers], tokens)


def test_several_directions_per_prompt_and_batch_chunking_agree(tiny_model):
    tokens = prompts(5, 6, tiny_model.stack.d_vocab, seed=1)
    u = random_directions(5, tiny_model.d_model, k=3, seed=2)
    radii = torch.tensor([0.0, 0.5, 1.0, 2.0])
    whole = sweep(tiny_model, 1, tokens, u, radii)
    chunked = sweep(tiny_model, 1, tokens, u, radii, batch_rows=4)  # forces prompt and row chunks
    assert whole.kl.shape == (5, 3, 4)
    assert torch.allclose(whole.kl, chunked.kl, atol=1e-6)
    single = sweep(tiny_model, 1, tokens[:, :], u[:, 1], radii)
    assert torch.allclose(single.kl, whole.kl[:, 1], atol=1e-6)


def test_reference_point_replaces_the_clean_activation(tiny_model):
    tokens = prompts(2, 6, tiny_model.stack.d_vocab, seed=4)
    g = torch.randn(2, tiny_model.d_model, generator=torch.Generator().manual_seed(0))
    result = sweep_points(tiny_model, 1, tokens, g[:, None].repeat(1, 2, 1), reference=g)
    assert result.kl.abs().max() < 1e-10  # the points equal the reference: nothing changes


@settings(max_examples=30)  # each example runs the naive loop; 30 cover shapes and radii well
@given(seed=st.integers(0, 2**16), n=st.integers(1, 3), T=st.integers(2, 6),
       radius=st.floats(0.0, 50.0, allow_nan=False))
def test_property_cached_equals_naive_and_kl_nonnegative(tiny_model, seed, n, T, radius):
    tokens = prompts(n, T, tiny_model.stack.d_vocab, seed=seed)
    u = random_directions(n, tiny_model.d_model, seed=seed)
    radii = torch.tensor([0.0, radius])
    fast = sweep(tiny_model, 1, tokens, u, radii)
    base = resid_pre(tiny_model, 1, tokens)[:, -1]
    naive = sweep_naive(tiny_model, 1, tokens, base[:, None] + radii[None, :, None] * u[:, None])
    assert (fast.kl >= 0).all()
    assert (fast.kl[:, 0] <= 1e-10).all()  # radius 0: KL is 0 up to fp32 rounding of the logits
    assert ((fast.kl - naive.kl).abs() <= kl_tolerance(naive.kl)).all()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda m, t, u, r: sweep(m, 7, t, u, r), "layer 7: tiny-.* has blocks 0-2"),
        (lambda m, t, u, r: sweep(m, 1, t, u * 2, r), "unit norm"),
        (lambda m, t, u, r: sweep(m, 1, t, u.masked_fill(u > 0.2, float("nan")), r), "NaN"),
        (lambda m, t, u, r: sweep(m, 1, t, u[:, :5], r), "directions must be"),
        (lambda m, t, u, r: sweep(m, 1, t.float(), u, r), "LongTensor"),
        (lambda m, t, u, r: sweep(m, 1, t[:, :1], u, r), r"T >= 2"),
        (lambda m, t, u, r: sweep(m, 1, t + 10_000, u, r), "token ids"),
        (lambda m, t, u, r: sweep(m, 1, t, u, r[None]), "1-D"),
    ],
)
def test_bad_inputs_get_one_line_errors(tiny_model, make, message):
    tokens = prompts(2, 5, tiny_model.stack.d_vocab)
    u = random_directions(2, tiny_model.d_model)
    with pytest.raises((InputError, SiteError), match=message) as info:
        make(tiny_model, tokens, u, torch.tensor([0.0, 1.0]))
    assert "\n" not in str(info.value)


def test_blocks_response_of_an_identity_network_is_exactly_zero(tokenizer):
    """Blocks whose attention and MLP write nothing pass the perturbation on unchanged: the raw
    residual change is the radius at every later block, the blocks' response exactly 0."""
    from conftest import tiny_llama
    from mcis_claims.models import wrap_hf_model

    hf = tiny_llama(n_layers=3, d_model=32)
    with torch.no_grad():
        for block in hf.model.layers:
            block.self_attn.o_proj.weight.zero_()
            block.mlp.down_proj.weight.zero_()
    identity = wrap_hf_model("identity-llama", hf, tokenizer)
    tokens = prompts(3, 6, identity.stack.d_vocab)
    u = random_directions(3, identity.d_model)
    radii = torch.tensor([0.0, 0.5, 2.0, 8.0])
    result = sweep(identity, 1, tokens, u, radii)
    assert torch.equal(result.response_l2, torch.zeros_like(result.response_l2))
    assert torch.allclose(result.resid_l2, radii[None, :, None].expand_as(result.resid_l2), rtol=1e-5)
