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

Every method is differentiable (no `no_grad` inside), so claim C3 can run
gradient ascent through it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.activations import ACT2FN

from .errors import ModelLoadError

SUPPORTED = ("llama", "mistral", "qwen2", "gpt2")


@dataclass
class Prefix:
    """Keys/values of the unperturbed prefix, per layer from L on.

    keys[l - L], values[l - L]: (n, heads, P, head_dim), already expanded from
    key/value heads to query heads and (for rotary models) rotated.
    """

    layer: int
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    position: int  # index of the perturbed (last) position


class DecodeStack:
    """Base class: weights of one model arranged for the one-position forward."""

    arch: str
    n_layers: int
    d_model: int
    d_mlp: int
    n_heads: int
    head_dim: int

    def build_prefix(self, hidden_states: tuple[torch.Tensor, ...], layer: int) -> Prefix:
        """K/V of positions 0..T-2 for blocks >= layer, from the clean hidden states."""
        raise NotImplementedError

    def block(self, layer: int, h: torch.Tensor, prefix: Prefix) -> tuple[torch.Tensor, torch.Tensor]:
        """One block for the last position. h: (n, m, d) -> (h_out (n, m, d), mlp_pre (n, m, d_mlp))."""
        raise NotImplementedError

    def final_residual_to_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Final norm and unembedding: (n, m, d) -> (n, m, vocab)."""
        raise NotImplementedError

    def flops_per_row(self, layer: int) -> float:
        """Matmul FLOPs of one perturbed row from block `layer` through the logits."""
        per_block = 2 * (self._attn_params() + self._mlp_params())
        return per_block * (self.n_layers - layer) + 2 * self.d_model * self.d_vocab

    # shared attention for one query position over the prefix plus itself
    def _attend(self, q, k_self, v_self, keys, values, scale):
        # q, k_self, v_self: (n, m, H, hd); keys/values: (n, H, P, hd)
        scores_prefix = torch.einsum("nmhd,nhpd->nmhp", q, keys) * scale
        score_self = (q * k_self).sum(-1, keepdim=True) * scale
        weights = torch.softmax(torch.cat([scores_prefix, score_self], dim=-1), dim=-1)
        out = torch.einsum("nmhp,nhpd->nmhd", weights[..., :-1], values) + weights[..., -1:] * v_self
        return out.flatten(-2)  # (n, m, H * hd)


def _linear(x, weight, bias=None):
    return F.linear(x, weight, bias)


class LlamaStack(DecodeStack):
    """Llama-family blocks: RMSNorm, rotary GQA attention, gated MLP (SmolLM2, Mistral, Qwen2)."""

    def __init__(self, hf_model):
        cfg = hf_model.config
        self.arch = cfg.model_type
        body = hf_model.model
        self.n_layers = cfg.num_hidden_layers
        self.d_model = cfg.hidden_size
        self.d_mlp = cfg.intermediate_size
        self.d_vocab = cfg.vocab_size
        self.n_heads = cfg.num_attention_heads
        self.n_kv_heads = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or self.d_model // self.n_heads
        self.eps = cfg.rms_norm_eps
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
        x32 = x.float()
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

    def build_prefix(self, hidden_states, layer):
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

    def block(self, layer, h, prefix):
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
        h = h + _linear(self.act(gate) * _linear(x, w["up"]), w["down"])
        return h, gate

    def final_residual_to_logits(self, h):
        return _linear(self._rms(h, self.final_norm), self.unembed, self.unembed_bias)


class GPT2Stack(DecodeStack):
    """GPT-2 blocks: pre-LayerNorm, fused QKV (Conv1D), GELU MLP."""

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

    def build_prefix(self, hidden_states, layer):
        T = hidden_states[0].shape[1]
        keys, values = [], []
        for l in range(layer, self.n_layers):
            w = self.layers[l]
            _, k, v = self._qkv(self._ln(hidden_states[l][:, :-1], w["ln1"]), w)
            keys.append(k.transpose(1, 2))
            values.append(v.transpose(1, 2))
        return Prefix(layer=layer, keys=keys, values=values, position=T - 1)

    def block(self, layer, h, prefix):
        w = self.layers[layer]
        q, k, v = self._qkv(self._ln(h, w["ln1"]), w)
        i = layer - prefix.layer
        h = h + _linear(self._attend(q, k, v, prefix.keys[i], prefix.values[i], self.scale), w["w_o"], w["b_o"])
        pre = _linear(self._ln(h, w["ln2"]), w["w_in"], w["b_in"])
        h = h + _linear(self.act(pre), w["w_out"], w["b_out"])
        return h, pre

    def final_residual_to_logits(self, h):
        return _linear(self._ln(h, self.ln_f), self.unembed)


def _bias(linear):
    bias = getattr(linear, "bias", None)
    return None if bias is None else bias.detach()


def decode_stack_for(hf_model) -> DecodeStack:
    """Pick the single-position decoder for a loaded HF causal LM."""
    model_type = getattr(hf_model.config, "model_type", "?")
    if model_type in ("llama", "mistral", "qwen2"):
        return LlamaStack(hf_model)
    if model_type == "gpt2":
        return GPT2Stack(hf_model)
    raise ModelLoadError(
        f"architecture '{model_type}' is not supported by the sweep engine (supported: {', '.join(SUPPORTED)})"
    )
