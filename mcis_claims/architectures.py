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

Any other HF causal LM runs through `HFStack`, the generic path: the model's own
decoder layers (a copy taken before the bridge wraps them, sharing every weight),
called for the last position with the prefix keys/values and the per-layer
arguments that HF's own one-token decoding step passes them.

Every method is differentiable (no `no_grad` inside), so claim C3 can run
gradient ascent through it.
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers.activations import ACT2FN

from .errors import InputError, ModelLoadError

SUPPORTED = ("llama", "mistral", "qwen2", "gemma3_text", "gpt2")  # fast stacks; everything else goes the generic path
ATTENTION_KINDS = ("full_attention", "sliding_attention")  # `layer_types` the generic path can run
ALIBI = ("bloom", "mpt", "falcon")  # attention biases shaped (batch * heads, ...), not per row


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
    path = "fast"  # which engine path runs this model: "fast" (hand-written) or "generic" (HF modules)
    n_layers: int
    d_model: int
    d_mlp: int
    n_heads: int
    head_dim: int

    def build_prefix(self, hidden_states: tuple[torch.Tensor, ...], layer: int,
                     tokens: torch.Tensor | None = None) -> Prefix:
        """K/V of positions 0..T-2 for blocks >= layer, from the clean hidden states (the generic path: tokens)."""
        raise NotImplementedError

    mlp_gated: bool  # the MLP multiplies act(gate(x)) by up(x) (SwiGLU, GeGLU); else act(W_in x + b)

    def block(self, layer: int, h: torch.Tensor, prefix: Prefix,
              freeze_mlp: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One block for the last position. h: (n, m, d) -> (h_out (n, m, d), mlp_pre (n, m, d_mlp)).

        freeze_mlp: make the MLP linear in the perturbation by freezing its nonlinearity at row 0 of
        each prompt (the clean row; see `_frozen_activation`).
        """
        raise NotImplementedError

    def final_residual_to_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Final norm and unembedding: (n, m, d) -> (n, m, vocab)."""
        return self.logits_from_normed(self.final_normed(h))

    def final_normed(self, h: torch.Tensor) -> torch.Tensor:
        """The final norm alone: (n, m, d) -> (n, m, d), the residual the unembedding reads."""
        raise NotImplementedError

    def logits_from_normed(self, normed: torch.Tensor) -> torch.Tensor:
        """The unembedding of `final_normed`'s output: the engine norms once and reads both from it."""
        return _linear(normed, self.unembed, getattr(self, "unembed_bias", None))

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


def _frozen_activation(act, pre: torch.Tensor, gated: bool) -> torch.Tensor:
    """The MLP nonlinearity frozen at row 0 of each prompt (the clean row): pre (n, m, d_mlp) -> (n, m, d_mlp).

    Gated MLP (SwiGLU, GeGLU): act(gate(x)) is replaced by the clean row's act(gate(x_clean)), so
        MLP(x) = down(act(gate(x_clean)) * up(x)) is linear in x.
    Ungated MLP (GPT-2's GELU): the activation is replaced by its tangent at the clean pre-activation,
        act(p_c) + act'(p_c) * (p - p_c), so MLP(x) = W_out (that) + b is affine in x; for a ReLU this
        is the clean on/off mask. act' comes from forward-mode AD (elementwise activations only).
    Row 0 itself gets exactly its own act(p_c), so the clean row and a zero perturbation are unchanged.
    """
    clean = pre[:, :1]
    if gated:
        return act(clean).expand_as(pre)
    value, slope = torch.func.jvp(act, (clean,), (torch.ones_like(clean),))  # elementwise: d act / d p at p_c
    return value + slope * (pre - clean)


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

    def _rms(self, x, weight):  # Gemma: (x * (1 + w)) in fp32, as Gemma3RMSNorm
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps) * (1.0 + weight.float())).to(x.dtype)

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


def _bias(linear):
    bias = getattr(linear, "bias", None)
    return None if bias is None else bias.detach()


@dataclass
class _CallPrefix(Prefix):
    """The generic path's prefix: K/V as HF caches them (key/value heads, not expanded), plus
    calls[l - L] = (args, kwargs) that HF's one-token step passed decoder layer l (cache removed)."""

    calls: list = field(default_factory=list)


_CACHE = object()  # where a recorded decoder-layer call had HF's cache


class _RowCache:
    """Stands in for HF's cache inside one decoder layer: hands back prefix + the rows' own key/value.

    Nothing is stored, so one prefix serves every chunk of rows; keys are (rows, kv_heads, P, hd).
    """

    def __init__(self, layer_idx: int, keys: torch.Tensor, values: torch.Tensor):
        self.layer_idx, self.keys, self.values = layer_idx, keys, values

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        if layer_idx != self.layer_idx:
            raise RuntimeError(f"generic engine path: layer {layer_idx} asked for the cache of layer {self.layer_idx}")
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.keys.shape[-2]


class HFStack(DecodeStack):
    """Any HF causal LM through its own decoder layers: exact wherever HF is, slower per row than a fast stack.

    `build_prefix` runs HF's forward over tokens 0..T-2 with a cache (the prefix K/V), then the
    last token as one decoding step with pre-hooks recording what each decoder layer receives
    (rotary cos/sin, mask, positions). `block(l, h, prefix)` calls layer l on all rows at once
    with those arguments expanded per row and a cache that returns prefix + own K/V. The MLP
    pre-activation (for sign flips) is read by a hook on the MLP's activation module.
    """

    path = "generic"
    mlp_gated = None  # not known in general: the frozen-MLP mode needs a fast stack

    def __init__(self, hf_model):
        cfg = hf_model.config
        self.arch = cfg.model_type
        _check_generic_support(hf_model)
        self.n_layers = int(getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer"))
        self.d_model = int(getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd"))
        self.n_heads = int(getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", 0) or 0)
        self.head_dim = int(getattr(cfg, "head_dim", None) or (self.d_model // max(1, self.n_heads)))
        self.window = _sliding_window(cfg)
        head = hf_model.get_output_embeddings()
        self.unembed = head.weight.detach()
        self.unembed_bias = _bias(head)
        self.d_vocab = self.unembed.shape[0]
        self.softcap = getattr(cfg, "final_logit_softcapping", None)
        # A structural copy of the body that shares every parameter and buffer: TransformerBridge
        # replaces the children of HF's modules in place when it boots, and this path must run HF's code.
        shared = {id(t): t for t in (*hf_model.parameters(), *hf_model.buffers())}
        self.body = copy.deepcopy(hf_model.base_model, shared)
        self.layers = decoder_layers(self.body, self.n_layers)
        self.final_norm, self.project_out = _final_norm(self.body, self.arch)
        self.acts = [_activation_module(layer) for layer in self.layers]
        self.d_mlp = int(getattr(cfg, "intermediate_size", None) or getattr(cfg, "ffn_dim", None)
                         or getattr(cfg, "n_inner", None) or 4 * self.d_model)
        params = inspect.signature(self.body.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5
        self._layer_params = sum(p.numel() for p in self.layers[0].parameters())

    def flops_per_row(self, layer):
        return 2 * self._layer_params * (self.n_layers - layer) + 2 * self.d_model * self.d_vocab

    def build_prefix(self, hidden_states, layer, tokens=None):
        from transformers.cache_utils import Cache

        if tokens is None:
            raise InputError(f"{self.arch}: the generic engine path needs the prompt tokens (build_prefix(..., tokens=))")
        T = tokens.shape[1]
        if self.window is not None and T > self.window:
            raise InputError(f"prompts of {T} tokens are longer than {self.arch}'s sliding attention window "
                             f"({self.window}); use --prompt-length {self.window} or less")
        with torch.no_grad():
            out = self.body(input_ids=tokens[:, :-1], use_cache=True)
            cache = getattr(out, "cache", None) or getattr(out, "past_key_values")
            keys, values = [], []
            for l in range(layer, self.n_layers):
                k, v = _cached_kv(cache, l)
                if k.shape[-2] != T - 1:
                    raise InputError(f"{self.arch}: layer {l} cached {k.shape[-2]} of the {T - 1} prefix positions "
                                     f"(a sliding or chunked attention window); use shorter prompts")
                keys.append(k)
                values.append(v)
            calls = {}

            def record(l, module, args, kwargs):
                # the cache keeps its place (positional or keyword); block() puts the rows' cache there
                mark = lambda v: _CACHE if isinstance(v, Cache) else v  # noqa: E731
                call = (tuple(mark(a) for a in args[1:]),
                        {k: mark(v) for k, v in kwargs.items() if k != "hidden_states"})
                if _CACHE not in call[0] and _CACHE not in call[1].values():
                    raise InputError(f"{self.arch}: decoder layer {l} is called without a cache; "
                                     f"the generic engine path cannot give it the prefix")
                calls[l] = call

            hooks = [self.layers[l].register_forward_pre_hook(
                lambda m, a, kw, l=l: record(l, m, a, kw), with_kwargs=True) for l in range(layer, self.n_layers)]
            try:
                self.body(input_ids=tokens[:, -1:], use_cache=True, **{self._cache_arg: cache})
            finally:
                for hook in hooks:
                    hook.remove()
        return _CallPrefix(layer=layer, keys=keys, values=values, position=T - 1,
                           calls=[calls[l] for l in range(layer, self.n_layers)])

    def block(self, layer, h, prefix, freeze_mlp=False):
        if freeze_mlp:  # whether act's output is gated (frozen) or not (linearised) is not known here
            raise InputError(f"{self.arch}: the frozen-MLP mode (freeze_mlp=True) needs a fast stack "
                             f"({', '.join(SUPPORTED)}); this model runs the generic engine path")
        n, m, d = h.shape
        i = layer - prefix.layer
        args, kwargs = prefix.calls[i]
        args, kwargs = _per_row(args, n, m), _per_row(kwargs, n, m)
        cache = _RowCache(layer, _per_row(prefix.keys[i], n, m, copy=True), _per_row(prefix.values[i], n, m, copy=True))
        args = tuple(cache if a is _CACHE else a for a in args)
        kwargs = {k: cache if v is _CACHE else v for k, v in kwargs.items()}
        pre = []
        act = self.acts[layer]
        handle = act.register_forward_hook(lambda mod, a, out: pre.append(a[0])) if act is not None else None
        try:
            out = self.layers[layer](h.reshape(n * m, 1, d), *args, **kwargs)
        finally:
            if handle is not None:
                handle.remove()
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out.reshape(n, m, d), (pre[0].reshape(n, m, -1) if pre else None)

    def final_normed(self, h):
        return self.final_norm(h)  # before OPT's project_out: the norm's output is the residual's read-out

    def logits_from_normed(self, normed):
        x = self.project_out(normed) if self.project_out is not None else normed
        logits = _linear(x, self.unembed, self.unembed_bias)
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


def _per_row(obj, n: int, m: int, copy: bool = False):
    """Tensors shaped (n, ...) per prompt -> (n * m, ...) per row; identical prompts share one view."""
    if isinstance(obj, torch.Tensor):
        if obj.dim() < 2 or obj.shape[0] != n or m == 1:
            return obj
        if copy or not (n == 1 or torch.equal(obj, obj[:1].expand_as(obj))):
            return obj.repeat_interleave(m, dim=0)
        return obj[:1].expand(n * m, *obj.shape[1:])  # positions and masks: the same for every prompt
    if isinstance(obj, tuple):
        return tuple(_per_row(o, n, m) for o in obj)
    if isinstance(obj, list):
        return [_per_row(o, n, m) for o in obj]
    if isinstance(obj, dict):
        return {k: _per_row(v, n, m) for k, v in obj.items()}
    return obj


def _cached_kv(cache, layer: int):
    if hasattr(cache, "layers"):
        entry = cache.layers[layer]
        return entry.keys, entry.values
    return cache.key_cache[layer], cache.value_cache[layer]


def _sliding_window(cfg) -> int | None:
    """The attention window of the model's sliding layers, or None if every layer sees the whole prompt."""
    window = getattr(cfg, "sliding_window", None)
    if not window:
        return None
    types = getattr(cfg, "layer_types", None)
    if types is not None:
        return int(window) if "sliding_attention" in types else None
    return None if getattr(cfg, "use_sliding_window", True) is False else int(window)


def decoder_layers(module, n_layers: int):
    """The ModuleList of the model's decoder layers: the shallowest one with n_layers entries."""
    found = [(name.count("."), name, m) for name, m in module.named_modules()
             if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers]
    if not found:
        raise ModelLoadError(f"cannot find {n_layers} decoder layers in {type(module).__name__}")
    return min(found, key=lambda t: (t[0], t[1]))[2]


_FINAL_NORMS = ("norm", "final_layer_norm", "final_layernorm", "ln_f", "norm_f", "final_norm")


def _final_norm(body, arch: str):
    """The body's last norm (and OPT's project_out), found by the names HF models use."""
    for name, module in body.named_modules():
        if name.split(".")[-1] in _FINAL_NORMS and name.count(".") <= 1 and module is not None:
            parent = body.get_submodule(name.rsplit(".", 1)[0]) if "." in name else body
            return module, getattr(parent, "project_out", None)
    raise ModelLoadError(f"{arch}: cannot find the final norm of the generic engine path "
                         f"(looked for {', '.join(_FINAL_NORMS)})")


_ACTIVATION_NAMES = ("act_fn", "act", "activation_fn", "activation")


def _activation_module(layer):
    """The MLP's activation module (its input is the pre-activation whose sign flips C5 counts), or None."""
    found = [(name, m) for name, m in layer.named_modules() if name.split(".")[-1] in _ACTIVATION_NAMES]
    if len(found) > 1:
        found = [(name, m) for name, m in found if "mlp" in name] or found[:1]
    return found[0][1] if found else None


def _check_generic_support(hf_model) -> None:
    """One line for a model the generic path cannot run exactly."""
    cfg = hf_model.config
    arch = cfg.model_type
    if getattr(cfg, "is_encoder_decoder", False):
        raise ModelLoadError(f"{arch}: encoder-decoder models are not supported; the engine needs a decoder-only causal LM")
    types = set(getattr(cfg, "layer_types", None) or ())
    if types - set(ATTENTION_KINDS):
        raise ModelLoadError(f"{arch}: attention kind {', '.join(sorted(types - set(ATTENTION_KINDS)))} is not "
                             f"supported by the sweep engine (supported: {', '.join(ATTENTION_KINDS)})")
    if arch in ALIBI or getattr(cfg, "alibi", False):
        raise ModelLoadError(f"{arch}: ALiBi attention is not supported by the sweep engine (rotary, learned "
                             f"or no position embeddings are)")
    if getattr(cfg, "logits_scaling", None) not in (None, 1, 1.0) or getattr(cfg, "logit_scale", None) not in (None, 1, 1.0):
        raise ModelLoadError(f"{arch}: scaled output logits are not supported by the sweep engine")


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
