"""The float64 copy C3's ascent runs on: float64 throughout, on every architecture, and the model untouched."""
import pytest
import torch

import tiny_archs
from tiny_archs import tokens_for
from mcis_claims.engine import clean_hidden_states
from mcis_claims.errors import InputError
from mcis_claims.models import wrap_hf_model
from mcis_claims.optimize import optimize_directions
from mcis_claims.precision import in_float64, keep_float64


@pytest.fixture(scope="module", params=tiny_archs.CASES, ids=tiny_archs.CASE_IDS)
def arch_model(request, tokenizer):
    return tiny_archs.wrapped(*request.param, tokenizer)


def test_keep_float64_keeps_float64_and_only_float64():
    x, y = torch.randn(4, dtype=torch.float64), torch.randn(4)
    with keep_float64():
        assert x.float().dtype == x.to(torch.float32).dtype == x.to(dtype=torch.float32).dtype == torch.float64
        assert x.to("cpu", torch.float32).dtype == x.type(torch.float32).dtype == torch.float64
        assert torch.softmax(x, -1, dtype=torch.float32).dtype == torch.float64
        assert y.double().float().dtype == torch.float64  # a float64 made inside stays float64 too
        assert y.float().dtype == y.to(torch.float16).float().dtype == torch.float32  # float32 tensors as written
        assert x.to(torch.float16).dtype == torch.float16  # only float32 casts are kept
    assert x.float().dtype == torch.float32  # outside the context nothing changes


def test_the_copy_is_float64_made_once_and_leaves_the_model_as_it_was(arch_model):
    before = {k: v.clone() for k, v in arch_model.hf_model.state_dict().items()}
    twin = in_float64(arch_model)
    assert in_float64(arch_model) is twin and twin.bridge is None and twin.name == arch_model.name
    assert all(p.dtype == torch.float64 for p in twin.hf_model.parameters())
    assert twin.stack.unembed.dtype == torch.float64 and twin.to_meta()["dtype"] == "float64"
    after = arch_model.hf_model.state_dict()
    assert all(v.dtype == torch.float32 and torch.equal(v, after[k]) for k, v in before.items())
    assert arch_model.to_meta()["dtype"] == "float32"
    tokens = tokens_for(seed=2)
    h32, h64 = clean_hidden_states(arch_model, tokens), clean_hidden_states(twin, tokens)
    assert h64[1].dtype == torch.float64
    assert torch.allclose(h64[-1].float(), h32[-1], rtol=1e-4, atol=1e-4)  # the same model, finer arithmetic


def test_the_copys_two_paths_agree_to_float64_precision(arch_model):
    """HF's forward and the decode stack of the copy agree to ~1e-15: neither rounds to float32 anywhere
    (HF's RMSNorms and rotary tables cast to float32 by hand; under keep_float64 they do not)."""
    twin = in_float64(arch_model)
    tokens = tokens_for(seed=4)
    with keep_float64():
        hidden = clean_hidden_states(twin, tokens)
        prefix = twin.stack.build_prefix(hidden, 1, tokens=tokens)
        h = hidden[1][:, -1:]
        for layer in range(1, twin.stack.n_layers):
            h, _ = twin.stack.block(layer, h, prefix)
        logits = twin.stack.final_residual_to_logits(h)[:, 0]
        expected = twin.hf_model(tokens, use_cache=False).logits[:, -1]
    assert logits.dtype == expected.dtype == torch.float64
    assert (logits - expected).abs().max() <= 1e-10 * expected.abs().max(), (logits - expected).abs().max()


def test_without_the_context_hf_rounds_a_float64_llama_to_float32(tokenizer):
    """Why keep_float64 exists: HF's LlamaRMSNorm computes in float32 even for float64 weights."""
    model = wrap_hf_model("tiny-llama-precision", tiny_archs.llama(), tokenizer)
    twin = in_float64(model)
    tokens = tokens_for(seed=5)
    with keep_float64():
        kept = twin.hf_model(tokens, use_cache=False).logits
    written = twin.hf_model.forward.__wrapped__(tokens, use_cache=False).logits  # HF as written, no context
    assert written.dtype == torch.float64
    gap = float((kept - written).abs().max() / kept.abs().max())
    assert 1e-10 < gap < 1e-5, gap  # float32 rounding, nothing worse


def test_the_ascent_runs_in_float64_by_default_and_float32_on_request(tiny_model):
    tokens = tokens_for(n=2, seed=6)
    common = dict(restarts=2, steps=3, lr=0.3)
    f64 = optimize_directions(tiny_model, 1, tokens, 2.0, generator=torch.Generator().manual_seed(0), **common)
    f32 = optimize_directions(tiny_model, 1, tokens, 2.0, generator=torch.Generator().manual_seed(0),
                              precision="float32", **common)
    assert (f64.precision, f64.directions.dtype) == ("float64", torch.float64)
    assert (f32.precision, f32.directions.dtype) == ("float32", torch.float32)
    assert torch.allclose(f64.init, f32.init.double(), atol=1e-6)  # the same random starts
    assert f64.initial_kl.dtype == f32.initial_kl.dtype == torch.float64  # KLs are float64 either way
    assert torch.allclose(f64.initial_kl, f32.initial_kl, rtol=1e-3, atol=1e-7)  # the same objective
    with pytest.raises(InputError, match="precision='float16': use one of float64, float32"):
        optimize_directions(tiny_model, 1, tokens, 2.0, precision="float16")
