"""Parity preflight: before a claim trusts a site, prove the engine reads the model right there.

The sweep engine is its own tensor code over the Hugging Face weights (architectures.py),
and the reference is TransformerLens' bridge. Hooked models have silently disagreed with
HF before (TL#1618: a bridge residual with cosine 0.04 to HF at layer 12, no warning), so
each (model, layer) a run touches is checked once, on a few real base prompts:

- the bridge's `blocks.{L}.hook_resid_pre` at the last position equals HF's hidden state
  (the activation every claim perturbs);
- the engine's read-outs equal one full bridge forward per row (`sweep_naive`) for a zero,
  a small and a large perturbation: KL within the engine's tolerance, later residual
  changes within a relative tolerance (of the radius, or of the change itself where the
  model amplifies it: Gemma-3's later residual changes reach ~300x the radius, and fp32
  rounding scales with them);
- sentinels: the zero perturbation reads KL = 0 (to rounding, <= 1e-6 nats) and the large
  one KL > 0 (a hook that never fired would read zero everywhere).

The result goes into the report; a site that fails raises ParityError, which fails every
claim cell at that site with the numbers, rather than letting a wrong forward produce
verdicts.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .errors import McisError

N_PROMPTS = 4
RADII_REL = (0.0, 0.1, 2.0)  # times the base's own norm: zero (sentinel), small, large (sentinel)
KL_RTOL, KL_ATOL = 1e-4, 1e-6  # the engine's contract: |dKL| <= 1e-4 KL + 1e-6 nats, fp32
RESID_RTOL = 1e-3  # of max(injected radius, the change itself): rounding scales with what is compared


class ParityError(McisError):
    """The engine and the hooked reference disagree at a site; its numbers cannot be trusted."""


@dataclass(frozen=True)
class ParityCheck:
    """How closely the engine matches the bridge at one site, on `n_prompts` base prompts."""

    model: str
    layer: int
    n_prompts: int
    resid_pre_max_rel_err: float  # |bridge hook - HF hidden| / |HF hidden|, worst prompt
    kl_max_excess: float  # max over rows of |dKL| - (KL_RTOL * KL + KL_ATOL); <= 0 passes
    kl_max_abs_err: float
    resid_l2_max_rel_err: float  # max |d resid_l2| / max(radius, resid_l2), over rows and later blocks
    zero_kl: float  # engine KL at radius 0 (must be 0 to rounding)
    large_kl_min: float  # smallest engine KL at the large radius (must be > 0)

    @property
    def problems(self) -> list[str]:
        out = []
        if self.resid_pre_max_rel_err > RESID_RTOL:
            out.append(f"the bridge's hook_resid_pre differs from HF's hidden state by "
                       f"{self.resid_pre_max_rel_err:.2g} (relative)")
        if self.kl_max_excess > 0:
            out.append(f"engine KL differs from the full bridge forward by up to {self.kl_max_abs_err:.3g} nats "
                       f"(tolerance {KL_RTOL:g} KL + {KL_ATOL:g})")
        if self.resid_l2_max_rel_err > RESID_RTOL:
            out.append(f"engine residual changes differ from the bridge's by {self.resid_l2_max_rel_err:.2g} "
                       f"of the radius or the change (tolerance {RESID_RTOL:g})")
        if self.zero_kl > KL_ATOL:
            out.append(f"a zero perturbation reads KL {self.zero_kl:.3g}, not 0 (tolerance {KL_ATOL:g})")
        if not self.large_kl_min > 0.0:
            out.append(f"a perturbation of twice the activation's norm reads KL {self.large_kl_min:.3g} (hook not firing?)")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_meta(self) -> dict:
        return {**asdict(self), "ok": self.ok, "tolerance": {"kl_rtol": KL_RTOL, "kl_atol": KL_ATOL,
                                                             "resid_rtol": RESID_RTOL}}

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise ParityError(f"parity preflight failed for {self.model} at blocks.{self.layer}.hook_resid_pre: "
                              + "; ".join(self.problems))


def check_site(model, layer: int, tokens: torch.Tensor, generator: torch.Generator) -> ParityCheck:
    """Compare the engine with one full bridge forward per row at `layer`, on the first few prompts."""
    from .engine import clean_hidden_states, sweep_naive, sweep_points

    tokens = tokens[:N_PROMPTS]
    base = clean_hidden_states(model, tokens)[layer][:, -1].cpu()  # (n, d) HF hidden state, what the engine perturbs
    hooked = _bridge_resid_pre(model, layer, tokens).cpu()
    resid_err = ((hooked - base).norm(dim=-1) / base.norm(dim=-1).clamp_min(1e-12)).max()

    direction = torch.randn(base.shape, generator=generator, dtype=torch.float64).float()
    direction = direction / direction.norm(dim=-1, keepdim=True)
    radii = torch.tensor(RADII_REL)[None, :, None] * base.norm(dim=-1)[:, None, None]  # (n, S, 1)
    points = base[:, None] + radii * direction[:, None]  # (n, S, d)

    fast = sweep_points(model, layer, tokens, points)
    slow = sweep_naive(model, layer, tokens, points)
    kl_err = (fast.kl - slow.kl).abs()
    excess = kl_err - (KL_RTOL * slow.kl.abs() + KL_ATOL)
    nonzero = radii[..., 0] > 0  # (n, S)
    scale = torch.maximum(radii[..., 0][nonzero][:, None], slow.resid_l2[nonzero])
    resid_rel = (fast.resid_l2 - slow.resid_l2).abs()[nonzero] / scale
    return ParityCheck(
        model=model.name, layer=layer, n_prompts=len(tokens),
        resid_pre_max_rel_err=float(resid_err),
        kl_max_excess=float(excess.max()), kl_max_abs_err=float(kl_err.max()),
        resid_l2_max_rel_err=float(resid_rel.max()),
        zero_kl=float(fast.kl[:, 0].abs().max()),
        large_kl_min=float(fast.kl[:, -1].min()),
    )


@torch.no_grad()
def _bridge_resid_pre(model, layer: int, tokens: torch.Tensor) -> torch.Tensor:
    """The bridge's `blocks.{layer}.hook_resid_pre` at the last position, (n, d)."""
    from .sites import site_name

    captured = []

    def read(act, hook):
        captured.append(act[:, -1].clone())
        return act

    model.bridge.run_with_hooks(tokens.to(model.device), fwd_hooks=[(site_name(layer), read)])
    return captured[0].float()
