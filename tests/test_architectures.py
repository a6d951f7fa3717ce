"""Every architecture the engine claims to run, through the path it uses, against the naive reference.

Tiny random configs (3 layers, d = 64) of GPT-NeoX, OPT, Phi, Qwen3, Gemma2 (logit softcapping)
and OLMo2 go the generic path (HF's own decoder layers); Llama, GPT-2 and Gemma3 (sliding and
full layers, q/k norms) have fast stacks and are also forced through the generic path, so the
two paths are checked against each other as well as against one full bridge forward per row.
"""
import pytest
import torch

import tiny_archs
from tiny_archs import tokens_for
from mcis_claims import sweep, sweep_naive
from mcis_claims.engine import clean_hidden_states, resid_pre
from mcis_claims.errors import InputError, ModelLoadError
from mcis_claims.models import wrap_hf_model
from mcis_claims.optimize import SensitivityObjective
from mcis_claims.parity import check_site

@pytest.fixture(scope="module", params=tiny_archs.CASES, ids=tiny_archs.CASE_IDS)
def arch_model(request, tokenizer):
    return tiny_archs.wrapped(*request.param, tokenizer)


def test_the_path_is_the_expected_one_and_recorded(arch_model):
    fast = arch_model.name.endswith("-auto") and arch_model.name.split("-")[1] in tiny_archs.FAST
    assert arch_model.stack.path == ("fast" if fast else "generic")
    assert arch_model.to_meta()["engine"].startswith(arch_model.stack.path + ":")


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_engine_equals_one_full_bridge_forward_per_row(arch_model, layer):
    tokens = tokens_for()
    g = torch.Generator().manual_seed(layer)
    u = torch.randn(3, arch_model.d_model, generator=g)
    u /= u.norm(dim=-1, keepdim=True)
    base = resid_pre(arch_model, layer, tokens)[:, -1]
    radii = torch.linspace(0, 3, 6) * base.norm(dim=-1).median()
    fast = sweep(arch_model, layer, tokens, u, radii, track_mlp=True)
    naive = sweep_naive(arch_model, layer, tokens, base[:, None] + radii[None, :, None] * u[:, None])
    assert ((fast.kl - naive.kl).abs() <= 1e-4 * naive.kl + 1e-6).all(), (fast.kl - naive.kl).abs().max()
    assert naive.kl[:, -1].min() > 0  # the perturbation reached the output
    assert torch.allclose(fast.resid_l2, naive.resid_l2, atol=1e-4, rtol=1e-4)
    assert torch.equal(fast.top1_changed, naive.top1_changed)
    assert fast.mlp_flips.shape == (3, 6, 3 - layer) and (fast.mlp_flips[:, 0] == 0).all()


def test_clean_path_reproduces_the_models_logits(arch_model):
    tokens = tokens_for(seed=3)
    stack = arch_model.stack
    hidden = clean_hidden_states(arch_model, tokens)
    prefix = stack.build_prefix(hidden, 1, tokens=tokens)
    h = hidden[1][:, -1:]
    for layer in range(1, stack.n_layers):
        h, _ = stack.block(layer, h, prefix)
    with torch.no_grad():
        expected = arch_model.bridge(tokens)[:, -1]
    assert torch.allclose(stack.final_residual_to_logits(h)[:, 0], expected, atol=1e-5)


def test_parity_preflight_passes(arch_model):
    check = check_site(arch_model, 1, tokens_for(4, 6, seed=5), torch.Generator().manual_seed(0))
    assert check.ok, check.problems


def test_gradients_flow_through_the_path(arch_model):
    objective = SensitivityObjective(arch_model, 1, tokens_for(2, 6, seed=7), radius=2.0)
    u = torch.randn(2, 3, arch_model.d_model, generator=torch.Generator().manual_seed(1))
    u = (u / u.norm(dim=-1, keepdim=True)).requires_grad_(True)
    objective(u).sum().backward()
    assert torch.isfinite(u.grad).all() and u.grad.abs().sum() > 0


def test_generic_and_fast_paths_agree_in_value_and_gradient(tokenizer):
    fast = wrap_hf_model("tiny-llama-f", tiny_archs.llama(), tokenizer)
    generic = wrap_hf_model("tiny-llama-g", tiny_archs.llama(), tokenizer, engine="generic")
    tokens = tokens_for(2, 6, seed=9)
    u = torch.randn(2, 2, fast.d_model, generator=torch.Generator().manual_seed(2))
    u = u / u.norm(dim=-1, keepdim=True)
    grads = []
    for model in (fast, generic):
        v = u.clone().requires_grad_(True)
        kl = SensitivityObjective(model, 1, tokens, radius=3.0)(v)
        kl.sum().backward()
        grads.append((kl.detach(), v.grad))
    assert torch.allclose(grads[0][0], grads[1][0], rtol=1e-4, atol=1e-9)
    assert torch.allclose(grads[0][1], grads[1][1], rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize("engine", ["auto", "generic"])
def test_a_prompt_longer_than_the_sliding_window_fails_in_one_line(tokenizer, engine):
    model = wrap_hf_model("tiny-gemma3-w4", tiny_archs.gemma3(sliding_window=4), tokenizer, engine=engine)
    u = torch.nn.functional.normalize(torch.ones(2, model.d_model), dim=-1)
    assert sweep(model, 1, tokens_for(2, 4), u, [0.0, 1.0]).kl.shape == (2, 2)  # 4 tokens fit the window
    with pytest.raises(InputError, match="longer than gemma3_text's sliding attention window \\(4\\)") as info:
        sweep(model, 1, tokens_for(2, 5), u, [0.0, 1.0])
    assert "\n" not in str(info.value)


def test_an_unsupported_attention_kind_fails_in_one_line(tokenizer):
    hf = tiny_archs.gemma3()
    hf.config.layer_types = ["chunked_attention", "full_attention", "full_attention"]
    with pytest.raises(ModelLoadError, match="attention kind chunked_attention is not supported") as info:
        wrap_hf_model("tiny-chunked", hf, tokenizer)
    assert "\n" not in str(info.value)


def test_alibi_attention_fails_in_one_line(tokenizer):
    from transformers import BloomConfig, BloomForCausalLM

    hf = BloomForCausalLM(BloomConfig(vocab_size=len(tiny_archs.VOCAB), hidden_size=32, n_layer=2, n_head=4))
    with pytest.raises(ModelLoadError, match="bloom: ALiBi attention is not supported") as info:
        wrap_hf_model("tiny-bloom", hf, tokenizer)
    assert "\n" not in str(info.value)


def test_a_model_without_a_causal_lm_head_fails_in_one_line(tokenizer):
    from transformers import LlamaModel

    body = LlamaModel(tiny_archs.llama().config)
    with pytest.raises(ModelLoadError, match="LlamaModel \\(llama\\) has no causal LM head") as info:
        wrap_hf_model("tiny-body", body, tokenizer)
    assert "\n" not in str(info.value)


def test_a_config_without_architectures_still_boots(tokenizer):
    hf = tiny_archs.gemma3()
    hf.config.architectures = None  # as in configs read from a GGUF, and random:<gguf model> built from them
    model = wrap_hf_model("tiny-noarch", hf, tokenizer)
    assert model.hf_model.config.architectures == ["Gemma3ForCausalLM"]
