"""What every single-position decoder shares (architectures.py's fast stacks and generic_stack.py's
HFStack): the prefix keys/values, the DecodeStack interface, the frozen-MLP rule, and the lookups
of an HF model's decoder layers, final norm and MLP activation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import ModelLoadError

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


def _bias(linear):
    bias = getattr(linear, "bias", None)
    return None if bias is None else bias.detach()


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
