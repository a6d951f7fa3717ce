"""Single-position decoders: the model from block L on, for the last token only.

The sweep engine perturbs only the last position of a prompt at the residual
stream entering block L. Everything before that position and everything before
block L is unchanged, so the engine needs just "run blocks L..N-1 for one query
token that attends to cached prefix keys/values". This module provides that
partial forward for each supported architecture as plain tensor code over the
Hugging Face weights (shared, not copied).

Why not the HF modules? TransformerBridge wraps them with hook points in place,
which costs Python overhead per call; and an independent implementation makes the
test against the bridge's own full forward (the naive reference) meaningful.

Any other HF causal LM runs through `HFStack` (generic_stack.py), the generic path: the
model's own decoder layers, called for the last position with the prefix keys/values and
the per-layer arguments that HF's own one-token decoding step passes them. What both share
is in stack_base.py.

Every method is differentiable (no `no_grad` inside), so claim C3 can run
gradient ascent through it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.activations import ACT2FN

from .errors import InputError, ModelLoadError
from .generic_stack import HFStack, _check_generic_support
from .stack_base import DecodeStack, Prefix, _bias, _frozen_activation, _linear, _sliding_window


class LlamaStack(DecodeStack):
    """Llama-family blocks: RMSNorm, rotary GQA attention, gated MLP (SmolLM2, Mistral, Qwen2)."""

    mlp_gated = True

    def _read_shapes(self, cfg) -> None:
        """Sizes every Llama-family config names alike (Gemma3's stack reads them here too)."""
        self.arch = cfg.model_type
        self.n_layers = cfg.num_hidden_layers
        self.d_model = cfg.hidden_size
        self.d_mlp = cfg.intermediate_size
        self.d_vocab = cfg.vocab_size
        self.n_heads = cfg.num_attention_heads
        self.n_kv_heads = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or self.d_model // self.n_heads
        self.eps = cfg.rms_norm_eps

    def __init__(self, hf_model):
        cfg = hf_model.config
        self._read_shapes(cfg)
        body = hf_model.model
        self.act = ACT2FN[cfg.hidden_act]
        self.rotary = body.rotary_emb
        if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", False):
            raise ModelLoadError(f"{cfg.model_type}: sliding-window attention is not supported by the sweep engine")
        self.layers = []
        for block in body.layers:
            attn, mlp = block.self_attn, block.mlp
            self.layers.append(
                dict(
                    norm1=block.input_layernorm.weight.detach(),
                    norm2=block.post_attention_layernorm.weight.detach(),
                    wq=attn.q_proj.weight.detach(), bq=_bias(attn.q_proj),
                    wk=attn.k_proj.weight.detach(), bk=_bias(attn.k_proj),
                    wv=attn.v_proj.weight.detach(), bv=_bias(attn.v_proj),
                    wo=attn.o_proj.weight.detach(), bo=_bias(attn.o_proj),
                    gate=mlp.gate_proj.weight.detach(), up=mlp.up_proj.weight.detach(),
                    down=mlp.down_proj.weight.detach(),
                )
            )
        self.final_norm = body.norm.weight.detach()
        self.unembed = hf_model.lm_head.weight.detach()
        self.unembed_bias = _bias(hf_model.lm_head)
        self.scale = self.head_dim**-0.5

    def _attn_params(self):
        return 2 * self.d_model * self.n_heads * self.head_dim + 2 * self.d_model * self.n_kv_heads * self.head_dim

    def _mlp_params(self):
        return 3 * self.d_model * self.d_mlp

    def _rms(self, x, weight):
        x32 = _at_least_float32(x)
        return weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)

    def _cos_sin(self, like: torch.Tensor, positions: torch.Tensor):
        cos, sin = self.rotary(like, positions[None, :])
        return cos[0], sin[0]  # (len(positions), head_dim)

    @staticmethod
    def _rotate(x, cos, sin):
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin

    def _heads(self, x, n_heads):
        return x.unflatten(-1, (n_heads, self.head_dim))

    def build_prefix(self, hidden_states, layer, tokens=None):
        n, T, _ = hidden_states[0].shape
        positions = torch.arange(T - 1, device=hidden_states[0].device)
        cos, sin = self._cos_sin(hidden_states[0], positions)  # (P, hd)
        rep = self.n_heads // self.n_kv_heads
        keys, values = [], []
        for l in range(layer, self.n_layers):
            w = self.layers[l]
            x = self._rms(hidden_states[l][:, :-1], w["norm1"])  # (n, P, d)
            k = self._heads(_linear(x, w["wk"], w["bk"]), self.n_kv_heads).transpose(1, 2)  # (n, kvH, P, hd)
            v = self._heads(_linear(x, w["wv"], w["bv"]), self.n_kv_heads).transpose(1, 2)
            k = self._rotate(k, cos, sin)
            keys.append(k.repeat_interleave(rep, dim=1))
            values.append(v.repeat_interleave(rep, dim=1))
        return Prefix(layer=layer, keys=keys, values=values, position=T - 1)

    def block(self, layer, h, prefix, freeze_mlp=False):
        w = self.layers[layer]
        cos, sin = self._cos_sin(h, torch.tensor([prefix.position], device=h.device))
        x = self._rms(h, w["norm1"])
        q = self._rotate(self._heads(_linear(x, w["wq"], w["bq"]), self.n_heads), cos, sin)
        k = self._rotate(self._heads(_linear(x, w["wk"], w["bk"]), self.n_kv_heads), cos, sin)
        v = self._heads(_linear(x, w["wv"], w["bv"]), self.n_kv_heads)
        rep = self.n_heads // self.n_kv_heads
        k, v = k.repeat_interleave(rep, dim=-2), v.repeat_interleave(rep, dim=-2)
        i = layer - prefix.layer
        attn = self._attend(q, k, v, prefix.keys[i], prefix.values[i], self.scale)
        h = h + _linear(attn, w["wo"], w["bo"])
        x = self._rms(h, w["norm2"])
        gate = _linear(x, w["gate"])
        a = _frozen_activation(self.act, gate, True) if freeze_mlp else self.act(gate)
        h = h + _linear(a * _linear(x, w["up"]), w["down"])
        return h, gate

    def final_normed(self, h):
        return self._rms(h, self.final_norm)


class Gemma3Stack(LlamaStack):
    """Gemma-3 text blocks: (1 + w) RMSNorms before and after attention and MLP, q/k RMSNorm,
    rotary GQA with a base per layer type (sliding / full), GELU-tanh gated MLP.

    The prompt must fit the sliding window (checked in build_prefix), so sliding layers see
    every prefix position and differ from full ones only in their rotary base.
    """

    def __init__(self, hf_model):
        cfg = hf_model.config
        if getattr(cfg, "attn_logit_softcapping", None) or getattr(cfg, "final_logit_softcapping", None):
            raise ModelLoadError("gemma3: logit softcapping is not in the fast stack")  # the generic path has it
        self._read_shapes(cfg)
        body = hf_model.model
        self.act = ACT2FN[cfg.hidden_activation]
        self.rotary = body.rotary_emb
        self.layer_types = list(cfg.layer_types)
        self.window = _sliding_window(cfg)
        self.scale = cfg.query_pre_attn_scalar**-0.5
        self.layers = []
        for block in body.layers:
            attn, mlp = block.self_attn, block.mlp
            self.layers.append(dict(
                norm1=block.input_layernorm.weight.detach(), post_attn=block.post_attention_layernorm.weight.detach(),
                norm2=block.pre_feedforward_layernorm.weight.detach(),
                post_mlp=block.post_feedforward_layernorm.weight.detach(),
                q_norm=attn.q_norm.weight.detach(), k_norm=attn.k_norm.weight.detach(),
                wq=attn.q_proj.weight.detach(), bq=_bias(attn.q_proj), wk=attn.k_proj.weight.detach(),
                bk=_bias(attn.k_proj), wv=attn.v_proj.weight.detach(), bv=_bias(attn.v_proj),
                wo=attn.o_proj.weight.detach(), bo=_bias(attn.o_proj),
                gate=mlp.gate_proj.weight.detach(), up=mlp.up_proj.weight.detach(), down=mlp.down_proj.weight.detach(),
            ))
        self.final_norm = body.norm.weight.detach()
        self.unembed = hf_model.lm_head.weight.detach()
        self.unembed_bias = _bias(hf_model.lm_head)

    def _rms(self, x, weight):  # Gemma: (x * (1 + w)) in fp32 (or finer), as Gemma3RMSNorm
        x32 = _at_least_float32(x)
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps) * (1.0 + weight.to(x32.dtype))).to(x.dtype)

    def _cos_sin_for(self, layer, like, positions):
        cos, sin = self.rotary(like, positions[None, :], self.layer_types[layer])
        return cos[0], sin[0]

    def build_prefix(self, hidden_states, layer, tokens=None):
        n, T, _ = hidden_states[0].shape
        if self.window is not None and T > self.window:
            raise InputError(f"prompts of {T} tokens are longer than {self.arch}'s sliding attention window "
                             f"({self.window}); use --prompt-length {self.window} or less")
        positions = torch.arange(T - 1, device=hidden_states[0].device)
        keys, values = [], []
        for l in range(layer, self.n_layers):
            w = self.layers[l]
            cos, sin = self._cos_sin_for(l, hidden_states[0], positions)
            x = self._rms(hidden_states[l][:, :-1], w["norm1"])  # (n, P, d)
            k = self._rms(self._heads(_linear(x, w["wk"], w["bk"]), self.n_kv_heads), w["k_norm"]).transpose(1, 2)
            v = self._heads(_linear(x, w["wv"], w["bv"]), self.n_kv_heads).transpose(1, 2)  # (n, kvH, P, hd)
            k = self._rotate(k, cos, sin)
            keys.append(k)  # key/value heads, not expanded: _attend_gqa shares them across the group
            values.append(v)
        return Prefix(layer=layer, keys=keys, values=values, position=T - 1)

    def block(self, layer, h, prefix, freeze_mlp=False):
        w = self.layers[layer]
        cos, sin = self._cos_sin_for(layer, h, torch.tensor([prefix.position], device=h.device))
        x = self._rms(h, w["norm1"])
        q = self._rotate(self._rms(self._heads(_linear(x, w["wq"], w["bq"]), self.n_heads), w["q_norm"]), cos, sin)
        k = self._rotate(self._rms(self._heads(_linear(x, w["wk"], w["bk"]), self.n_kv_heads), w["k_norm"]), cos, sin)
        v = self._heads(_linear(x, w["wv"], w["bv"]), self.n_kv_heads)
        i = layer - prefix.layer
        attn = self._attend_gqa(q, k, v, prefix.keys[i], prefix.values[i])
        h = h + self._rms(_linear(attn, w["wo"], w["bo"]), w["post_attn"])
        x = self._rms(h, w["norm2"])
        gate = _linear(x, w["gate"])
        a = _frozen_activation(self.act, gate, True) if freeze_mlp else self.act(gate)
        h = h + self._rms(_linear(a * _linear(x, w["up"]), w["down"]), w["post_mlp"])
        return h, gate

    def _attend_gqa(self, q, k_self, v_self, keys, values):
        # q: (n, m, H, hd) grouped as (n, m, kvH, G, hd); k_self/v_self: (n, m, kvH, hd); keys/values: (n, kvH, P, hd)
        G = self.n_heads // self.n_kv_heads
        q = q.unflatten(2, (self.n_kv_heads, G))
        scores_prefix = torch.einsum("nmkgd,nkpd->nmkgp", q, keys) * self.scale
        score_self = (q * k_self[:, :, :, None]).sum(-1, keepdim=True) * self.scale
        weights = torch.softmax(torch.cat([scores_prefix, score_self], dim=-1), dim=-1)
        out = torch.einsum("nmkgp,nkpd->nmkgd", weights[..., :-1], values) + weights[..., -1:] * v_self[:, :, :, None]
        return out.flatten(2)  # (n, m, H * hd)


class GPT2Stack(DecodeStack):
    """GPT-2 blocks: pre-LayerNorm, fused QKV (Conv1D), GELU MLP."""

    mlp_gated = False

    def __init__(self, hf_model):
        cfg = hf_model.config
        if getattr(cfg, "scale_attn_by_inverse_layer_idx", False) or getattr(cfg, "reorder_and_upcast_attn", False):
            raise ModelLoadError("gpt2: scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported")
        self.arch = "gpt2"
        body = hf_model.transformer
        self.n_layers = cfg.n_layer
        self.d_model = cfg.n_embd
        self.d_mlp = cfg.n_inner or 4 * cfg.n_embd
        self.d_vocab = cfg.vocab_size
        self.n_heads = cfg.n_head
        self.head_dim = self.d_model // self.n_heads
        self.eps = cfg.layer_norm_epsilon
        self.act = ACT2FN[cfg.activation_function]
        self.scale = self.head_dim**-0.5 if cfg.scale_attn_weights else 1.0
        self.layers = []
        for block in body.h:
            self.layers.append(
                dict(
                    ln1=(block.ln_1.weight.detach(), block.ln_1.bias.detach()),
                    ln2=(block.ln_2.weight.detach(), block.ln_2.bias.detach()),
                    # Conv1D stores (in, out): y = x @ W + b
                    w_qkv=block.attn.c_attn.weight.detach().T, b_qkv=block.attn.c_attn.bias.detach(),
                    w_o=block.attn.c_proj.weight.detach().T, b_o=block.attn.c_proj.bias.detach(),
                    w_in=block.mlp.c_fc.weight.detach().T, b_in=block.mlp.c_fc.bias.detach(),
                    w_out=block.mlp.c_proj.weight.detach().T, b_out=block.mlp.c_proj.bias.detach(),
                )
            )
        self.ln_f = (body.ln_f.weight.detach(), body.ln_f.bias.detach())
        self.unembed = hf_model.lm_head.weight.detach()

    def _attn_params(self):
        return 4 * self.d_model * self.d_model

    def _mlp_params(self):
        return 2 * self.d_model * self.d_mlp

    def _ln(self, x, wb):
        return F.layer_norm(x, (self.d_model,), wb[0], wb[1], self.eps)

    def _qkv(self, x, w):
        q, k, v = _linear(x, w["w_qkv"], w["b_qkv"]).split(self.d_model, dim=-1)
        return (t.unflatten(-1, (self.n_heads, self.head_dim)) for t in (q, k, v))

    def build_prefix(self, hidden_states, layer, tokens=None):
        T = hidden_states[0].shape[1]
        keys, values = [], []
        for l in range(layer, self.n_layers):
            w = self.layers[l]
            _, k, v = self._qkv(self._ln(hidden_states[l][:, :-1], w["ln1"]), w)
            keys.append(k.transpose(1, 2))
            values.append(v.transpose(1, 2))
        return Prefix(layer=layer, keys=keys, values=values, position=T - 1)

    def block(self, layer, h, prefix, freeze_mlp=False):
        w = self.layers[layer]
        q, k, v = self._qkv(self._ln(h, w["ln1"]), w)
        i = layer - prefix.layer
        h = h + _linear(self._attend(q, k, v, prefix.keys[i], prefix.values[i], self.scale), w["w_o"], w["b_o"])
        pre = _linear(self._ln(h, w["ln2"]), w["w_in"], w["b_in"])
        a = _frozen_activation(self.act, pre, False) if freeze_mlp else self.act(pre)
        h = h + _linear(a, w["w_out"], w["b_out"])
        return h, pre

    def final_normed(self, h):
        return self._ln(h, self.ln_f)


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Norms run in fp32 as HF's do, but a float64 stack (C3's optimiser) keeps float64: never round down."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def decode_stack_for(hf_model, engine: str = "auto") -> DecodeStack:
    """Pick the single-position decoder for a loaded HF causal LM: a fast stack if there is one, else generic.

    engine  "auto" (fast where written), "generic" (always HF's modules; to compare the two).
    """
    model_type = getattr(hf_model.config, "model_type", "?")
    head = hf_model.get_output_embeddings() if hasattr(hf_model, "get_output_embeddings") else None
    if head is None or getattr(head, "weight", None) is None:
        raise ModelLoadError(f"{type(hf_model).__name__} ({model_type}) has no causal LM head; "
                             f"load it with AutoModelForCausalLM")
    if engine not in ("auto", "generic"):
        raise ModelLoadError(f"engine {engine!r}: use auto or generic")
    _check_generic_support(hf_model)  # what neither path runs exactly (attention kinds, ALiBi, ...)
    if engine == "auto":
        if model_type in ("llama", "mistral", "qwen2") and not _sliding_window(hf_model.config):
            return LlamaStack(hf_model)
        if model_type == "gemma3_text" and not (getattr(hf_model.config, "attn_logit_softcapping", None)
                                                or getattr(hf_model.config, "final_logit_softcapping", None)):
            return Gemma3Stack(hf_model)
        if model_type == "gpt2" and not (getattr(hf_model.config, "scale_attn_by_inverse_layer_idx", False)
                                         or getattr(hf_model.config, "reorder_and_upcast_attn", False)):
            return GPT2Stack(hf_model)
    return HFStack(hf_model)
