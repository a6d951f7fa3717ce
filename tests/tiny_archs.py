"""Tiny random configs of several architectures (a few layers, small d) for the engine's tests.

Each builder returns an HF causal LM in fp32 over the character vocabulary of conftest.py.
The generic engine path runs all of them; llama, gpt2 and gemma3 also have fast stacks.
"""
import torch

from conftest import VOCAB

D, LAYERS, HEADS = 64, 3, 4


def _build(config_cls, model_cls, seed=0, **kw):
    cfg = config_cls(vocab_size=len(VOCAB), **kw)
    torch.manual_seed(seed)
    model = model_cls(cfg).float()
    model.config.architectures = [model_cls.__name__]
    return model


def gpt_neox():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    return _build(GPTNeoXConfig, GPTNeoXForCausalLM, hidden_size=D, intermediate_size=2 * D,
                  num_hidden_layers=LAYERS, num_attention_heads=HEADS, max_position_embeddings=64,
                  rotary_pct=0.5, tie_word_embeddings=False)


def opt():
    from transformers import OPTConfig, OPTForCausalLM

    return _build(OPTConfig, OPTForCausalLM, hidden_size=D, ffn_dim=2 * D, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, max_position_embeddings=64, word_embed_proj_dim=D,
                  pad_token_id=0, bos_token_id=1, eos_token_id=2)


def phi():
    from transformers import PhiConfig, PhiForCausalLM

    return _build(PhiConfig, PhiForCausalLM, hidden_size=D, intermediate_size=2 * D, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, max_position_embeddings=64, partial_rotary_factor=0.5)


def qwen3():
    from transformers import Qwen3Config, Qwen3ForCausalLM

    return _build(Qwen3Config, Qwen3ForCausalLM, hidden_size=D, intermediate_size=2 * D, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, num_key_value_heads=2, head_dim=16, max_position_embeddings=64)


def gemma2():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    return _build(Gemma2Config, Gemma2ForCausalLM, hidden_size=D, intermediate_size=2 * D, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, num_key_value_heads=1, head_dim=16, max_position_embeddings=64,
                  sliding_window=16, final_logit_softcapping=30.0, attn_logit_softcapping=50.0,
                  pad_token_id=0, bos_token_id=1, eos_token_id=2)


def gemma3(sliding_window=16):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    return _build(Gemma3TextConfig, Gemma3ForCausalLM, hidden_size=D, intermediate_size=2 * D,
                  num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=1, head_dim=16,
                  max_position_embeddings=64, sliding_window=sliding_window,
                  layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                  pad_token_id=0, bos_token_id=1, eos_token_id=2)


def olmo2():
    from transformers import Olmo2Config, Olmo2ForCausalLM

    return _build(Olmo2Config, Olmo2ForCausalLM, hidden_size=D, intermediate_size=2 * D, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
                  eos_token_id=2)


def llama():
    from conftest import tiny_llama

    m = tiny_llama()
    m.config.architectures = ["LlamaForCausalLM"]
    return m


def gpt2():
    from conftest import tiny_gpt2

    m = tiny_gpt2()
    m.config.architectures = ["GPT2LMHeadModel"]
    return m


GENERIC = {"gpt_neox": gpt_neox, "opt": opt, "phi": phi, "qwen3": qwen3, "gemma2": gemma2, "olmo2": olmo2}
FAST = {"llama": llama, "gpt2": gpt2, "gemma3": gemma3}
# every (architecture, engine path) pair: the generic ones by the generic path, the fast ones both ways
CASES = [(name, "auto") for name in GENERIC] + [(name, e) for name in FAST for e in ("auto", "generic")]
CASE_IDS = [f"{name}-{engine}" for name, engine in CASES]


def wrapped(name, engine, tokenizer):
    """The tiny `name` model wrapped for the engine, forced onto `engine` ("auto" or "generic")."""
    from mcis_claims.models import wrap_hf_model

    return wrap_hf_model(f"tiny-{name}-{engine}", {**GENERIC, **FAST}[name](), tokenizer, engine=engine)


def tokens_for(n=3, T=7, seed=0):
    """(n, T) token ids over the tiny vocabulary, skipping the first three (special) ids."""
    return torch.randint(3, len(VOCAB), (n, T), generator=torch.Generator().manual_seed(seed))
