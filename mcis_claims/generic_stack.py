"""The generic engine path: any HF causal LM through its own decoder layers (HFStack).

The model's decoder layers (a structural copy taken before the bridge wraps them, sharing every
weight) are called for the last position with the prefix keys/values and the per-layer arguments
that HF's own one-token decoding step passes them. Exact wherever HF is, and differentiable;
slower per row than a fast stack (architectures.py).
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field

import torch

from .errors import InputError, ModelLoadError
from .stack_base import (ALIBI, ATTENTION_KINDS, SUPPORTED, DecodeStack, Prefix, _activation_module, _bias,
                         _final_norm, _linear, _sliding_window, decoder_layers)

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
